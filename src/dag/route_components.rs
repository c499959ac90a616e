//! The IngressRoutes' candidates kept between builds, per delegation component.
//!
//! A root's walk reads only the IngressRoutes its delegations reach, and a walker shares what it
//! walked between the roots it walks. So the IngressRoutes fall into components (joined by "names
//! as a delegate", absent names included) that no walk crosses: walking each component's roots
//! with a walker of their own, oldest first, gives what one walker over every root gives. A
//! component is walked again only when one of its IngressRoutes, its walked roots, or something
//! its walk read changed; at 5,000 IngressRoutes a child's edit walked every root again (50 ms).

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;

use super::build::Candidate;
use super::delegation::Statuses;
use super::ingressroute::{delegates, plan, walk_roots};
use super::reads::{recording, Read};
use super::DagOptions;
use crate::crd::IngressRoute;
use crate::store::{ObjectKey, Snapshot};

/// The last build's components, by their oldest walked root.
#[derive(Debug, Default)]
pub(super) struct Components {
    by_first_root: HashMap<ObjectKey, Component>,
}

/// One component as last walked.
#[derive(Debug)]
struct Component {
    /// Every IngressRoute its walk may read, sorted, with the object it was (`None`: absent, or not
    /// of our class).
    members: Vec<(ObjectKey, Option<Arc<IngressRoute>>)>,
    /// Its walked roots, oldest first.
    roots: Vec<ObjectKey>,
    candidates: Vec<Arc<Candidate>>,
    statuses: Statuses,
    reads: Vec<Read>,
    work: u64,
}

/// Every root's candidate and the walk's statuses, as [`super::ingressroute::candidates`] gives
/// them, with how many IngressRoutes were walked again.
pub(super) struct Walked {
    pub candidates: Vec<Arc<Candidate>>,
    pub statuses: Statuses,
    pub work: u64,
    pub recomputed: usize,
}

impl Components {
    /// Every root's candidate, as last walked.
    pub fn candidates(&self) -> impl Iterator<Item = &Arc<Candidate>> {
        self.by_first_root
            .values()
            .flat_map(|c| c.candidates.iter())
    }

    /// Whether a component's walk read something in `changed`.
    pub fn read_changed(&self, changed: &HashSet<Read>) -> bool {
        self.by_first_root
            .values()
            .any(|c| c.reads.iter().any(|r| changed.contains(r)))
    }

    /// The candidates of `snapshot`'s roots, walking again only the components that changed.
    pub fn update(
        &mut self,
        snapshot: &Snapshot,
        options: &DagOptions,
        changed_reads: &HashSet<Read>,
    ) -> Walked {
        let plan = plan(snapshot, options);
        let mut sets = DisjointSets::default();
        for (key, route) in &plan.ours {
            let at = sets.index(key);
            for target in delegates(key, route) {
                let to = sets.index(&target);
                sets.union(at, to);
            }
        }
        // Each component's walked roots (oldest first), then its members.
        let mut by_set: HashMap<usize, RootsAndMembers> = HashMap::new();
        for &(key, route) in &plan.walked {
            let at = sets.index(key);
            let set = sets.find(at);
            by_set.entry(set).or_default().0.push((key, route));
        }
        for (i, key) in sets.keys.clone().into_iter().enumerate() {
            if let Some((_, members)) = by_set.get_mut(&sets.find(i)) {
                members.push(key);
            }
        }
        let mut previous = std::mem::take(&mut self.by_first_root);
        let mut out = Walked {
            candidates: Vec::new(),
            statuses: Statuses::new(),
            work: 0,
            recomputed: 0,
        };
        for (roots, mut member_keys) in by_set.into_values() {
            member_keys.sort();
            let members: Vec<(ObjectKey, Option<Arc<IngressRoute>>)> = member_keys
                .into_iter()
                .map(|key| {
                    let object = plan
                        .ours
                        .contains_key(&key)
                        .then(|| snapshot.ingress_routes.get(&key).cloned())
                        .flatten();
                    (key, object)
                })
                .collect();
            let root_keys: Vec<ObjectKey> = roots.iter().map(|(k, _)| (*k).clone()).collect();
            let first = root_keys[0].clone();
            let component = match previous.remove(&first) {
                // Holding the objects just compared, not the ones walked: a status write replaces
                // every IngressRoute after a change, and the old ones are freed.
                Some(c) if c.unchanged(&members, &root_keys, changed_reads) => {
                    Component { members, ..c }
                }
                _ => {
                    out.recomputed += members.len();
                    let ((candidates, statuses, work), reads) = recording(|| {
                        let mut statuses = Statuses::new();
                        let (candidates, work) =
                            walk_roots(snapshot, options, &plan.ours, &roots, &mut statuses);
                        (candidates, statuses, work)
                    });
                    Component {
                        members,
                        roots: root_keys,
                        candidates: candidates.into_iter().map(Arc::new).collect(),
                        statuses,
                        reads,
                        work,
                    }
                }
            };
            out.candidates.extend(component.candidates.iter().cloned());
            out.statuses.extend(
                component
                    .statuses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            out.work += component.work;
            self.by_first_root.insert(first, component);
        }
        out.statuses.extend(plan.refused);
        out
    }
}

impl Component {
    /// Whether walking `roots` over `members` would give what this component holds.
    fn unchanged(
        &self,
        members: &[(ObjectKey, Option<Arc<IngressRoute>>)],
        roots: &[ObjectKey],
        changed_reads: &HashSet<Read>,
    ) -> bool {
        self.roots == roots
            && self.members.len() == members.len()
            && self.members.iter().zip(members).all(|((ka, a), (kb, b))| {
                ka == kb
                    && match (a, b) {
                        (Some(a), Some(b)) => same_for_walk(a, b),
                        (None, None) => true,
                        _ => false,
                    }
            })
            && !self.reads.iter().any(|r| changed_reads.contains(r))
    }
}

/// Whether a walk reads the same of `a` as of `b`: its spec, and its creation time (the order of
/// roots). A status write, which follows every change of an IngressRoute, changes neither; its
/// class annotation decides whether it is a member at all.
fn same_for_walk(a: &Arc<IngressRoute>, b: &Arc<IngressRoute>) -> bool {
    Arc::ptr_eq(a, b)
        || (a.spec == b.spec && a.metadata.creation_timestamp == b.metadata.creation_timestamp)
}

/// A component's walked roots (oldest first) and its members.
type RootsAndMembers<'a> = (Vec<(&'a ObjectKey, &'a IngressRoute)>, Vec<ObjectKey>);

/// Union-find over IngressRoute keys.
#[derive(Default)]
struct DisjointSets {
    keys: Vec<ObjectKey>,
    index: HashMap<ObjectKey, usize>,
    parent: Vec<usize>,
}

impl DisjointSets {
    fn index(&mut self, key: &ObjectKey) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len();
        self.keys.push(key.clone());
        self.index.insert(key.clone(), i);
        self.parent.push(i);
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
}

#[cfg(test)]
#[path = "route_components_tests.rs"]
mod tests;
