//! One ADS stream (state of the world): answers requests, pushes changes, tracks ACKs and NACKs.
//!
//! A response is sent for a type only when the content for the names the client asked for differs from
//! what this stream last sent, so unchanged resources are never re-sent and a NACKed version is not
//! pushed again: Envoy keeps its last good configuration until the input changes.
//!
//! A change reaches Envoy make-before-break (the xDS protocol's "eventual consistency
//! considerations"), one [`Stage`] after the other: clusters, endpoints and secrets first, with what
//! Envoy already holds kept alongside (so nothing in use disappears) until the clusters are ACKed
//! and the new ones have their endpoints; then listeners; then routes; and only once Envoy has ACKed
//! the listeners and routes that stopped using them, the clusters, endpoints and secrets without the
//! removed ones. A newer snapshot restarts the sequence from the stream's current state: the latest
//! wins, stale ones are never queued.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::cache::{version_of, CacheSnapshot, Resource};
use super::stats::{Nack, XdsStats};
use super::type_url;

/// Where a stream is in carrying one snapshot to Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Clusters, endpoints and secrets go out, as the union of what Envoy holds and the snapshot.
    Warm,
    /// The clusters are ACKed and warm: listeners go out.
    Listeners,
    /// Listeners are ACKed: routes go out.
    Routes,
    /// Listeners and routes in use are the snapshot's: what they no longer use is removed.
    Done,
}

#[derive(Default)]
struct Watch {
    names: Vec<String>,
    sent_version: Option<String>,
    sent_nonce: String,
    /// The cache generation the last response was built from.
    sent_generation: u64,
    /// The resources of the last response, by name.
    sent: BTreeMap<String, Arc<Resource>>,
    /// The resources of the last response Envoy ACKed, by name: what it holds.
    acked: BTreeMap<String, Arc<Resource>>,
    acked_version: Option<String>,
    /// A response awaits Envoy's answer.
    pending: bool,
    /// Envoy rejected a response sent for the current snapshot.
    nacked: bool,
    /// The nonce of the last response Envoy answered.
    answered_nonce: String,
}

impl Watch {
    /// Envoy answered the last response and did not reject it.
    fn settled(&self) -> bool {
        !self.pending && !self.nacked
    }

    /// Envoy holds what this stream last sent.
    fn in_sync(&self) -> bool {
        !self.pending && self.acked_version == self.sent_version
    }

    fn wants(&self, name: &str) -> bool {
        self.names.is_empty()
            || self
                .names
                .binary_search_by(|n| n.as_str().cmp(name))
                .is_ok()
    }
}

/// The per-stream state of the make-before-break sequence.
struct Sequence {
    watches: BTreeMap<&'static str, Watch>,
    nonce: u64,
    /// The snapshot being carried to Envoy (the latest one).
    target: Arc<CacheSnapshot>,
    stage: Stage,
    /// The endpoint names the clusters Envoy ACKed read (EDS service names).
    acked_eds_names: BTreeSet<String>,
}

impl Sequence {
    fn new(target: Arc<CacheSnapshot>) -> Self {
        Sequence {
            watches: BTreeMap::new(),
            nonce: 0,
            target,
            stage: Stage::Warm,
            acked_eds_names: BTreeSet::new(),
        }
    }

    /// A newer snapshot: start over from what Envoy holds now.
    fn retarget(&mut self, target: Arc<CacheSnapshot>) {
        self.target = target;
        self.stage = Stage::Warm;
        for w in self.watches.values_mut() {
            // A rejection of an older snapshot's content does not hold this one up; content equal
            // to the rejected is not re-sent, and what Envoy holds decides removals (`in_sync`).
            w.nacked = false;
        }
    }

    /// Envoy ACKed the last response of `type_url`.
    fn ack(&mut self, type_url: &'static str) {
        let Some(w) = self.watches.get_mut(type_url) else {
            return;
        };
        w.pending = false;
        w.nacked = false;
        w.acked = w.sent.clone();
        w.acked_version = w.sent_version.clone();
        if type_url == type_url::CLUSTER {
            self.acked_eds_names = w.acked.values().filter_map(|r| eds_name(r)).collect();
        }
    }

    /// Envoy rejected the last response of `type_url`: it keeps what it had.
    fn nack(&mut self, type_url: &'static str) {
        if let Some(w) = self.watches.get_mut(type_url) {
            w.pending = false;
            w.nacked = true;
        }
    }

    /// Whether the stage may move on.
    fn gate_open(&self) -> bool {
        let settled = |t: &str| self.watches.get(t).is_none_or(Watch::settled);
        let in_sync = |t: &str| self.watches.get(t).is_none_or(Watch::in_sync);
        match self.stage {
            Stage::Warm => {
                // Envoy ACKs clusters before their endpoints arrive; a route to a cluster still
                // warming answers 503, so every EDS cluster Envoy holds must have its endpoints.
                let endpoints = self
                    .watches
                    .get(type_url::ENDPOINT)
                    .is_none_or(|w| w.settled() && self.acked_eds_names.iter().all(|n| w.wants(n)));
                settled(type_url::CLUSTER) && settled(type_url::SECRET) && endpoints
            }
            Stage::Listeners => settled(type_url::LISTENER),
            Stage::Routes => in_sync(type_url::LISTENER) && in_sync(type_url::ROUTE),
            Stage::Done => false,
        }
    }

