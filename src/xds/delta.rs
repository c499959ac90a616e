//! One delta ADS stream (`DeltaAggregatedResources`): reads subscriptions, ACKs and NACKs into the
//! [`Sequence`] and puts its updates on the wire as changed resources plus removed names.
//!
//! A resource's version is its content hash, so a client that reconnects with
//! `initial_resource_versions` equal to isobar's is sent nothing for those resources.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};
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
    mut requests: Streaming<DeltaDiscoveryRequest>,
    responses: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
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
                if !request.response_nonce.is_empty() {
                    // A reply to a superseded response is no answer; its subscription changes still
                    // count (they are changes, not a state).
                    let error = request.error_detail.as_ref().map(|e| e.message.as_str());
                    if let Some(answer) = seq.answer(type_url, &request.response_nonce, error.is_some()) {
                        report.answer(type_url, answer, error.unwrap_or_default());
                    }
                }
                let initial: BTreeMap<String, String> = if seq.knows(type_url) {
                    BTreeMap::new()
                } else {
                    request.initial_resource_versions.into_iter().collect()
                };
                seq.delta_request(
                    type_url,
                    &request.resource_names_subscribe,
                    &request.resource_names_unsubscribe,
                    &initial,
                );
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
    responses: &mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
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

/// The DeltaDiscoveryResponse for an update: each changed resource with its content hash as its
/// version, and the removed names.
pub fn encode(update: &Update) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: update.version.clone(),
        resources: update
            .upserts
            .iter()
            .map(|r| DeltaResource {
                name: r.name.clone(),
                version: r.hash.clone(),
                resource: Some(r.body.clone()),
                ..Default::default()
            })
            .collect(),
        type_url: update.type_url.to_string(),
        removed_resources: update.removals.clone(),
        nonce: update.nonce.clone(),
        ..Default::default()
    }
}
