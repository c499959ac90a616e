//! What the xDS server knows about its clients: streams, ACKs, NACKs and refused handshakes. Kept
//! visible for `/metrics`, `/debug/xds` and tests, because a NACKed configuration must never be silent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::latency::AnswerLatency;

/// A rejected configuration, as Envoy reported it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Nack {
    pub node: String,
    pub type_url: String,
    /// The version Envoy rejected.
    pub rejected_version: String,
    /// The version Envoy keeps using (empty if it never accepted one).
    pub version_in_use: String,
    pub message: String,
    /// The resources the rejected response carried (delta and SotW routes/endpoints/secrets carry
    /// only changed ones, so this narrows down what Envoy refused).
    pub resources: Vec<String>,
    /// The cache generation the rejected response was built from: versions of a type depend on the
    /// names a stream asked for, generations don't, so the pipeline matches verdicts by generation.
    pub generation: u64,
}

/// Per-type state of one stream.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TypeState {
    pub sent_version: String,
    pub acked_version: String,
    /// The cache generation of the last response Envoy ACKed for this type.
    pub acked_generation: u64,
    pub resource_names: Vec<String>,
    pub last_nack: Option<String>,
}

/// One connected Envoy.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub node: String,
    /// Envoy's version as its node reports it (`1.40.0`), empty until it says.
    pub envoy_version: String,
    pub peer: String,
    pub connected_since: SystemTime,
    pub types: BTreeMap<String, TypeState>,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState {
            node: String::new(),
            envoy_version: String::new(),
            peer: String::new(),
            connected_since: SystemTime::now(),
            types: BTreeMap::new(),
        }
    }
}

/// A NACK and when it arrived, for the history the admin API shows.
#[derive(Debug, Clone, Serialize)]
pub struct TimedNack {
    pub at: SystemTime,
    pub nack: Nack,
}

/// How many NACKs the history keeps: enough to see a pattern, bounded whatever Envoy does.
pub const NACK_HISTORY: usize = 32;

/// Counters and per-stream state of the xDS server.
#[derive(Debug, Default)]
pub struct XdsStats {
    pub responses_sent: AtomicU64,
    /// Encoded bytes of every response sent (both protocols).
    pub response_bytes: AtomicU64,
    pub acks: AtomicU64,
    pub nacks: AtomicU64,
    /// Connections refused at the TLS handshake (bad or missing certificate, not TLS, too slow).
    pub handshake_failures: AtomicU64,
    /// Clients refused after the handshake because no SAN DNS name is in `--xds-client-san`.
    pub client_san_refusals: AtomicU64,
    /// Gauge: accepted connections whose ClientHello has not arrived yet.
    pub awaiting_client_hello: AtomicU64,
    /// Gauge: TLS handshakes holding one of the `--xds-max-concurrent-handshakes` slots.
    pub handshakes_in_progress: AtomicU64,
    next_stream: AtomicU64,
    streams: Mutex<BTreeMap<u64, StreamState>>,
    /// The last [`NACK_HISTORY`] NACKs, oldest first (the last of them is the last NACK).
    nack_history: Mutex<VecDeque<TimedNack>>,
    /// NACKs by type URL, for `isobar_xds_nacks_total{type}`: which kind of resource Envoy rejects.
    nacks_by_type: Mutex<BTreeMap<String, u64>>,
    /// `isobar_xds_answer_seconds{type}`: each response's time until the client answered it.
    pub answer_latency: AnswerLatency,
    /// Bumped on every ACK and NACK, so the pipeline can react to Envoy's verdicts.
    verdicts: tokio::sync::watch::Sender<u64>,
}