    /// Every response due now, moving through the stages as far as Envoy's answers allow.
    fn step(&mut self) -> Vec<(&'static str, DiscoveryResponse)> {
        let mut out = Vec::new();
        if self.target.generation == 0 {
            // Nothing built yet (the source is still syncing): an empty answer would make Envoy drop
            // the configuration it has. It gets the first complete one instead.
            return out;
        }
        loop {
            for type_url in type_url::ALL {
                let Some(w) = self.watches.get_mut(type_url) else {
                    continue;
                };
                if let Some(r) = respond(type_url, w, &self.target, self.stage, &mut self.nonce) {
                    out.push((type_url, r));
                }
            }
            if !self.gate_open() {
                break;
            }
            self.stage = match self.stage {
                Stage::Warm => Stage::Listeners,
                Stage::Listeners => Stage::Routes,
                Stage::Routes | Stage::Done => Stage::Done,
            };
        }
        out
    }
}

/// The EDS service name of a cluster that reads its endpoints over EDS.
fn eds_name(r: &Resource) -> Option<String> {
    let c = Cluster::decode(r.body.value.as_slice()).ok()?;
    let eds = matches!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
    );
    if !eds {
        return None;
    }
    match c.eds_cluster_config.map(|e| e.service_name) {
        Some(n) if !n.is_empty() => Some(n),
        _ => Some(c.name),
    }
}

/// Serves one stream until the client goes away.
pub async fn run(
    mut requests: Streaming<DiscoveryRequest>,
    responses: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
    stats: Arc<XdsStats>,
    stream_id: u64,
) {
    let mut seq = Sequence::new(cache.borrow_and_update().clone());
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
                let w = seq.watches.entry(type_url).or_default();
                if !request.response_nonce.is_empty() && request.response_nonce != w.sent_nonce {
                    // A reply to a response that has since been superseded: the newer one is in flight.
                    continue;
                }
                let mut names = request.resource_names.clone();
                names.sort();
                names.dedup();
                let asks_again = !request.response_nonce.is_empty()
                    && request.response_nonce == w.answered_nonce;
                if names != w.names || asks_again {
                    // A changed subscription, or a second request for a response already answered
                    // (Envoy sends one when it adds a watch, e.g. for an updated or re-added
                    // cluster's endpoints), is answered even when its content was sent before: the
                    // new cluster warms until a response names its endpoints.
                    w.sent_version = None;
                }
                w.names = names;
                let first_answer = !request.response_nonce.is_empty() && !asks_again;
                if first_answer {
                    w.answered_nonce = request.response_nonce.clone();
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
                    seq.nack(type_url);
                    let message = error.message.clone();
                    stats.update_stream(stream_id, |s| s.types.entry(type_url.to_string()).or_default().last_nack = Some(message));
                    stats.record_nack(nack);
                } else if first_answer {
                    stats.acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let version = request.version_info.clone();
                    let generation = w.sent_generation;
                    seq.ack(type_url);
                    stats.update_stream(stream_id, |s| {
                        let t = s.types.entry(type_url.to_string()).or_default();
                        t.acked_version = version;
                        t.acked_generation = generation;
                        t.last_nack = None;
                    });
                    stats.verdict();
                }
                if !send_all(&responses, &mut seq, &stats, stream_id).await {
                    break;
                }
            }
            changed = cache.changed() => {
                if changed.is_err() {
                    break;
                }
                seq.retarget(cache.borrow_and_update().clone());
                if !send_all(&responses, &mut seq, &stats, stream_id).await {
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
    stats: &XdsStats,
    stream_id: u64,
) -> bool {
    for (type_url, response) in seq.step() {
        let names = seq
            .watches
            .get(type_url)
            .map(|w| w.names.clone())
            .unwrap_or_default();
        if !send(responses, response, stats, stream_id, type_url, names).await {
            return false;
        }
    }
    true
}

/// The resources `type_url` should carry at `stage`, or `None` while the type waits for an
/// earlier stage.
fn content(
    type_url: &'static str,
    w: &Watch,
    snapshot: &CacheSnapshot,
    stage: Stage,
) -> Option<Vec<Arc<Resource>>> {
    match type_url {
        type_url::LISTENER if stage < Stage::Listeners => return None,
        type_url::ROUTE if stage < Stage::Routes => return None,
        _ => {}
    }
    let resources = snapshot.resources(type_url, &w.names);
    let keeps = matches!(
        type_url,
        type_url::CLUSTER | type_url::ENDPOINT | type_url::SECRET
    );
    if stage == Stage::Done || !keeps {
        return Some(resources);
    }
    // Make before break: what Envoy holds stays until nothing uses it.
    let mut by_name: BTreeMap<String, Arc<Resource>> =
        resources.into_iter().map(|r| (r.name.clone(), r)).collect();
    for (name, r) in &w.acked {
        if w.wants(name) {
            by_name.entry(name.clone()).or_insert_with(|| Arc::clone(r));
        }
    }
    Some(by_name.into_values().collect())
}

/// The response this stream owes for `type_url`, if the content differs from what it last sent.
fn respond(
    type_url: &'static str,
    w: &mut Watch,
    snapshot: &CacheSnapshot,
    stage: Stage,
    nonce: &mut u64,
) -> Option<DiscoveryResponse> {
    let resources = content(type_url, w, snapshot, stage)?;
    let version = version_of(resources.iter());
    if w.sent_version.as_deref() == Some(version.as_str()) {
        return None;
    }
    *nonce += 1;
    w.sent_nonce = nonce.to_string();
    w.sent_version = Some(version.clone());
    w.sent_generation = snapshot.generation;
    w.pending = true;
    w.nacked = false;
    let body = resources.iter().map(|r| r.body.clone()).collect();
    w.sent = resources.into_iter().map(|r| (r.name.clone(), r)).collect();
    Some(DiscoveryResponse {
        version_info: version,
        resources: body,
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
    names: Vec<String>,
) -> bool {
    let version = response.version_info.clone();
    let count = response.resources.len();
    if responses.send(Ok(response)).await.is_err() {
        return false;
    }
    stats
        .responses_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
