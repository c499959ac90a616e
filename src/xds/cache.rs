//! The one versioned resource cache, keyed by type URL (not a copy per type). A resource's identity is
//! a hash of its content, so an unchanged resource never makes a stream send anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use itertools::{EitherOrBoth, Itertools};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::content_hash::ContentHash;
use super::translate::Named;

/// One resource, encoded, with its content hash. Its type URL is not kept: the cache holds it under
/// its type, and a stream serves it as that type ([`Resource::any`]); at 10,000 clusters and as
/// many ClusterLoadAssignments, a type URL per resource held 1.6 MB.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    /// The encoded resource (an `Any`'s value).
    pub value: Vec<u8>,
    /// BLAKE3 over the type URL and the encoded resource (its first 8 bytes).
    pub hash: ContentHash,
    /// For a cluster that reads its endpoints over EDS, the endpoints' name (its EDS service name):
    /// decoded once here, not per stream per ACK.
    pub eds_name: Option<String>,
    /// This resource's share of a version ([`Version`]): a hash of its name and content hash.
    pub version_key: u64,
}

/// Name and content hash identify a resource's content (the hash covers the body): comparing them
/// is what a map diff does per entry, and it is cheaper than comparing bodies.
impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.hash == other.hash
    }
}

impl Eq for Resource {}

impl Resource {
    /// Hashes a named, packed resource and keeps its encoding. BLAKE3, not SHA-256: the large
    /// resources (the RouteConfiguration of every plain-HTTP host, the TLS listener of every secure
    /// one) are hashed again whole on each change of one of their parts, and BLAKE3 hashed 1 MB 3.6×
    /// as fast here (6.3 against 1.7 GB/s, SHA-256 with the CPU's SHA extensions).
    pub fn new(name: String, body: Any) -> Self {
        let hash = ContentHash::of(&body.type_url, &body.value);
        let eds_name = super::cluster_eds::eds_name(&body);
        Resource::hashed(name, body.value, hash, eds_name)
    }

    /// A resource whose content hash is known (a client's version of it).
    pub fn hashed(
        name: String,
        value: Vec<u8>,
        hash: ContentHash,
        eds_name: Option<String>,
    ) -> Self {
        let version_key = version_key(&name, &hash);
        Resource {
            name,
            value,
            hash,
            eds_name,
            version_key,
        }
    }

    /// The resource packed as `type_url`, the type it is held and served as.
    pub fn any(&self, type_url: &str) -> Any {
        Any {
            type_url: type_url.to_string(),
            value: self.value.clone(),
        }
    }
}

/// The first 8 bytes of SHA-256 over the name and the content hash: a fixed function (not a
/// per-process hasher), so every replica and every restart computes the same versions.
fn version_key(name: &str, hash: &ContentHash) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    // The hash as its version text: the versions stay what they were when the hash was held as text.
    hasher.update(hash.hex());
    let digest = hasher.finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(key)
}

/// The version of a set of resources: the XOR of their [`Resource::version_key`]s, so a function of
/// the set of (name, content hash) pairs only. Two sends of the same content carry the same
/// version, whatever happened in between; and a set's version follows a change to it in O(1) per
/// resource added or removed, without visiting the rest (names are unique in a set, so no pair
/// cancels another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version(u64);

impl Version {
    /// The version of `resources`, computed from scratch.
    pub fn of<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> Self {
        let mut v = Version::default();
        for r in resources {
            v.toggle(r);
        }
        v
    }

    /// Adds `r` to the set, or takes it out if it is in (XOR is its own inverse).
    pub fn toggle(&mut self, r: &Resource) {
        self.0 ^= r.version_key;
    }

    /// As sent on the wire.
    pub fn text(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The version of a set of resources, as sent on the wire (see [`Version`]).
pub fn version_of<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> String {
    Version::of(resources).text()
}

/// The resources of one type, by name: a persistent map, so a clone is O(1) and shares structure
/// with the original, and [`imbl::OrdMap::diff`] of two maps derived from one another skips what
/// they share.
pub type TypeMap = imbl::OrdMap<String, Arc<Resource>>;

/// Every resource of every type at one moment. A type's map is shared with the snapshots before and
/// after it until that type changes, so a change to endpoints copies no listener.
#[derive(Debug, Default)]
pub struct CacheSnapshot {
    types: BTreeMap<String, Arc<TypeMap>>,
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

    /// Every resource of `type_url`, by name.
    pub fn all(&self, type_url: &str) -> Option<&TypeMap> {
        self.types.get(type_url).map(|m| m.as_ref())
    }

    /// Every resource of `type_url`, as shared between snapshots (unchanged types share one map).
    pub fn shared(&self, type_url: &str) -> Option<&Arc<TypeMap>> {
        self.types.get(type_url)
    }

    /// Whether `type_url`'s resources are the same in `self` and `other`: a type's map is replaced
    /// only when its content changes, so this is a pointer comparison, not a hash of every resource.
    pub fn same(&self, other: &CacheSnapshot, type_url: &str) -> bool {
        match (self.types.get(type_url), other.types.get(type_url)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none_or(|m| m.is_empty()) && b.is_none_or(|m| m.is_empty()),
        }
    }

    /// One resource.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<Resource>> {
        self.types.get(type_url)?.get(name)
    }

    /// The version of all resources of `type_url`.
    pub fn type_version(&self, type_url: &str) -> String {
        version_of(
            self.types
                .get(type_url)
                .into_iter()
                .flat_map(|m| m.values()),
        )
    }

    /// How many resources of `type_url` there are.
    pub fn len(&self, type_url: &str) -> usize {
        self.types.get(type_url).map_or(0, |m| m.len())
    }
}

/// A change to some types: resources added or replaced, and names removed.
#[derive(Debug, Default)]
pub struct CacheDiff {
    types: BTreeMap<&'static str, TypeDiff>,
}

#[derive(Debug, Default)]
struct TypeDiff {
    upserts: Vec<Arc<Resource>>,
    removals: Vec<String>,
}

impl CacheDiff {
    /// Adds or replaces a resource.
    pub fn upsert(&mut self, type_url: &'static str, name: String, body: Any) {
        self.upsert_resource(type_url, Resource::new(name, body));
    }

