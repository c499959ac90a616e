//! The one versioned resource cache, keyed by type URL (not a copy per type). A resource's identity is
//! a hash of its content, so an unchanged resource never makes a stream send anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::translate::Named;

/// One resource, packed, with its content hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub body: Any,
    /// Hex of the first 8 bytes of SHA-256 over the type URL and the encoded resource.
    pub hash: String,
}

impl Resource {
    /// Packs a named resource and hashes it.
    pub fn new(name: String, body: Any) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(body.type_url.as_bytes());
        hasher.update([0]);
        hasher.update(&body.value);
        let hash = hex(&hasher.finalize()[..8]);
        Resource { name, body, hash }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of a set of resources: a hash of their names and content hashes. Two sends of the same
/// content carry the same version, whatever happened in between.
pub fn version_of<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> String {
    let mut hasher = Sha256::new();
    for r in resources {
        hasher.update(r.name.as_bytes());
        hasher.update([0]);
        hasher.update(r.hash.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize()[..8])
}

/// Every resource of every type at one moment.
#[derive(Debug, Default)]
pub struct CacheSnapshot {
    types: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
    /// Increases with every change; 0 before the first configuration.
    pub generation: u64,
}

impl CacheSnapshot {
    /// The resources of `type_url` named in `names`, or all of them when `names` is empty (a wildcard
    /// subscription), in name order. Names that don't exist are left out.
    pub fn resources(&self, type_url: &str, names: &[String]) -> Vec<Arc<Resource>> {
        let Some(all) = self.types.get(type_url) else {
            return Vec::new();
        };
        if names.is_empty() {
            return all.values().cloned().collect();
        }
        let mut wanted: Vec<&String> = names.iter().collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|n| all.get(n).cloned())
            .collect()
    }

    /// The version of all resources of `type_url`.
    pub fn type_version(&self, type_url: &str) -> String {
        version_of(self.resources(type_url, &[]).iter())
    }

    /// How many resources of `type_url` there are.
    pub fn len(&self, type_url: &str) -> usize {
        self.types.get(type_url).map_or(0, BTreeMap::len)
    }
}

/// The cache: replaced atomically, observed by every xDS stream.
#[derive(Debug)]
pub struct XdsCache {
    tx: watch::Sender<Arc<CacheSnapshot>>,
}

impl Default for XdsCache {
    fn default() -> Self {
        Self::new()
    }
}

impl XdsCache {
    /// An empty cache (generation 0).
    pub fn new() -> Self {
        XdsCache {
            tx: watch::Sender::new(Arc::new(CacheSnapshot::default())),
        }
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CacheSnapshot>> {
        self.tx.subscribe()
    }

    /// The current content.
    pub fn current(&self) -> Arc<CacheSnapshot> {
        self.tx.borrow().clone()
    }

    /// Replaces the resources of the given types in one step. Streams are woken only when some resource
    /// actually changed; returns whether one did.
    pub fn set(&self, updates: impl IntoIterator<Item = (&'static str, Named)>) -> bool {
        let updates: Vec<(&'static str, BTreeMap<String, Arc<Resource>>)> = updates
            .into_iter()
            .map(|(type_url, named)| {
                let map = named
                    .into_iter()
                    .map(|(name, body)| (name.clone(), Arc::new(Resource::new(name, body))))
                    .collect();
                (type_url, map)
            })
            .collect();
        self.tx.send_if_modified(|current| {
            let changed = updates.iter().any(|(type_url, new)| {
                let old = current.types.get(*type_url);
                let same = old.is_some_and(|old| {
                    old.len() == new.len()
                        && old
                            .iter()
                            .zip(new.iter())
                            .all(|((a, ra), (b, rb))| a == b && ra.hash == rb.hash)
                });
                !same
            });
            if changed {
                let mut types = current.types.clone();
                for (type_url, new) in &updates {
                    types.insert(type_url.to_string(), new.clone());
                }
                *current = Arc::new(CacheSnapshot {
                    types,
                    generation: current.generation + 1,
                });
            }
            changed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::type_url;

    fn any(v: &[u8]) -> Any {
        Any {
            type_url: type_url::CLUSTER.into(),
            value: v.to_vec(),
        }
    }

    #[test]
    fn unchanged_content_is_not_a_change() {
        let cache = XdsCache::new();
        assert!(cache.set([(type_url::CLUSTER, vec![("a".into(), any(b"1"))])]));
        let generation = cache.current().generation;
        assert!(!cache.set([(type_url::CLUSTER, vec![("a".into(), any(b"1"))])]));
        assert_eq!(cache.current().generation, generation);
        assert!(cache.set([(type_url::CLUSTER, vec![("a".into(), any(b"2"))])]));
        assert_eq!(cache.current().generation, generation + 1);
    }

    #[test]
    fn versions_follow_the_requested_names_only() {
        let cache = XdsCache::new();
        cache.set([(
            type_url::ENDPOINT,
            vec![("a".into(), any(b"1")), ("b".into(), any(b"1"))],
        )]);
        let a = ["a".to_string()];
        let before = version_of(cache.current().resources(type_url::ENDPOINT, &a).iter());
        cache.set([(
            type_url::ENDPOINT,
            vec![("a".into(), any(b"1")), ("b".into(), any(b"2"))],
        )]);
        let after = version_of(cache.current().resources(type_url::ENDPOINT, &a).iter());
        assert_eq!(before, after, "a change to b must not change a's version");
        assert_eq!(cache.current().resources(type_url::ENDPOINT, &[]).len(), 2);
    }
}
