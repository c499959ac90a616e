//! The IngressRoutes' candidates kept between builds, per delegation component.
//!
//! A root's walk reads only the IngressRoutes its delegations reach, and a walker shares what it
//! walked between the roots it walks. So the IngressRoutes fall into components (joined by "names
//! as a delegate", absent names included) that no walk crosses: walking each component's roots
//! with a walker of their own, oldest first, gives what one walker over every root gives. A
//! component is walked again only when one of its IngressRoutes, its walked roots, or something
//! its walk read changed; at 5,000 IngressRoutes a child's edit walked every root again (50 ms).
//!
//! The components are kept up to date from what changed, not found again: the changed
//! IngressRoutes, the roots that share an fqdn with them and the components whose walk read something
//! that changed are the seeds; the region is them, their components and what they name as delegates,
//! again and again; only that is taken apart and put together again. Finding every component after
//! each change cost 10 ms of a child's 20 ms edit at 10,000 mixed units.
//!
//! Edges are followed forward only, so an unchanged IngressRoute that names a member without being
//! reached by any root (an orphan's delegation) may stay out of the component: no walk reads it, and
//! when it changes, its own delegations lead to the component.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use smallvec::SmallVec;
use std::sync::Arc;

use super::build::Candidate;
use super::delegation::Statuses;
use super::ingressroute::{delegates, our_route, walk_roots, walked_roots, Ours};
use super::reads::{recording, Read, Readers};
use super::{DagOptions, Validity};
use crate::crd::IngressRoute;
use crate::store::{diff_key, ObjectKey, Snapshot};

/// The components as of the last update, and the indexes that find what a change touches.
#[derive(Debug, Default)]
pub(super) struct Components {
    /// The components by their oldest walked root.
    by_first_root: HashMap<ObjectKey, Component>,
    /// Every member of a component (absent ones too) → the component's oldest walked root.
    component_of: HashMap<ObjectKey, ObjectKey>,
    /// The roots of our class by fqdn, oldest first: the first keeps it. Mostly one each: a list,
    /// the first inline (a tree's node took 0.5 kB a root).
    fqdn_roots: HashMap<String, SmallVec<[Claim; 1]>>,
    /// The roots refused without a walk.
    refused: Statuses,
    /// What the components' walks read, by their oldest walked root.
    readers: Readers,
    /// The work of the walks that gave the components.
    work: u64,
}

/// A root's claim on its fqdn: older ones first.
type Claim = (Option<Time>, ObjectKey);

/// One component as last walked.
#[derive(Debug)]
struct Component {
    /// Every IngressRoute its walk may read (absent ones, and ones not of our class, too).
    members: Vec<ObjectKey>,
    /// Its walked roots, oldest first: one candidate each, held by the memo.
    roots: Vec<ObjectKey>,
    /// What the walk said of its members, by key: sorted, exactly as long as it is (a tree's node
    /// took 0.7 kB a component).
    statuses: Box<[(ObjectKey, (Validity, String))]>,
    reads: Vec<Read>,
    work: u64,
}

/// What an update changed.
#[derive(Default)]
pub(super) struct Update {
    /// The candidates of the components walked again.
    pub candidates: Vec<Arc<Candidate>>,
    /// The roots walked before and not now.
    pub dropped: Vec<ObjectKey>,
    /// The IngressRoutes whose status may differ: the region put together again.
    pub touched: Vec<ObjectKey>,
    /// How many IngressRoutes were walked again.
    pub recomputed: usize,
}

impl Components {
    /// The work of the walks that gave the current components.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// What the build found for `key` without its own outcome: refused, or what its component's
    /// walk said of it (`None`: nothing, an orphan if it is of our class).
    pub fn status(&self, key: &ObjectKey) -> Option<&(Validity, String)> {
        self.refused.get(key).or_else(|| {
            let first = self.component_of.get(key)?;
            let statuses = &self.by_first_root.get(first)?.statuses;
            let at = statuses.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
            Some(&statuses[at].1)
        })
    }

