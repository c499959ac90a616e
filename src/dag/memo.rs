//! The incremental build: contributions remembered between builds and a DAG changed host by host.
//!
//! What changed is found by diffing the snapshot with the last one (their persistent maps share what is
//! unchanged, so the diff visits only what differs). An Ingress's contribution is computed again when
//! the Ingress changed or something it read (a Service, a Secret, the delegations of a namespace) did;
//! the IngressRoutes' contributions, which depend on each other through delegation, are computed again
//! together when any IngressRoute or anything their walk read changed. Only candidates that differ from
//! last time go to the [`Assembly`], which re-applies the hosts they touch. [`super::build`] is the
//! reference this is tested against.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::assembly::{Assembly, CandidateId};
use super::build::{ingress_status, route_status, Candidate};
use super::delegation::Statuses;
use super::gateway::program::{program, GatewayProgram};
use super::reads::{self, recording, Read};
use super::{ingress, ingressroute, Dag, DagOptions, ObjectKind, StatusMap};
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
    /// Read → the Ingresses that made it (a few each, mostly one: a list).
    readers: HashMap<Read, Vec<ObjectKey>>,
    routes: RoutesMemo,
    gateway: GatewayMemo,
    assembly: Assembly,
    statuses: StatusMap,
    /// Contributions computed (not reused) by the last build, for tests and benchmarks.
    pub recomputed: usize,
}

#[derive(Debug, Default)]
struct RoutesMemo {
    reads: Vec<Read>,
    candidates: BTreeMap<ObjectKey, Arc<Candidate>>,
    /// The delegation walk's statuses (of IngressRoutes that are not roots, mostly).
    statuses: Statuses,
    work: u64,
}

/// The Gateway API program, computed again as a whole when a Gateway API object or something it
/// read changed: Gateways, routes and grants decide together what each listener serves.
#[derive(Debug, Default)]
struct GatewayMemo {
    reads: HashSet<Read>,
    program: GatewayProgram,
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
    let routes_changed = memo.route_changes(snapshot, options, &changed_reads, &mut changes);
    let removed_ingresses: Vec<ObjectKey> = changes
        .iter()
        .filter(|((kind, _), new)| *kind == ObjectKind::Ingress && new.is_none())
        .map(|((_, key), _)| key.clone())
        .collect();
    let recomputed = memo.assembly.update(changes);
    for key in removed_ingresses {
        memo.statuses.remove(&(ObjectKind::Ingress, key));
    }
    let mut route_outcomes = false;
    for id in recomputed {
        match id.0 {
            ObjectKind::Ingress => {
                if let Some(outcome) = memo.assembly.outcome(&id).cloned() {
                    let status = ingress_status(id.1.clone(), outcome);
                    memo.statuses.insert(id, status);
                }
            }
            ObjectKind::IngressRoute => route_outcomes = true,
            // No candidate is an HTTPRoute.
            ObjectKind::HttpRoute => {}
        }
    }
    if routes_changed || route_outcomes {
        memo.route_statuses(snapshot, options);
    }
    memo.gateway_program(snapshot, options, &changed_reads);
    memo.seen = snapshot.clone();
    let work = memo.assembly.work + memo.routes.work;
    let mut dag = memo.assembly.dag().clone();
    dag.add_gateway_program(&memo.gateway.program);
    (dag, memo.statuses.clone(), work)
}

impl Memo {
    /// The Gateway API program of `snapshot`.
    pub fn gateway(&self) -> &GatewayProgram {
        &self.gateway.program
    }

    fn gateway_program(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed_reads: &HashSet<Read>,
    ) {
        let (before, after) = (&self.seen, snapshot);
        let objects_changed = before
            .gateway_classes
            .diff(&after.gateway_classes)
            .next()
            .is_some()
            || before.gateways.diff(&after.gateways).next().is_some()
            || before.http_routes.diff(&after.http_routes).next().is_some()
            || before
                .reference_grants
                .diff(&after.reference_grants)
                .next()
                .is_some()
            || before.namespaces.diff(&after.namespaces).next().is_some();
        if !objects_changed && self.gateway.reads.is_disjoint(changed_reads) {
            return;
        }
        self.recomputed += 1;
        let (program, reads) = recording(|| program(snapshot, &options.gateway));
        self.gateway = GatewayMemo {
            reads: reads.into_iter().collect(),
            program,
        };
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
            .map(|d| match d {
                imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => {
                    k.clone()
                }
                imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k.clone(),
            })
            .collect();
        for read in changed_reads {
            stale.extend(self.readers.get(read).into_iter().flatten().cloned());
        }
        let mut changes = Vec::new();
        for key in stale {
            let old = self.ingresses.remove(&key).and_then(|(candidate, reads)| {
                for read in reads {
                    if let Some(readers) = self.readers.get_mut(&read) {
                        readers.retain(|k| *k != key);
                        if readers.is_empty() {
                            self.readers.remove(&read);
                        }
                    }
                }
                candidate
            });
            let new = snapshot.ingresses.get(&key).and_then(|object| {
                self.recomputed += 1;
                let (candidate, mut reads) =
                    recording(|| ingress::candidate(snapshot, options, &key, object));
                let mut distinct = HashSet::new();
                reads.retain(|r| distinct.insert(r.clone()));
                for read in &reads {
                    self.readers
                        .entry(read.clone())
                        .or_default()
                        .push(key.clone());
                }
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

    /// Computes the IngressRoutes' candidates again if any IngressRoute or anything their walk read
    /// changed, adding those that differ to `changes`; whether they were computed again.
    fn route_changes(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed_reads: &HashSet<Read>,
        changes: &mut Vec<(CandidateId, Option<Arc<Candidate>>)>,
    ) -> bool {
        let routes_changed = self
            .seen
            .ingress_routes
            .diff(&snapshot.ingress_routes)
            .next()
            .is_some()
            || self.routes.reads.iter().any(|r| changed_reads.contains(r));
        if !routes_changed {
            return false;
        }
        self.recomputed += snapshot.ingress_routes.len();
        let ((candidates, statuses, work), reads) =
            recording(|| ingressroute::candidates(snapshot, options));
        let mut old = std::mem::take(&mut self.routes.candidates);
        for c in candidates {
            let key = c.key.clone();
            let new = Arc::new(c);
            if old.remove(&key).as_ref() != Some(&new) {
                changes.push((
                    (ObjectKind::IngressRoute, key.clone()),
                    Some(Arc::clone(&new)),
                ));
            }
            self.routes.candidates.insert(key, new);
        }
        changes.extend(
            old.into_keys()
                .map(|key| ((ObjectKind::IngressRoute, key), None)),
        );
        self.routes.reads = reads;
        self.routes.statuses = statuses;
        self.routes.work = work;
        true
    }

    /// Every IngressRoute's status again: a root's from its outcome, others from the walk.
    fn route_statuses(&mut self, snapshot: &Snapshot, options: &DagOptions) {
        let mut merged = self.routes.statuses.clone();
        for key in self.routes.candidates.keys() {
            if let Some(outcome) = self
                .assembly
                .outcome(&(ObjectKind::IngressRoute, key.clone()))
            {
                merged.insert(key.clone(), route_status(outcome.clone()));
            }
        }
        // Ordered by kind first: the IngressRoutes' statuses are the ones from the first of that kind.
        let first = (ObjectKind::IngressRoute, ObjectKey::new("", ""));
        let stale: Vec<_> = self
            .statuses
            .range(first..)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.statuses.remove(&id);
        }
        for status in ingressroute::statuses(snapshot, options, &merged) {
            self.statuses
                .insert((status.kind, status.object.clone()), status);
        }
    }
}
