//! Contributions remembered between builds. An Ingress's contribution is recomputed only when the
//! Ingress or something it read (a Service, a Secret, the delegations of a namespace) is no longer the
//! same object; the IngressRoutes' contributions, which depend on each other through delegation, are
//! recomputed together when any IngressRoute or anything their walk read changed. Objects are compared
//! by address: the store shares an unchanged object between snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::build::Candidate;
use super::delegation::Statuses;
use super::reads::{recording, Read};
use super::{ingress, ingressroute, DagOptions};
use crate::crd::IngressRoute;
use crate::store::{ObjectKey, Snapshot};

/// What [`super::build_memoised`] keeps between builds.
#[derive(Debug, Default)]
pub struct Memo {
    ingresses: HashMap<ObjectKey, IngressMemo>,
    routes: Option<RoutesMemo>,
    /// The options the memo was computed with: others invalidate all of it.
    options: Option<DagOptions>,
    /// Contributions computed (not reused) by the last build, for tests and benchmarks.
    pub recomputed: usize,
}

#[derive(Debug)]
struct IngressMemo {
    object: Arc<Ingress>,
    reads: Vec<Read>,
    /// `None`: not of our class.
    candidate: Option<Candidate>,
}

#[derive(Debug)]
struct RoutesMemo {
    objects: Vec<Arc<IngressRoute>>,
    reads: Vec<Read>,
    candidates: Vec<Candidate>,
    statuses: Statuses,
    work: u64,
}

impl Memo {
    /// Every candidate of `snapshot`, the IngressRoute statuses already known, and the delegation walk's
    /// work (as [`super::build_counting_work`] counts it; a reused walk counts what it took).
    pub(super) fn candidates(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
    ) -> (Vec<Candidate>, Statuses, u64) {
        if self.options.as_ref() != Some(options) {
            *self = Memo {
                options: Some(options.clone()),
                ..Memo::default()
            };
        }
        self.recomputed = 0;
        let mut candidates = self.ingress_candidates(snapshot, options);
        let routes = self.route_candidates(snapshot, options);
        candidates.extend(routes.candidates.iter().cloned());
        (candidates, routes.statuses.clone(), routes.work)
    }

    fn ingress_candidates(&mut self, snapshot: &Snapshot, options: &DagOptions) -> Vec<Candidate> {
        let mut previous = std::mem::take(&mut self.ingresses);
        let mut candidates = Vec::new();
        for (key, object) in &snapshot.ingresses {
            let memo = match previous.remove(key) {
                Some(m)
                    if Arc::ptr_eq(&m.object, object)
                        && m.reads.iter().all(|r| r.holds(snapshot)) =>
                {
                    m
                }
                _ => {
                    self.recomputed += 1;
                    let (candidate, reads) =
                        recording(|| ingress::candidate(snapshot, options, key, object));
                    IngressMemo {
                        object: Arc::clone(object),
                        reads,
                        candidate,
                    }
                }
            };
            candidates.extend(memo.candidate.clone());
            self.ingresses.insert(key.clone(), memo);
        }
        candidates
    }

    fn route_candidates(&mut self, snapshot: &Snapshot, options: &DagOptions) -> &RoutesMemo {
        let reusable = |m: &RoutesMemo| {
            m.objects.len() == snapshot.ingress_routes.len()
                && m.objects
                    .iter()
                    .zip(snapshot.ingress_routes.values())
                    .all(|(a, b)| Arc::ptr_eq(a, b))
                && m.reads.iter().all(|r| r.holds(snapshot))
        };
        let memo = match self.routes.take() {
            Some(m) if reusable(&m) => m,
            _ => {
                self.recomputed += snapshot.ingress_routes.len();
                let ((candidates, statuses, work), reads) =
                    recording(|| ingressroute::candidates(snapshot, options));
                RoutesMemo {
                    objects: snapshot.ingress_routes.values().cloned().collect(),
                    reads,
                    candidates,
                    statuses,
                    work,
                }
            }
        };
        self.routes.insert(memo)
    }
}
