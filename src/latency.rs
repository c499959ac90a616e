//! How long a change takes to reach the xDS cache, as Prometheus histograms: the pipeline's rebuild
//! alone, and a change's whole way from the moment its source saw it (a file event, a watch event)
//! through the wait for a running build and the rebuild to the push. Operators compare the two to tell
//! queueing from the work. And how long Envoy takes to answer what it is sent, by resource type, so
//! isobar's part of a change's way can be told from Envoy's.

use std::time::Instant;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// 0.5 ms to ~16 s, doubling: a small rebuild is sub-millisecond, a large one or a burst queued
/// behind one takes seconds.
fn buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

/// The pipeline's latency histograms (clones share the same series).
#[derive(Debug, Clone)]
pub struct Latency {
    /// `isobar_rebuild_duration_seconds`: one full rebuild (DAG, translation, cache update).
    pub rebuild: Histogram,
    /// `isobar_change_to_push_seconds`: from a change seen by the source to the cache update that
    /// carries it (only changes that changed what Envoy is sent).
    pub change_to_push: Histogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            rebuild: Histogram::new(buckets()),
            change_to_push: Histogram::new(buckets()),
        }
    }
}

impl Latency {
    /// Adds both histograms to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "isobar_rebuild_duration_seconds",
            "Time of one full rebuild: DAG, translation and cache update.",
            self.rebuild.clone(),
        );
        registry.register(
            "isobar_change_to_push_seconds",
            "Time from a change seen by the source (file or watch event) to the xDS cache update carrying it, the wait for a running build included.",
            self.change_to_push.clone(),
        );
    }

    /// A change first seen at `since` reached the cache now.
    pub fn pushed(&self, since: Instant) {
        self.change_to_push.observe(since.elapsed().as_secs_f64());
    }
}

/// `isobar_xds_answer_seconds{type}`: from a response sent to the client's ACK or NACK of it, by
/// resource kind (`cluster`, `route`, …). It is the client's time to apply what it was sent, the
/// connection included: with whole-set state-of-the-world responses it grows with the number of
/// clusters and virtual hosts, where `isobar_change_to_push_seconds` should not.
#[derive(Debug, Clone)]
pub struct AnswerLatency(Family<AnswerLabels, Histogram, fn() -> Histogram>);

type AnswerLabels = Vec<(&'static str, &'static str)>;

impl Default for AnswerLatency {
    fn default() -> Self {
        AnswerLatency(Family::new_with_constructor(|| Histogram::new(buckets())))
    }
}

impl AnswerLatency {
    /// Adds the histogram family to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "isobar_xds_answer_seconds",
            "Time from an xDS response sent to the client's ACK or NACK of it, by resource type.",
            self.0.clone(),
        );
    }

    /// A response of resource kind `kind` sent at `sent` was answered now.
    pub fn answered(&self, kind: &'static str, sent: Instant) {
        self.0
            .get_or_create(&vec![("type", kind)])
            .observe(sent.elapsed().as_secs_f64());
    }
}
