//! One state-of-the-world ADS stream (`StreamAggregatedResources`): reads requests into the
//! [`Sequence`] and puts its updates on the wire.
//!
//! Listeners and clusters are sent whole (leaving one out removes it); routes, endpoints and secrets
//! only as they change, which the protocol allows for those types. A client that reconnects with
//! the `version_info` of exactly what would be sent is sent nothing.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::cache::CacheSnapshot;
use super::report::Reporter;
use super::sequence::{Sequence, Update};
use super::stats::XdsStats;
use super::type_url;

/// Serves one stream until the client goes away.
pub async fn run(
    mut requests: Streaming<DiscoveryRequest>,
    responses: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
    stats: Arc<XdsStats>,
    stream_id: u64,
) {
    let mut seq = Sequence::new(cache.borrow_and_update().clone());
    let mut report = Reporter {
        stats: &stats,
        stream_id,
        node: String::new(),
    };
    loop {
        tokio::select! {
            request = requests.message() => {
                let request = match super::server::next_request(request, &report.node) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = responses.send(Err(status)).await;
                        break;
                    }
                };
                report.node(request.node.as_ref().map(|n| n.id.as_str()));
                let Some(type_url) = type_url::ALL.iter().copied().find(|t| *t == request.type_url) else {
                    tracing::warn!(node = report.node, type_url = request.type_url, "request for a type isobar does not serve");
                    continue;
                };
                let mut asks_again = false;
                if !request.response_nonce.is_empty() {
                    match seq.last_nonce(type_url) {
                        Some((last, true)) if last == request.response_nonce => {
                            let error = request.error_detail.as_ref().map(|e| e.message.as_str());
                            if let Some(answer) = seq.answer(type_url, &request.response_nonce, error.is_some()) {
                                report.answer(type_url, answer, error.unwrap_or_default());
                            }
                        }
                        // A second request for a response already answered: Envoy sends one when it
                        // adds a watch on resources it holds (an updated cluster's endpoints).
                        Some((last, false)) if last == request.response_nonce => asks_again = true,
                        // A reply to a response that has since been superseded: the newer one is in
                        // flight, and its answer will carry the names.
                        _ => continue,
                    }
                }
                seq.sotw_request(type_url, request.resource_names, &request.version_info, asks_again);
                if !send_all(&responses, &mut seq, &report).await {
                    break;
                }
            }
            changed = cache.changed() => {
                if changed.is_err() {
                    break;
                }
                seq.retarget(cache.borrow_and_update().clone());
                if !send_all(&responses, &mut seq, &report).await {
                    break;
                }
            }
        }
    }
}

/// Sends every response due; false when the client went away.
async fn send_all(
    responses: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
    seq: &mut Sequence,
    report: &Reporter<'_>,
) -> bool {
    let updates = seq.step();
    report.resumed(seq.take_resumed());
    for update in updates {
        let response = encode(&update);
        let bytes = response.encoded_len();
        if responses.send(Ok(response)).await.is_err() {
            return false;
        }
        report.sent(&update, seq.names_if_changed(update.type_url), bytes);
    }
    true
}

/// The DiscoveryResponse for an update: the whole state for listeners and clusters, the changed
/// resources for the other types.
pub fn encode(update: &Update) -> DiscoveryResponse {
    let whole = matches!(update.type_url, type_url::LISTENER | type_url::CLUSTER);
    let resources = if whole {
        &update.state
    } else {
        &update.upserts
    };
    DiscoveryResponse {
        version_info: update.version.clone(),
        resources: resources.iter().map(|r| r.body.clone()).collect(),
        type_url: update.type_url.to_string(),
        nonce: update.nonce.clone(),
        ..Default::default()
    }
}