impl XdsStats {
    /// Registers a new stream and returns its id.
    pub fn open_stream(&self, peer: String) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.streams.lock() {
            s.insert(
                id,
                StreamState {
                    peer,
                    ..Default::default()
                },
            );
        }
        id
    }

    /// Forgets a closed stream.
    pub fn close_stream(&self, id: u64) {
        if let Ok(mut s) = self.streams.lock() {
            s.remove(&id);
        }
    }

    /// Updates a stream's recorded state.
    pub fn update_stream(&self, id: u64, f: impl FnOnce(&mut StreamState)) {
        if let Ok(mut s) = self.streams.lock() {
            if let Some(state) = s.get_mut(&id) {
                f(state);
            }
        }
    }

    /// Records a NACK.
    pub fn record_nack(&self, nack: Nack) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut by_type) = self.nacks_by_type.lock() {
            *by_type.entry(nack.type_url.clone()).or_default() += 1;
        }
        if let Ok(mut history) = self.nack_history.lock() {
            if history.len() == NACK_HISTORY {
                history.pop_front();
            }
            history.push_back(TimedNack {
                at: SystemTime::now(),
                nack,
            });
        }
        self.verdict();
    }

    /// Tells whoever follows Envoy's verdicts that one arrived (after the stream state is updated).
    pub fn verdict(&self) {
        self.verdicts.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes on every ACK and NACK.
    pub fn subscribe_verdicts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.verdicts.subscribe()
    }

    /// The most recent NACK, if any.
    pub fn last_nack(&self) -> Option<Nack> {
        let history = self.nack_history.lock().ok()?;
        history.back().map(|t| t.nack.clone())
    }

    /// The recent NACKs, oldest first.
    pub fn nack_history(&self) -> Vec<TimedNack> {
        self.nack_history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// NACK counts by type URL (types never NACKed are absent).
    pub fn nacks_by_type(&self) -> BTreeMap<String, u64> {
        self.nacks_by_type
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// A copy of every open stream's state.
    /// The oldest cache generation of `type_url` that every stream subscribing to it ACKed; `None`
    /// when no stream does. Reads under the lock without copying the streams (a stream's
    /// subscription may name thousands of resources).
    pub fn acked_generation(&self, type_url: &str) -> Option<u64> {
        let streams = self.streams.lock().ok()?;
        streams
            .values()
            .filter_map(|s| s.types.get(type_url))
            .map(|t| t.acked_generation)
            .min()
    }

    pub fn streams(&self) -> Vec<StreamState> {
        self.streams
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Count of currently open streams.
    pub fn open_streams(&self) -> usize {
        self.streams.lock().map(|s| s.len()).unwrap_or_default()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Counts one in a gauge for as long as it lives, so every exit path (including a dropped task)
/// takes it back out.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicU64);

impl<'a> GaugeGuard<'a> {
    /// Adds one to `gauge` until the guard drops.
    pub fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::type_url;

    fn nack(type_url: &str) -> Nack {
        Nack {
            resources: Vec::new(),
            node: "envoy".into(),
            type_url: type_url.into(),
            rejected_version: "v2".into(),
            version_in_use: "v1".into(),
            message: "rejected".into(),
            generation: 2,
        }
    }

    #[test]
    fn nacks_are_counted_in_total_and_by_type() {
        let stats = XdsStats::default();
        stats.record_nack(nack(type_url::ROUTE));
        stats.record_nack(nack(type_url::ROUTE));
        stats.record_nack(nack(type_url::CLUSTER));
        assert_eq!(XdsStats::get(&stats.nacks), 3);
        assert_eq!(
            stats.nacks_by_type(),
            BTreeMap::from([
                (type_url::CLUSTER.to_string(), 1),
                (type_url::ROUTE.to_string(), 2)
            ])
        );
        assert_eq!(stats.last_nack(), Some(nack(type_url::CLUSTER)));
        let history: Vec<Nack> = stats.nack_history().into_iter().map(|t| t.nack).collect();
        assert_eq!(
            history,
            [
                nack(type_url::ROUTE),
                nack(type_url::ROUTE),
                nack(type_url::CLUSTER)
            ]
        );
    }

    #[test]
    fn the_nack_history_keeps_the_newest() {
        let stats = XdsStats::default();
        for i in 0..NACK_HISTORY + 5 {
            let mut n = nack(type_url::ROUTE);
            n.rejected_version = i.to_string();
            stats.record_nack(n);
        }
        let history = stats.nack_history();
        assert_eq!(history.len(), NACK_HISTORY);
        assert_eq!(history[0].nack.rejected_version, "5");
        assert_eq!(
            history[NACK_HISTORY - 1].nack.rejected_version,
            (NACK_HISTORY + 4).to_string()
        );
    }
}