    /// Brings the components from `seen` up to `snapshot`: the region an IngressRoute changed in,
    /// or whose walk read something in `changed`, is taken apart and put together again.
    pub fn update(
        &mut self,
        seen: &Snapshot,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed: &HashSet<Read>,
    ) -> Update {
        let (dirty, mut seeds) = self.note_changes(seen, snapshot, options);
        seeds.extend(self.readers.of(changed).cloned());
        if seeds.is_empty() {
            return Update::default();
        }
        let region = self.region(snapshot, options, seeds);
        let mut previous = HashMap::new();
        let mut old_roots = HashSet::new();
        // Where each region key's status came from: refused with why, or a component's walk.
        let mut before = Vec::with_capacity(region.keys.len());
        for key in &region.keys {
            let refused = self.refused.remove(key);
            let first = self.component_of.remove(key);
            if let Some(first) = &first {
                if let Some(c) = self.by_first_root.remove(first) {
                    self.readers.remove(first, &c.reads);
                    self.work -= c.work;
                    old_roots.extend(c.roots.iter().cloned());
                    previous.insert(first.clone(), c);
                }
            }
            before.push((refused, first));
        }
        // A walk reads only its component's members, all of them in the region.
        let ours: Ours = region
            .keys
            .iter()
            .zip(&region.routes)
            .filter_map(|(k, r)| Some((k, (*r)?)))
            .collect();
        let walked = self.plan_roots(&ours, options);
        let mut out = Update::default();
        // The keys whose status a walk changed (within a component whose oldest root stayed).
        let mut restated = HashSet::new();
        for (roots, members) in region.grouped(&walked) {
            let root_keys: Vec<ObjectKey> = roots.iter().map(|(k, _)| (*k).clone()).collect();
            let first = root_keys[0].clone();
            let old = previous.remove(&first);
            // With no member changed, the component's edges are the ones it had, so its walk (which
            // reads only what its roots reach) is too; members that left with a changed IngressRoute
            // were never reached.
            let component = match old {
                Some(c)
                    if c.roots == root_keys
                        && !members.iter().any(|m| dirty.contains(m))
                        && !c.reads.iter().any(|r| changed.contains(r)) =>
                {
                    Component { members, ..c }
                }
                old => {
                    out.recomputed += members.len();
                    let ((candidates, statuses, work), reads) = recording(|| {
                        let mut statuses = Statuses::new();
                        let (candidates, work) =
                            walk_roots(snapshot, options, &ours, &roots, &mut statuses);
                        (candidates, statuses, work)
                    });
                    out.candidates.extend(candidates.into_iter().map(Arc::new));
                    let statuses: Box<[_]> = statuses.into_iter().collect();
                    let old = old.as_ref().map_or(&[][..], |c| &c.statuses);
                    restated.extend(differing(old, &statuses).cloned());
                    Component {
                        members,
                        roots: root_keys,
                        statuses,
                        reads,
                        work,
                    }
                }
            };
            for root in &component.roots {
                old_roots.remove(root);
            }
            for member in &component.members {
                self.component_of.insert(member.clone(), first.clone());
            }
            self.readers.add(&first, &component.reads);
            self.work += component.work;
            self.by_first_root.insert(first, component);
        }
        // A status may differ where the IngressRoute changed, where it was refused or not before
        // and now, where it moved to another component (or out of every one), or where its
        // component's walk says something else of it; for the others (at 10,000 IngressRoutes in
        // one component, nearly all of them) it is what it was.
        out.touched = region
            .keys
            .into_iter()
            .zip(before)
            .filter(|(key, (refused, first))| {
                dirty.contains(key)
                    || restated.contains(key)
                    || refused.as_ref() != self.refused.get(key)
                    || first.as_ref() != self.component_of.get(key)
            })
            .map(|(key, _)| key)
            .collect();
        out.dropped = old_roots.into_iter().collect();
        out
    }

    /// Updates the indexes for the IngressRoutes that differ between `seen` and `snapshot` in what
    /// a walk reads of them. Returns those, and where to start looking for what they touch: them
    /// and the roots that shared an fqdn with them (whether those are refused may change).
    fn note_changes(
        &mut self,
        seen: &Snapshot,
        snapshot: &Snapshot,
        options: &DagOptions,
    ) -> (HashSet<ObjectKey>, Vec<ObjectKey>) {
        let mut dirty = HashSet::new();
        let mut seeds = Vec::new();
        for d in seen.ingress_routes.diff(&snapshot.ingress_routes) {
            let key = diff_key(&d);
            let old = our_route(seen, options, key);
            let new = our_route(snapshot, options, key);
            let same = match (old, new) {
                (Some(a), Some(b)) => same_for_walk(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            for (route, present) in [(old, false), (new, true)] {
                let Some(route) = route else { continue };
                self.claim(key, route, present);
                if let Some(vhost) = &route.spec.virtualhost {
                    let sharing = self.fqdn_roots.get(&vhost.fqdn).into_iter().flatten();
                    seeds.extend(sharing.map(|(_, k)| k.clone()));
                }
            }
            seeds.push(key.clone());
            dirty.insert(key.clone());
        }
        (dirty, seeds)
    }

    /// Notes root `route`'s claim on its fqdn (`present`), or forgets it.
    fn claim(&mut self, key: &ObjectKey, route: &IngressRoute, present: bool) {
        if let Some(vhost) = &route.spec.virtualhost {
            let entry = (route.metadata.creation_timestamp.clone(), key.clone());
            if present {
                let roots = self.fqdn_roots.entry(vhost.fqdn.clone()).or_default();
                if let Err(at) = roots.binary_search(&entry) {
                    roots.insert(at, entry);
                }
            } else if let Some(roots) = self.fqdn_roots.get_mut(&vhost.fqdn) {
                roots.retain(|e| *e != entry);
                if roots.is_empty() {
                    self.fqdn_roots.remove(&vhost.fqdn);
                }
            }
        }
    }

    /// `seeds`, the components they are in and what they name as delegates, and so on: every
    /// component a walk of which may differ, old and new, whole.
    fn region<'a>(
        &self,
        snapshot: &'a Snapshot,
        options: &DagOptions,
        seeds: Vec<ObjectKey>,
    ) -> Region<'a> {
        let mut region = Region::default();
        let mut queue = Vec::new();
        for seed in &seeds {
            region.discover(seed, &mut queue);
        }
        let mut components = HashSet::new();
        while let Some(i) = queue.pop() {
            let key = region.keys[i].clone();
            if let Some(first) = self.component_of.get(&key) {
                if components.insert(first) {
                    for member in &self.by_first_root[first].members {
                        region.discover(member, &mut queue);
                    }
                }
            }
            let route = our_route(snapshot, options, &key);
            region.routes[i] = route;
            for target in route.into_iter().flat_map(|r| delegates(&key, r)) {
                let j = region.discover(&target, &mut queue);
                region.union(i, j);
            }
        }
        region.settle();
        region
    }

