//! One ADS stream (state of the world): answers requests, pushes changes, tracks ACKs and NACKs.
//!
//! A response is sent for a type only when the content for the names the client asked for differs from
//! what this stream last sent, so unchanged resources are never re-sent and a NACKed version is not
//! pushed again: Envoy keeps its last good configuration until the input changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::cache::{version_of, CacheSnapshot};
use super::stats::{Nack, XdsStats};
use super::type_url;

#[derive(Default)]
struct Watch {
    names: Vec<String>,
    sent_version: Option<String>,
    sent_nonce: String,
    /// The cache generation the last response was built from.
    sent_generation: u64,
}

/// Serves one stream until the client goes away.
pub async fn run(
    mut requests: Streaming<DiscoveryRequest>,
    responses: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
    stats: Arc<XdsStats>,
    stream_id: u64,
) {
    let mut watches: BTreeMap<&'static str, Watch> = BTreeMap::new();
    let mut nonce: u64 = 0;
    let mut node = String::new();
    loop {
        tokio::select! {
            request = requests.message() => {
                let request = match request {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        // A request over --xds-max-message-bytes lands here (OUT_OF_RANGE): say so in
                        // the log, and tell the client why its stream ends (one that went away
                        // won't read it).
                        if status.code() == tonic::Code::OutOfRange {
                            tracing::warn!(%status, node, "xDS request refused; stream closed");
                        } else {
                            tracing::debug!(%status, node, "xDS stream ended");
                        }
                        let _ = responses.send(Err(status)).await;
                        break;
                    }
                };
                if let Some(n) = request.node.as_ref() {
                    if node.is_empty() {
                        node = n.id.clone();
                        let id = node.clone();
                        stats.update_stream(stream_id, |s| s.node = id);
                        tracing::info!(node, "Envoy connected");
                    }
                }
                let Some(type_url) = type_url::ALL.iter().copied().find(|t| *t == request.type_url) else {
                    tracing::warn!(node, type_url = request.type_url, "request for a type isobar does not serve");
                    continue;
                };
                let w = watches.entry(type_url).or_default();
                if !request.response_nonce.is_empty() && request.response_nonce != w.sent_nonce {
                    // A reply to a response that has since been superseded: the newer one is in flight.
                    continue;
                }
                if let Some(error) = request.error_detail.as_ref() {
                    let nack = Nack {
                        node: node.clone(),
                        type_url: type_url.to_string(),
                        rejected_version: w.sent_version.clone().unwrap_or_default(),
                        version_in_use: request.version_info.clone(),
                        message: error.message.clone(),
                        generation: w.sent_generation,
                    };
                    tracing::error!(node, xds = type_url::short_name(type_url), rejected_version = nack.rejected_version,
                        version_in_use = nack.version_in_use, error = error.message, "Envoy rejected configuration (NACK); it keeps its last good configuration");
                    let message = error.message.clone();
                    stats.update_stream(stream_id, |s| s.types.entry(type_url.to_string()).or_default().last_nack = Some(message));
                    stats.record_nack(nack);
                } else if !request.response_nonce.is_empty() {
                    stats.acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let version = request.version_info.clone();
                    let generation = w.sent_generation;
                    stats.update_stream(stream_id, |s| {
                        let t = s.types.entry(type_url.to_string()).or_default();
                        t.acked_version = version;
                        t.acked_generation = generation;
                        t.last_nack = None;
                    });
                    stats.verdict();
                }
                let mut names = request.resource_names.clone();
                names.sort();
                names.dedup();
                w.names = names;
                let snapshot = cache.borrow().clone();
                if let Some(response) = respond(type_url, w, &snapshot, &mut nonce) {
                    if !send(&responses, response, &stats, stream_id, type_url, w).await {
                        break;
                    }
                }
            }
            changed = cache.changed() => {
                if changed.is_err() {
                    break;
                }
                let snapshot = cache.borrow_and_update().clone();
                for type_url in type_url::ALL {
                    let Some(w) = watches.get_mut(type_url) else { continue };
                    if let Some(response) = respond(type_url, w, &snapshot, &mut nonce) {
                        if !send(&responses, response, &stats, stream_id, type_url, w).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The response this stream owes for `type_url`, if the content differs from what it last sent.
fn respond(
    type_url: &'static str,
    w: &mut Watch,
    snapshot: &CacheSnapshot,
    nonce: &mut u64,
) -> Option<DiscoveryResponse> {
    if snapshot.generation == 0 {
        // Nothing built yet (the source is still syncing): an empty answer would make Envoy drop the
        // configuration it has. It gets the first complete one instead.
        return None;
    }
    let resources = snapshot.resources(type_url, &w.names);
    let version = version_of(resources.iter());
    if w.sent_version.as_deref() == Some(version.as_str()) {
        return None;
    }
    *nonce += 1;
    w.sent_nonce = nonce.to_string();
    w.sent_version = Some(version.clone());
    w.sent_generation = snapshot.generation;
    Some(DiscoveryResponse {
        version_info: version,
        resources: resources.iter().map(|r| r.body.clone()).collect(),
        type_url: type_url.to_string(),
        nonce: w.sent_nonce.clone(),
        ..Default::default()
    })
}

async fn send(
    responses: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
    response: DiscoveryResponse,
    stats: &XdsStats,
    stream_id: u64,
    type_url: &'static str,
    w: &Watch,
) -> bool {
    let version = response.version_info.clone();
    let count = response.resources.len();
    if responses.send(Ok(response)).await.is_err() {
        return false;
    }
    stats
        .responses_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let names = w.names.clone();
    tracing::debug!(
        xds = type_url::short_name(type_url),
        version,
        resources = count,
        "sent"
    );
    stats.update_stream(stream_id, |s| {
        let t = s.types.entry(type_url.to_string()).or_default();
        t.sent_version = version;
        t.resource_names = names;
    });
    true
}
