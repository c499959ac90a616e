//! What a contribution read from the snapshot besides its own object (Services, Secrets,
//! TLSCertificateDelegations), so a memoised contribution is computed again exactly when one of those
//! changes.
//!
//! The DAG code reads those objects only through [`service`], [`service_named`], [`secret`] and
//! [`delegations_in`]; while [`recording`] runs a closure on this thread, they note each object read
//! (or looked for and not found). A thread local, rather than a recorder passed through every
//! function, because the reads happen deep in backend and secret resolution that the full build
//! shares unchanged; the builder is one thread.

use foldhash::{HashMap, HashSet, HashSetExt};
use std::cell::RefCell;
use std::sync::Arc;

use crate::store::{Service, StoredSecret};
use smallvec::SmallVec;

use crate::crd::TLSCertificateDelegation;
use crate::store::{diff_key, KeyRef, ObjectKey, Snapshot};

/// One read: what was looked at (whether or not it was there).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    Service(ObjectKey),
    Secret(ObjectKey),
    /// Every TLSCertificateDelegation of a namespace.
    Delegations(String),
}

/// Every read whose answer differs between `before` and `after`: the Services and Secrets added,
/// removed or changed, and the namespaces whose delegations did. Visits only what differs (the
/// snapshots' maps share what is unchanged).
pub fn changed(before: &Snapshot, after: &Snapshot) -> HashSet<Read> {
    let mut reads = HashSet::new();
    let services = before.services.diff(&after.services).map(|d| diff_key(&d));
    reads.extend(services.map(|k| Read::Service(k.clone())));
    let secrets = before.secrets.diff(&after.secrets).map(|d| diff_key(&d));
    reads.extend(secrets.map(|k| Read::Secret(k.clone())));
    let delegations = before
        .tls_certificate_delegations
        .diff(&after.tls_certificate_delegations)
        .map(|d| diff_key(&d));
    reads.extend(delegations.map(|k| Read::Delegations(k.namespace.to_string())));
    reads
}

/// Which objects made each read: a changed read makes their contributions stale.
#[derive(Debug, Default)]
pub struct Readers(HashMap<Read, SmallVec<[ObjectKey; 1]>>);

impl Readers {
    /// Notes that `key`'s contribution made `reads` (each once, as [`recording`] returns them).
    pub fn add(&mut self, key: &ObjectKey, reads: &[Read]) {
        for read in reads {
            // A few readers each, mostly one: a list, the first inline.
            self.0.entry(read.clone()).or_default().push(key.clone());
        }
    }

    /// Forgets that `key` made `reads`.
    pub fn remove(&mut self, key: &ObjectKey, reads: &[Read]) {
        for read in reads {
            if let Some(readers) = self.0.get_mut(read) {
                readers.retain(|k| k != key);
                if readers.is_empty() {
                    self.0.remove(read);
                }
            }
        }
    }

    /// The objects that made any of `reads`.
    pub fn of<'a>(&'a self, reads: &'a HashSet<Read>) -> impl Iterator<Item = &'a ObjectKey> {
        reads.iter().filter_map(|r| self.0.get(r)).flatten()
    }
}

thread_local! {
    static READS: RefCell<Option<Vec<Read>>> = const { RefCell::new(None) };
}

/// Runs `f`, returning what it returned and what it read, each read once (in the order first made).
/// The repeats go here, on the thread that ran `f` (a build thread, for a batch of Ingresses), not
/// where the reads are recorded.
pub fn recording<R>(f: impl FnOnce() -> R) -> (R, Vec<Read>) {
    let outer = READS.with(|r| r.borrow_mut().replace(Vec::new()));
    let result = f();
    let reads = READS.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
    (result, distinct(reads.unwrap_or_default()))
}

/// `reads` without repeats, in the order first made, and without spare room: they are kept with
/// the contribution until it is computed again.
fn distinct(mut reads: Vec<Read>) -> Vec<Read> {
    let mut seen = HashSet::with_capacity(reads.len());
    reads.retain(|r| seen.insert(r.clone()));
    reads.shrink_to_fit();
    reads
}

fn note(read: impl FnOnce() -> Read) {
    READS.with(|r| {
        if let Some(reads) = r.borrow_mut().as_mut() {
            reads.push(read());
        }
    });
}

/// The Service `key`.
pub fn service<'a>(snapshot: &'a Snapshot, key: &ObjectKey) -> Option<&'a Arc<Service>> {
    let found = snapshot.services.get(key);
    note(|| Read::Service(key.clone()));
    found
}

