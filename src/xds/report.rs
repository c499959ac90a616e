//! What a stream tells [`XdsStats`] (and the log) about its client's answers and the responses it
//! sends; the same for both protocols.

use std::sync::atomic::Ordering;

use super::sequence::{Answer, Resumed, Update};
use super::stats::{Nack, XdsStats};
use super::type_url;

/// One stream's reporter.
pub struct Reporter<'a> {
    pub stats: &'a XdsStats,
    pub stream_id: u64,
    /// The client's node id, once it said it.
    pub node: String,
}

impl Reporter<'_> {
    /// Records the node id from the client's first request that carries one.
    pub fn node(&mut self, id: Option<&str>) {
        if let Some(id) = id {
            if self.node.is_empty() {
                self.node = id.to_string();
                let node = self.node.clone();
                self.stats.update_stream(self.stream_id, |s| s.node = node);
                tracing::info!(node = self.node, "Envoy connected");
            }
        }
    }

    /// Records an ACK or a NACK; `message` is the client's error detail.
    pub fn answer(&self, type_url: &'static str, answer: Answer, message: &str) {
        match answer {
            Answer::Ack {
                version,
                generation,
            } => {
                self.stats.acks.fetch_add(1, Ordering::Relaxed);
                self.acked(type_url, version, generation);
            }
            Answer::Nack {
                rejected_version,
                version_in_use,
                generation,
                names,
            } => {
                tracing::error!(
                    node = self.node,
                    xds = type_url::short_name(type_url),
                    rejected_version,
                    version_in_use,
                    resources = names.len(),
                    error = message,
                    "Envoy rejected configuration (NACK); it keeps its last good configuration"
                );
                let last = message.to_string();
                self.stats.update_stream(self.stream_id, |s| {
                    s.types.entry(type_url.to_string()).or_default().last_nack = Some(last)
                });
                self.stats.record_nack(Nack {
                    node: self.node.clone(),
                    type_url: type_url.to_string(),
                    rejected_version,
                    version_in_use,
                    message: message.to_string(),
                    resources: names,
                    generation,
                });
            }
        }
    }

    /// Records types the client already held on reconnecting: as good as an ACK.
    pub fn resumed(&self, resumed: Vec<Resumed>) {
        for r in resumed {
            tracing::debug!(
                node = self.node,
                xds = type_url::short_name(r.type_url),
                version = r.version,
                "client already holds this version; nothing sent"
            );
            self.acked(r.type_url, r.version, r.generation);
        }
    }

    fn acked(&self, type_url: &'static str, version: String, generation: u64) {
        self.stats.update_stream(self.stream_id, |s| {
            let t = s.types.entry(type_url.to_string()).or_default();
            t.sent_version.clone_from(&version);
            t.acked_version = version;
            t.acked_generation = generation;
            t.last_nack = None;
        });
        self.stats.verdict();
    }

    /// Records a response sent; `names`, the client's subscription, when it changed.
    pub fn sent(&self, update: &Update, names: Option<Vec<String>>, bytes: usize) {
        self.stats.responses_sent.fetch_add(1, Ordering::Relaxed);
        self.stats
            .response_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        tracing::debug!(
            node = self.node,
            xds = type_url::short_name(update.type_url),
            version = update.version,
            upserts = update.upserts.len(),
            removals = update.removals.len(),
            bytes,
            "sent"
        );
        let version = update.version.clone();
        self.stats.update_stream(self.stream_id, |s| {
            let t = s.types.entry(update.type_url.to_string()).or_default();
            t.sent_version = version;
            if let Some(names) = names {
                t.resource_names = names;
            }
        });
    }
}
