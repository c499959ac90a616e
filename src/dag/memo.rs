//! The incremental build: contributions remembered between builds and a DAG changed host by host.
//!
//! What changed is found by diffing the snapshot with the last one (their persistent maps share what is
//! unchanged, so the diff visits only what differs). An Ingress's contribution is computed again when
//! the Ingress changed or something it read (a Service, a Secret, the delegations of a namespace) did;
//! the IngressRoutes' contributions, which depend on each other through delegation, are computed again
//! per delegation component ([`Components`]) when one of its IngressRoutes or anything its walk read
//! changed. Only candidates that differ from
//! last time go to the [`Assembly`], which re-applies the hosts they touch. The Gateway API program
//! is kept route by route in [`GatewayMemo`], which writes its listeners into the Assembly's DAG.
//! [`super::build`] is the reference this is tested against.

use foldhash::{HashMap, HashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::assembly::{Assembly, CandidateId};
use super::build::{ingress_status, route_status, Candidate};
use super::gateway::status::GatewayApiStatus;
use super::gateway_memo::GatewayMemo;
use super::reads::{self, recording, Read, Readers};
use super::route_components::Components;
use super::{ingress, ingressroute, Dag, DagOptions, ObjectKind, StatusMap};
use crate::parallel;
use crate::store::{ObjectKey, Snapshot};

/// What [`build_memoised`] keeps between builds.
#[derive(Debug, Default)]
pub struct Memo {
    /// The options the memo was computed with: others invalidate all of it.
    options: Option<DagOptions>,
    /// The snapshot the memo is up to date with.
    seen: Snapshot,
    /// Ingress → its candidate (`None`: not of our class) and what it read.
    ingresses: HashMap<ObjectKey, (Option<Arc<Candidate>>, Vec<Read>)>,
    readers: Readers,
    routes: RoutesMemo,
    gateway: GatewayMemo,
    assembly: Assembly,
    statuses: StatusMap,
    /// Contributions computed (not reused) by the last build, for tests and benchmarks.
    pub recomputed: usize,
}

#[derive(Debug, Default)]
struct RoutesMemo {
    components: Components,
    candidates: BTreeMap<ObjectKey, Arc<Candidate>>,
}

/// [`super::build`], reusing what `memo` computed before for what did not change. Returns the DAG, the
/// statuses and the work done.
pub fn build_memoised(
    snapshot: &Snapshot,
    options: &DagOptions,
    memo: &mut Memo,
) -> (Dag, StatusMap, u64) {
    if memo.options.as_ref() != Some(options) {
        *memo = Memo {
            options: Some(options.clone()),
            assembly: Assembly::new(options.limits.max_routes_per_virtual_host),
            ..Memo::default()
        };
    }
    memo.recomputed = 0;
    let changed_reads = reads::changed(&memo.seen, snapshot);
    let mut changes = memo.ingress_changes(snapshot, options, &changed_reads);
    let mut touched_routes = memo.route_changes(snapshot, options, &changed_reads, &mut changes);
    let removed_ingresses: Vec<ObjectKey> = changes
        .iter()
        .filter(|((kind, _), new)| *kind == ObjectKind::Ingress && new.is_none())
        .map(|((_, key), _)| key.clone())
        .collect();
    let recomputed = memo.assembly.update(changes);
    for key in removed_ingresses {
        memo.statuses.remove(&(ObjectKind::Ingress, key));
    }
    for id in recomputed {
        match id.0 {
            ObjectKind::Ingress => {
                if let Some(outcome) = memo.assembly.outcome(&id).cloned() {
                    let status = ingress_status(id.1.clone(), outcome);
                    memo.statuses.insert(id, status);
                }
            }
            ObjectKind::IngressRoute => touched_routes.push(id.1),
            // No candidate is an HTTPRoute.
            ObjectKind::HttpRoute => {}
        }
    }
    memo.route_statuses(snapshot, options, touched_routes);
    memo.recomputed += memo.gateway.update(
        &memo.seen,
        snapshot,
        &options.gateway,
        &changed_reads,
        &mut memo.assembly,
    );
    memo.seen = snapshot.clone();
    let work = memo.assembly.work + memo.routes.components.work();
    (memo.assembly.dag().clone(), memo.statuses.clone(), work)
}

impl Memo {
    /// The Gateway API statuses of the last build's snapshot.
    pub fn gateway_status(&self) -> &GatewayApiStatus {
        self.gateway.status()
    }

    /// The Ingress candidates that differ from last time (`None`: gone, or no longer ours).
    fn ingress_changes(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed_reads: &HashSet<Read>,
    ) -> Vec<(CandidateId, Option<Arc<Candidate>>)> {
        let mut stale: BTreeSet<ObjectKey> = self
            .seen
            .ingresses
            .diff(&snapshot.ingresses)
            .map(|d| crate::store::diff_key(&d).clone())
            .collect();
        stale.extend(self.readers.of(changed_reads).cloned());
        let stale: Vec<ObjectKey> = stale.into_iter().collect();
        // The candidates are computed apart from each other (on the build threads for a large
        // batch), each recording what it read; the memo is updated in key order below.
        let computed = parallel::map(&stale, |key| {
            let object = snapshot.ingresses.get(key)?;
            Some(recording(|| {
                ingress::candidate(snapshot, options, key, object)
            }))
        });
        let mut changes = Vec::new();
        for (key, computed) in stale.into_iter().zip(computed) {
            let old = self.ingresses.remove(&key).and_then(|(candidate, reads)| {
                self.readers.remove(&key, &reads);
                candidate
            });
            let new = computed.and_then(|(candidate, reads)| {
                self.recomputed += 1;
                self.readers.add(&key, &reads);
                let candidate = candidate.map(Arc::new);
                self.ingresses
                    .insert(key.clone(), (candidate.clone(), reads));
                candidate
            });
            if old != new {
                changes.push(((ObjectKind::Ingress, key), new));
            }
        }
        changes
    }

    /// Computes the IngressRoutes' candidates again where an IngressRoute or something a walk read
    /// changed (delegation component by component, see [`Components`]), adding those that differ to
    /// `changes`; returns the IngressRoutes whose status may differ.
    fn route_changes(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed_reads: &HashSet<Read>,
        changes: &mut Vec<(CandidateId, Option<Arc<Candidate>>)>,
    ) -> Vec<ObjectKey> {
        let update = self
            .routes
            .components
            .update(&self.seen, snapshot, options, changed_reads);
        self.recomputed += update.recomputed;
        for key in update.dropped {
            if self.routes.candidates.remove(&key).is_some() {
                changes.push(((ObjectKind::IngressRoute, key), None));
            }
        }
        for new in update.candidates {
            let held = self.routes.candidates.get(&new.key);
            // An equal candidate walked again: the one held is the assembly's too.
            if held.is_some_and(|o| Arc::ptr_eq(o, &new) || *o == new) {
                continue;
            }
            let key = new.key.clone();
            let id = (ObjectKind::IngressRoute, key.clone());
            changes.push((id, Some(Arc::clone(&new))));
            self.routes.candidates.insert(key, new);
        }
        update.touched
    }

    /// The statuses of IngressRoutes `keys` again: a walked root's from its outcome, others from
    /// what the walk or the plan found, orphaned when nothing reached them.
    fn route_statuses(&mut self, snapshot: &Snapshot, options: &DagOptions, keys: Vec<ObjectKey>) {
        for key in keys {
            let id = (ObjectKind::IngressRoute, key);
            if ingressroute::our_route(snapshot, options, &id.1).is_none() {
                self.statuses.remove(&id);
                continue;
            }
            let outcome = self
                .routes
                .candidates
                .contains_key(&id.1)
                .then(|| self.assembly.outcome(&id))
                .flatten();
            let found = match outcome {
                Some(outcome) => Some(route_status(outcome.clone())),
                None => self.routes.components.status(&id.1).cloned(),
            };
            let status = ingressroute::status(&id.1, found);
            if self.statuses.get(&id) != Some(&status) {
                self.statuses.insert(id, status);
            }
        }
    }
}