/// The Service `namespace/name`, with the snapshot's key for it (shared, not built anew).
pub fn service_named<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    name: &str,
) -> Option<(&'a ObjectKey, &'a Arc<Service>)> {
    let found = snapshot.services.get_key_value(&KeyRef { namespace, name });
    note(|| {
        Read::Service(found.map_or_else(|| ObjectKey::new(namespace, name), |(k, _)| k.clone()))
    });
    found
}

/// The Secret `key`.
pub fn secret<'a>(snapshot: &'a Snapshot, key: &ObjectKey) -> Option<&'a Arc<StoredSecret>> {
    let found = snapshot.secrets.get(key);
    note(|| Read::Secret(key.clone()));
    found
}

/// The TLSCertificateDelegations of `namespace`.
pub fn delegations_in(snapshot: &Snapshot, namespace: &str) -> Vec<Arc<TLSCertificateDelegation>> {
    note(|| Read::Delegations(namespace.to_string()));
    snapshot
        .tls_certificate_delegations
        .range(ObjectKey::new(namespace, "")..)
        .take_while(|(k, _)| *k.namespace == *namespace)
        .map(|(_, d)| Arc::clone(d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with_service(name: &str) -> Snapshot {
        let mut s = Snapshot::default();
        let mut svc = Service::default();
        svc.metadata.name = Some(name.into());
        s.services.insert(ObjectKey::new("ns", name), Arc::new(svc));
        s
    }

    #[test]
    fn reads_are_noted_only_while_recording_and_change_with_what_they_read() {
        let s = snapshot_with_service("a");
        assert!(service(&s, &ObjectKey::new("ns", "a")).is_some());
        let ((), reads) = recording(|| {
            service(&s, &ObjectKey::new("ns", "a"));
            secret(&s, &ObjectKey::new("ns", "missing"));
            delegations_in(&s, "ns");
        });
        assert_eq!(reads.len(), 3);
        assert!(changed(&s, &s.clone()).is_empty());
        // An edited Service, an added Secret, a delegation in the namespace: each changes its read.
        let mut edited = s.clone();
        let mut svc = Service::default();
        svc.metadata.name = Some("a".into());
        svc.metadata.annotations =
            Some([("example.test/note".to_string(), "edited".to_string())].into());
        edited
            .services
            .insert(ObjectKey::new("ns", "a"), Arc::new(svc));
        assert_eq!(changed(&s, &edited), HashSet::from_iter([reads[0].clone()]));
        let mut added = s.clone();
        added.secrets.insert(
            ObjectKey::new("ns", "missing"),
            Arc::new(k8s_openapi::api::core::v1::Secret::default().into()),
        );
        added.tls_certificate_delegations.insert(
            ObjectKey::new("ns", "d"),
            Arc::new(TLSCertificateDelegation::new("d", Default::default())),
        );
        assert_eq!(
            changed(&s, &added),
            HashSet::from_iter([reads[1].clone(), reads[2].clone()])
        );
    }

    #[test]
    fn a_service_looked_up_by_name_is_noted_as_by_key_found_or_not() {
        let s = snapshot_with_service("a");
        let ((found, missing), reads) = recording(|| {
            (
                service_named(&s, "ns", "a").map(|(k, _)| k.clone()),
                service_named(&s, "ns", "b").is_some(),
            )
        });
        assert_eq!(found, Some(ObjectKey::new("ns", "a")));
        assert!(!missing);
        assert_eq!(
            reads,
            [
                Read::Service(ObjectKey::new("ns", "a")),
                Read::Service(ObjectKey::new("ns", "b"))
            ]
        );
    }

    /// A contribution reads its Service once per route; the memo keeps each read once, in the
    /// order first made.
    #[test]
    fn a_read_made_again_is_kept_once() {
        let s = snapshot_with_service("a");
        let keys: Vec<ObjectKey> = (0..40)
            .map(|i| ObjectKey::new("ns", format!("s{i}")))
            .collect();
        let ((), reads) = recording(|| {
            for key in keys.iter().chain(&keys).rev() {
                service(&s, key);
            }
            secret(&s, &keys[0]);
        });
        let mut expected: Vec<Read> = keys.iter().rev().cloned().map(Read::Service).collect();
        expected.push(Read::Secret(keys[0].clone()));
        assert_eq!(reads, expected);
        assert_eq!(reads.capacity(), reads.len(), "no spare room kept");
    }

    #[test]
    fn nested_recordings_keep_their_own_reads() {
        let s = snapshot_with_service("a");
        let (inner, outer) = recording(|| {
            let ((), inner) = recording(|| {
                service(&s, &ObjectKey::new("ns", "a"));
            });
            secret(&s, &ObjectKey::new("ns", "b"));
            inner
        });
        assert_eq!((inner.len(), outer.len()), (1, 1));
        assert!(matches!(outer[0], Read::Secret(..)));
    }
}
