//! What a stream tells [`XdsStats`] (and the log) about its client's answers and the responses it
//! sends; the same for both protocols.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::{node::UserAgentVersionType, Node};

use super::sequence::{Answer, Resumed, Update};
use super::stats::{Nack, XdsStats};
use super::type_url;

/// One stream's reporter.
pub struct Reporter<'a> {
    pub stats: &'a XdsStats,
    pub stream_id: u64,
    /// The client's node id, once it said it.
    pub node: String,
    /// When the response of each type awaiting an answer was sent (a stream has at most one in
    /// flight per type).
    sent_at: HashMap<&'static str, Instant>,
}

impl<'a> Reporter<'a> {
    pub fn new(stats: &'a XdsStats, stream_id: u64) -> Self {
        Reporter {
            stats,
            stream_id,
            node: String::new(),
            sent_at: HashMap::new(),
        }
    }

    /// Records the node id and Envoy's version from the client's first request that carries a node.
    pub fn node(&mut self, node: Option<&Node>) {
        if let Some(node) = node {
            if self.node.is_empty() && !node.id.is_empty() {
                self.node = node.id.clone();
                let id = self.node.clone();
                let version = envoy_version(node);
                tracing::info!(node = self.node, envoy = version, "Envoy connected");
                self.stats.update_stream(self.stream_id, |s| {
                    s.node = id;
                    s.envoy_version = version;
                });
            }
        }
    }

    /// Records an ACK or a NACK; `message` is the client's error detail.
    pub fn answer(&mut self, type_url: &'static str, answer: Answer, message: &str) {
        if let Some(sent) = self.sent_at.remove(type_url) {
            let kind = type_url::kind_name(type_url);
            self.stats.answer_latency.answered(kind, sent);
        }
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
    pub fn sent(&mut self, update: &Update, names: Option<Vec<String>>, bytes: usize) {
        self.sent_at.insert(update.type_url, Instant::now());
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

/// Envoy's version as its node says it: `1.40.0` from the build version Envoy sends, else the free
/// text version, else empty.
pub fn envoy_version(node: &Node) -> String {
    match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        Some(UserAgentVersionType::UserAgentVersion(text)) => text.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;

    use super::*;

    #[test]
    fn envoy_version_comes_from_the_build_version_or_the_text() {
        let mut node = Node {
            user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(
                BuildVersion {
                    version: Some(SemanticVersion {
                        major_number: 1,
                        minor_number: 40,
                        patch: 2,
                    }),
                    metadata: None,
                },
            )),
            ..Default::default()
        };
        assert_eq!(envoy_version(&node), "1.40.2");
        node.user_agent_version_type =
            Some(UserAgentVersionType::UserAgentVersion("custom".into()));
        assert_eq!(envoy_version(&node), "custom");
        node.user_agent_version_type = None;
        assert_eq!(envoy_version(&node), "");
    }
}