    /// Adds or replaces a resource already encoded and hashed (on a build thread).
    pub fn upsert_resource(&mut self, type_url: &'static str, r: Resource) {
        self.types
            .entry(type_url)
            .or_default()
            .upserts
            .push(Arc::new(r));
    }

    /// Removes a resource (absent names are ignored).
    pub fn remove(&mut self, type_url: &'static str, name: String) {
        self.types.entry(type_url).or_default().removals.push(name);
    }

    /// The diff that turns `current`'s resources of each given type into exactly `updates`.
    fn replacing(
        current: &CacheSnapshot,
        updates: impl IntoIterator<Item = (&'static str, Named)>,
    ) -> Self {
        let mut diff = CacheDiff::default();
        for (type_url, named) in updates {
            diff.replace(current, type_url, named);
        }
        diff
    }

    /// Adds what turns `current`'s resources of `type_url` into exactly `named` (of two with one
    /// name, the later).
    ///
    /// The new resources are a sorted list, not a map: the map is built once, when the diff is
    /// applied. Building one here as well, for a full rebuild at 10,000 Ingresses, was 20,000 more
    /// inserts into a persistent map and as many names copied.
    pub fn replace(&mut self, current: &CacheSnapshot, type_url: &'static str, named: Named) {
        // Each hashed on its own (on the build threads, for many: a full rebuild's 10,000 clusters).
        let mut new: Vec<Arc<Resource>> =
            crate::parallel::map(named, |(name, body)| Arc::new(Resource::new(name, body)));
        // Stable, so of equal names the later stays later; `dedup_by` keeps the first of a run, so
        // each later one is swapped into its place before the earlier is dropped.
        new.sort_by(|a, b| a.name.cmp(&b.name));
        new.dedup_by(|later, kept| {
            let same = later.name == kept.name;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        let entry = self.types.entry(type_url).or_default();
        let Some(old) = current.all(type_url) else {
            entry.upserts.extend(new);
            return;
        };
        for pair in old
            .iter()
            .merge_join_by(new, |(name, _), r| name.as_str().cmp(&r.name))
        {
            match pair {
                EitherOrBoth::Left((name, _)) => entry.removals.push(name.clone()),
                EitherOrBoth::Right(r) => entry.upserts.push(r),
                EitherOrBoth::Both((_, o), r) if o.hash != r.hash => entry.upserts.push(r),
                EitherOrBoth::Both(..) => {}
            }
        }
    }

    /// Whether applying it to `current` changes anything.
    fn changes(&self, current: &CacheSnapshot) -> bool {
        self.types
            .iter()
            .any(|(type_url, d)| d.changes(current.all(type_url)))
    }
}

impl TypeDiff {
    /// Whether applying it to `old` changes anything.
    fn changes(&self, old: Option<&TypeMap>) -> bool {
        self.removals
            .iter()
            .any(|n| old.is_some_and(|o| o.contains_key(n)))
            || self.upserts.iter().any(|r| {
                old.and_then(|o| o.get(&r.name))
                    .is_none_or(|o| o.hash != r.hash)
            })
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

    /// Replaces all resources of the given types in one step (types not given are untouched).
    /// Streams are woken only when some resource actually changed; returns whether one did.
    pub fn set(&self, updates: impl IntoIterator<Item = (&'static str, Named)>) -> bool {
        let updates: Vec<_> = updates.into_iter().collect();
        // The diff is taken against the snapshot it is applied to, inside the one update.
        self.apply_with(|current| CacheDiff::replacing(current, updates))
    }

    /// Applies a diff in one step: one new generation, or none when nothing changed. Only the
    /// changed types' maps are copied.
    pub fn apply(&self, diff: CacheDiff) -> bool {
        self.apply_with(|_| diff)
    }

    fn apply_with(&self, diff: impl FnOnce(&CacheSnapshot) -> CacheDiff) -> bool {
        self.tx.send_if_modified(|current| {
            let diff = diff(current);
            if !diff.changes(current) {
                return false;
            }
            let mut types = current.types.clone();
            // An unchanged type keeps its map (see `CacheSnapshot::same`).
            let changed: Vec<_> = diff
                .types
                .iter()
                .filter(|(type_url, d)| d.changes(current.all(type_url)))
                .map(|(type_url, d)| (*type_url, types.remove(*type_url).unwrap_or_default(), d))
                .collect();
            // The types' maps side by side (a full rebuild's 10,000 clusters and as many
            // endpoints): each is a persistent map of its own.
            let work = changed
                .iter()
                .map(|(_, _, d)| d.upserts.len() + d.removals.len())
                .sum();
            let updated = crate::parallel::map_each(changed, work, |(type_url, mut map, d)| {
                let m = Arc::make_mut(&mut map);
                for n in &d.removals {
                    m.remove(n);
                }
                for r in &d.upserts {
                    m.insert(r.name.clone(), Arc::clone(r));
                }
                (type_url, map)
            });
            for (type_url, map) in updated {
                types.insert(type_url.to_string(), map);
            }
            *current = Arc::new(CacheSnapshot {
                types,
                generation: current.generation + 1,
            });
            true
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
    fn set_replaces_a_type_whole_the_later_of_two_names_counting() {
        let cache = XdsCache::new();
        let named = |pairs: &[(&str, &[u8])]| -> Named {
            pairs.iter().map(|(n, v)| (n.to_string(), any(v))).collect()
        };
        cache.set([(
            type_url::CLUSTER,
            named(&[("b", b"1"), ("a", b"1"), ("c", b"1"), ("b", b"2")]),
        )]);
        let first = cache.current();
        let held = |s: &CacheSnapshot| -> Vec<(String, Vec<u8>)> {
            s.all(type_url::CLUSTER)
                .unwrap()
                .values()
                .map(|r| (r.name.clone(), r.value.clone()))
                .collect()
        };
        let expect = |pairs: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect()
        };
        assert_eq!(
            held(&first),
            expect(&[("a", b"1"), ("b", b"2"), ("c", b"1")])
        );
        // `a` unchanged (the same resource stays), `b` gone, `c` changed, `d` new.
        cache.set([(
            type_url::CLUSTER,
            named(&[("d", b"1"), ("c", b"2"), ("a", b"1")]),
        )]);
        let second = cache.current();
        assert_eq!(
            held(&second),
            expect(&[("a", b"1"), ("c", b"2"), ("d", b"1")])
        );
        assert!(Arc::ptr_eq(
            second.get(type_url::CLUSTER, "a").unwrap(),
            first.get(type_url::CLUSTER, "a").unwrap()
        ));
        // Of two with one name the later counts here too: the earlier `c` would be a change.
        assert!(!cache.set([(
            type_url::CLUSTER,
            named(&[("c", b"9"), ("a", b"1"), ("c", b"2"), ("d", b"1")]),
        )]));
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

    #[test]
    fn a_diff_changes_only_what_it_names_and_shares_the_rest() {
        let cache = XdsCache::new();
        cache.set([
            (type_url::CLUSTER, vec![("c".into(), any(b"c"))]),
            (
                type_url::ENDPOINT,
                vec![("a".into(), any(b"1")), ("b".into(), any(b"1"))],
            ),
        ]);
        let before = cache.current();
        let mut diff = CacheDiff::default();
        diff.upsert(type_url::ENDPOINT, "a".into(), any(b"2"));
        diff.remove(type_url::ENDPOINT, "b".into());
        assert!(cache.apply(diff));
        let after = cache.current();
        assert_eq!(after.generation, before.generation + 1);
        let names: Vec<_> = after
            .all(type_url::ENDPOINT)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(names, ["a"]);
        assert_ne!(
            after.get(type_url::ENDPOINT, "a").unwrap().hash,
            before.get(type_url::ENDPOINT, "a").unwrap().hash
        );
        assert!(
            Arc::ptr_eq(
                &after.types[type_url::CLUSTER],
                &before.types[type_url::CLUSTER]
            ),
            "an untouched type is shared, not copied"
        );
        assert!(after.same(&before, type_url::CLUSTER));
        assert!(!after.same(&before, type_url::ENDPOINT));
        // The same diff again (and removing what is gone) is no change: no new generation.
        let mut again = CacheDiff::default();
        again.upsert(type_url::ENDPOINT, "a".into(), any(b"2"));
        again.remove(type_url::ENDPOINT, "b".into());
        assert!(!cache.apply(again));
        assert_eq!(cache.current().generation, after.generation);
        // Replacing a type with the same content, beside a real change elsewhere, keeps its map.
        let mut same_clusters = CacheDiff::default();
        same_clusters.upsert(type_url::CLUSTER, "c".into(), any(b"c"));
        same_clusters.upsert(type_url::ENDPOINT, "a".into(), any(b"3"));
        assert!(cache.apply(same_clusters));
        let latest = cache.current();
        assert!(latest.same(&after, type_url::CLUSTER));
    }
}
