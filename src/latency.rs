//! How long a change takes to reach the xDS cache, as Prometheus histograms: the pipeline's rebuild
//! alone, and a change's whole way from the moment its source saw it (a file event, a watch event)
//! through the wait for a running build and the rebuild to the push. Operators compare the two to tell
//! queueing from the work.

use std::time::Instant;

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
