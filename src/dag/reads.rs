//! What a contribution read from the snapshot besides its own object (Services, Secrets,
//! TLSCertificateDelegations), so a memoised contribution is reused only while all of it is unchanged.
//!
//! The DAG code reads those objects only through [`service`], [`secret`] and [`delegations_in`]; while
//! [`recording`] runs a closure on this thread, they note each object read (or its absence). A thread
//! local, rather than a recorder passed through every function, because the reads happen deep in
//! backend and secret resolution that the full build shares unchanged; the builder is one thread.

use std::cell::RefCell;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};

use crate::crd::TLSCertificateDelegation;
use crate::store::{ObjectKey, Snapshot};

/// One read, with what it found. Holding the object keeps its address from being reused, so pointer
/// equality means "the same object".
#[derive(Debug, Clone)]
pub enum Read {
    Service(ObjectKey, Option<Arc<Service>>),
    Secret(ObjectKey, Option<Arc<Secret>>),
    /// Every TLSCertificateDelegation of a namespace, in key order.
    Delegations(String, Vec<Arc<TLSCertificateDelegation>>),
}

impl Read {
    /// Whether `snapshot` still gives what this read found.
    pub fn holds(&self, snapshot: &Snapshot) -> bool {
        fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        match self {
            Read::Service(key, found) => same(snapshot.services.get(key), found.as_ref()),
            Read::Secret(key, found) => same(snapshot.secrets.get(key), found.as_ref()),
            Read::Delegations(namespace, found) => {
                let now = in_namespace(snapshot, namespace);
                now.len() == found.len() && now.iter().zip(found).all(|(a, b)| Arc::ptr_eq(a, b))
            }
        }
    }
}

thread_local! {
    static READS: RefCell<Option<Vec<Read>>> = const { RefCell::new(None) };
}

/// Runs `f`, returning what it returned and what it read.
pub fn recording<R>(f: impl FnOnce() -> R) -> (R, Vec<Read>) {
    let outer = READS.with(|r| r.borrow_mut().replace(Vec::new()));
    let result = f();
    let reads = READS.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
    (result, reads.unwrap_or_default())
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
    note(|| Read::Service(key.clone(), found.cloned()));
    found
}

/// The Secret `key`.
pub fn secret<'a>(snapshot: &'a Snapshot, key: &ObjectKey) -> Option<&'a Arc<Secret>> {
    let found = snapshot.secrets.get(key);
    note(|| Read::Secret(key.clone(), found.cloned()));
    found
}

/// The TLSCertificateDelegations of `namespace`.
pub fn delegations_in(snapshot: &Snapshot, namespace: &str) -> Vec<Arc<TLSCertificateDelegation>> {
    let found = in_namespace(snapshot, namespace);
    note(|| Read::Delegations(namespace.to_string(), found.clone()));
    found
}

fn in_namespace(snapshot: &Snapshot, namespace: &str) -> Vec<Arc<TLSCertificateDelegation>> {
    snapshot
        .tls_certificate_delegations
        .range(ObjectKey::new(namespace, "")..)
        .take_while(|(k, _)| k.namespace == namespace)
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
    fn reads_are_noted_only_while_recording_and_hold_until_the_object_changes() {
        let s = snapshot_with_service("a");
        assert!(service(&s, &ObjectKey::new("ns", "a")).is_some());
        let ((), reads) = recording(|| {
            service(&s, &ObjectKey::new("ns", "a"));
            secret(&s, &ObjectKey::new("ns", "missing"));
            delegations_in(&s, "ns");
        });
        assert_eq!(reads.len(), 3);
        assert!(reads.iter().all(|r| r.holds(&s)));
        // The same content in a new object is a change (pointer identity), as is an added Secret.
        let edited = snapshot_with_service("a");
        assert!(!reads[0].holds(&edited));
        let mut added = s.clone();
        added
            .secrets
            .insert(ObjectKey::new("ns", "missing"), Arc::new(Secret::default()));
        assert!(reads[0].holds(&added) && !reads[1].holds(&added));
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