    /// The roots among `ours` that are walked, oldest first, noting the others as refused.
    fn plan_roots<'a>(
        &mut self,
        ours: &Ours<'a>,
        options: &DagOptions,
    ) -> Vec<(&'a ObjectKey, &'a IngressRoute)> {
        let claims = &self.fqdn_roots;
        let owners = |fqdn: &str| {
            let claims = claims.get(fqdn).map_or(&[][..], |c| c.as_slice());
            claims.iter().map(|(_, k)| k)
        };
        walked_roots(ours, owners, options, &mut self.refused)
    }
}

/// The keys whose entry differs between two sorted status lists (in one only, or otherwise).
fn differing<'a>(
    old: &'a [(ObjectKey, (Validity, String))],
    new: &'a [(ObjectKey, (Validity, String))],
) -> impl Iterator<Item = &'a ObjectKey> {
    use itertools::EitherOrBoth::{Both, Left, Right};
    itertools::merge_join_by(old, new, |(a, _), (b, _)| a.cmp(b)).filter_map(|e| match e {
        Left((k, _)) | Right((k, _)) => Some(k),
        Both((k, a), (_, b)) => (a != b).then_some(k),
    })
}

/// Whether a walk reads the same of `a` as of `b`: its spec, and its creation time (the order of
/// roots). A status write, which follows every change of an IngressRoute, changes neither; its
/// class annotation decides whether it is a member at all.
fn same_for_walk(a: &IngressRoute, b: &IngressRoute) -> bool {
    std::ptr::eq(a, b)
        || (a.spec == b.spec && a.metadata.creation_timestamp == b.metadata.creation_timestamp)
}

/// A component's walked roots (oldest first) and its members.
type RootsAndMembers<'a> = (Vec<(&'a ObjectKey, &'a IngressRoute)>, Vec<ObjectKey>);

/// The IngressRoutes a change touches, each with its IngressRoute (if of our class), joined by
/// "names as a delegate".
#[derive(Default)]
struct Region<'a> {
    keys: Vec<ObjectKey>,
    routes: Vec<Option<&'a IngressRoute>>,
    index: HashMap<ObjectKey, usize>,
    /// Union-find: each key's parent, then (once settled) its set's.
    parent: Vec<usize>,
}

impl<'a> Region<'a> {
    /// `key`'s place, queued when it is new.
    fn discover(&mut self, key: &ObjectKey, queue: &mut Vec<usize>) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len();
        self.keys.push(key.clone());
        self.routes.push(None);
        self.index.insert(key.clone(), i);
        self.parent.push(i);
        queue.push(i);
        i
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a] = b;
        }
    }

    /// Points every key at its set.
    fn settle(&mut self) {
        for i in 0..self.parent.len() {
            self.parent[i] = self.find(i);
        }
    }

    /// The sets with a walked root: each one's walked roots (in `walked`'s order, oldest first)
    /// and its members.
    fn grouped<'w>(
        &self,
        walked: &[(&'w ObjectKey, &'w IngressRoute)],
    ) -> Vec<RootsAndMembers<'w>> {
        let mut by_set: HashMap<usize, RootsAndMembers> = HashMap::new();
        for &(key, route) in walked {
            let set = self.parent[self.index[key]];
            by_set.entry(set).or_default().0.push((key, route));
        }
        for (key, set) in self.keys.iter().zip(&self.parent) {
            if let Some((_, members)) = by_set.get_mut(set) {
                members.push(key.clone());
            }
        }
        by_set.into_values().collect()
    }
}

#[cfg(test)]
#[path = "route_components_tests.rs"]
mod tests;
