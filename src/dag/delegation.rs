//! The IngressRoute delegation walk, bounded for any input.
//!
//! A delegation graph can be shaped so that a naive recursive walk explodes: 31 IngressRoutes with two
//! routes each delegating `/` to the next one are walked 2^30 times. Here every *state* — an
//! IngressRoute reached under one parent path prefix — is walked once (memoised), the walk keeps its
//! own stack (the call stack's depth does not depend on the input), and the routes a root collects are
//! de-duplicated by (IngressRoute, route index). Work is proportional to the number of states plus the
//! routes collected, and both are bounded by [`super::DagLimits`].

use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::{BTreeMap, BTreeSet};

use super::ingressroute::{build_route, valid_description, Ours, RouteWithClusters};
use super::{DagLimits, Validity};
use crate::store::{ObjectKey, Snapshot};

/// Statuses the walk sets, first writer wins (as with the recursive walk it replaces).
pub(super) type Statuses = BTreeMap<ObjectKey, (Validity, String)>;

/// One IngressRoute reached under one parent prefix (`None` for a root).
type StateKey = (ObjectKey, Option<String>);

/// What walking one state found.
struct State {
    key: ObjectKey,
    /// The prefix of the parent route that delegated here; `None` for a root.
    prefix: Option<String>,
    /// Indexes into the IngressRoute's `routes` of the routes it serves itself.
    own_routes: Vec<usize>,
    /// Valid states this one delegates to.
    children: Vec<usize>,
    errors: Vec<String>,
    notes: Vec<String>,
    /// Longest delegation chain below and including this state.
    height: usize,
}

impl State {
    fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A state being walked: which route to look at next, and how deep it is.
struct Frame {
    state: usize,
    next_route: usize,
    depth: usize,
}

/// Walks delegations from roots; memoised across roots so shared subtrees are walked once.
pub(super) struct Walker<'a> {
    snapshot: &'a Snapshot,
    all: &'a Ours<'a>,
    limits: &'a DagLimits,
    states: Vec<State>,
    memo: HashMap<StateKey, usize>,
    /// Each route built once, whatever path reaches it: its content does not depend on the parent.
    built: HashMap<(ObjectKey, usize), Result<RouteWithClusters, String>>,
    /// Units of work done: states entered, routes examined, routes collected. For tests that bound it.
    pub work: u64,
}

/// The routes a root serves, and what its status mentions.
pub(super) struct Walked {
    pub routes: Vec<RouteWithClusters>,
    pub notes: Vec<String>,
}

impl<'a> Walker<'a> {
    pub fn new(snapshot: &'a Snapshot, all: &'a Ours<'a>, limits: &'a DagLimits) -> Self {
        Walker {
            snapshot,
            all,
            limits,
            states: Vec::new(),
            memo: HashMap::new(),
            built: HashMap::new(),
            work: 0,
        }
    }

    /// The routes of root `key` and of everything it delegates to. Errors are the root's own; a
    /// delegate's errors make the delegate invalid (its routes left out) without failing the root.
    pub fn walk_root(
        &mut self,
        key: &ObjectKey,
        statuses: &mut Statuses,
    ) -> Result<Walked, Vec<String>> {
        let root = self.enter((key.clone(), None));
        let mut stack = vec![Frame {
            state: root,
            next_route: 0,
            depth: 1,
        }];
        let mut on_stack: HashSet<ObjectKey> = HashSet::from_iter([key.clone()]);
        while let Some(frame) = stack.last_mut() {
            self.work += 1;
            let state_id = frame.state;
            let depth = frame.depth;
            let key = self.states[state_id].key.clone();
            let Some(ir) = self.all.get(&key).copied() else {
                // Only keys found in `all` are entered.
                stack.pop();
                continue;
            };
            let Some(route) = ir.spec.routes.get(frame.next_route) else {
                stack.pop();
                on_stack.remove(&key);
                self.finish(state_id, statuses);
                continue;
            };
            let index = frame.next_route;
            frame.next_route += 1;
            let parent_prefix = self.states[state_id].prefix.clone();
            let prefix = route.match_.as_str();
            if let Err(e) = super::validate::route_prefix(prefix) {
                self.states[state_id].errors.push(e);
                continue;
            }
            if let Some(parent) = parent_prefix.as_deref() {
                if !prefix.starts_with(parent) {
                    self.states[state_id].errors.push(format!(
                        "the path prefix {prefix:?} does not match the parent's path prefix {parent:?}"
                    ));
                    continue;
                }
            }
            let Some(delegate) = &route.delegate else {
                let built = self
                    .built
                    .entry((key.clone(), index))
                    .or_insert_with(|| build_route(self.snapshot, &key, route));
                match built {
                    Ok(_) => self.states[state_id].own_routes.push(index),
                    Err(e) => self.states[state_id].errors.push(e.clone()),
                }
                continue;
            };
            let target = super::ingressroute::delegate_key(delegate, &key);
            if on_stack.contains(&target) {
                let mut path: Vec<String> = stack
                    .iter()
                    .map(|f| self.states[f.state].key.to_string())
                    .collect();
                path.push(target.to_string());
                self.states[state_id].errors.push(format!(
                    "route creates a delegation cycle: {}",
                    path.join(" -> ")
                ));
                continue;
            }
            let Some(child) = self.all.get(&target) else {
                // Not an error of this IngressRoute: the route waits for its delegate, and the rest is
                // served. The status says so.
                self.states[state_id]
                    .notes
                    .push(format!("route {prefix:?}: delegate \"{target}\" not found"));
                continue;
            };
            if child.spec.virtualhost.is_some() {
                self.states[state_id].errors.push(format!(
                    "root IngressRoute cannot delegate to another root IngressRoute (\"{target}\")"
                ));
                continue;
            }
            let child_key = (target.clone(), Some(prefix.to_string()));
            if let Some(&child_id) = self.memo.get(&child_key) {
                // Walked before (on the stack is ruled out above: its key would be there).
                let child_state = &self.states[child_id];
                if depth + child_state.height > self.limits.max_delegation_depth {
                    let note = depth_note(prefix, &target, self.limits);
                    self.states[state_id].notes.push(note);
                } else if child_state.ok() {
                    self.states[state_id].children.push(child_id);
                }
                continue;
            }
            if depth >= self.limits.max_delegation_depth {
                // The delegate is invalid here; it is not walked, and a later path to it finds it
                // invalid too (one verdict per state).
                let id = self.enter(child_key);
                self.states[id].errors.push(format!(
                    "delegation depth limit of {} exceeded: it is reached through {} delegations",
                    self.limits.max_delegation_depth, depth
                ));
                self.finish(id, statuses);
                continue;
            }
            let child_id = self.enter(child_key);
            self.states[state_id].children.push(child_id);
            on_stack.insert(target);
            stack.push(Frame {
                state: child_id,
                next_route: 0,
                depth: depth + 1,
            });
        }
        let root_state = &self.states[root];
        if !root_state.ok() {
            return Err(root_state.errors.clone());
        }
        let notes = root_state.notes.clone();
        let routes = self.collect(root)?;
        Ok(Walked { routes, notes })
    }

    fn enter(&mut self, key: StateKey) -> usize {
        let id = self.states.len();
        self.states.push(State {
            key: key.0.clone(),
            prefix: key.1.clone(),
            own_routes: Vec::new(),
            children: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            height: 0,
        });
        self.memo.insert(key, id);
        id
    }

    /// Ends a state: its height, and its status (a delegate's; a root's is set by the caller).
    fn finish(&mut self, id: usize, statuses: &mut Statuses) {
        let height = 1 + self.states[id]
            .children
            .iter()
            .map(|c| self.states[*c].height)
            .max()
            .unwrap_or(0);
        // Children that turned out invalid contribute nothing.
        let children: Vec<usize> = self.states[id]
            .children
            .iter()
            .copied()
            .filter(|c| self.states[*c].ok())
            .collect();
        let state = &mut self.states[id];
        state.children = children;
        state.height = height;
        // An IngressRoute reached under several parent prefixes has one state each. It is valid if it
        // is served under any of them (its routes are), and the status says where it is not.
        let errors = state.errors.join("; ");
        match statuses.get_mut(&state.key) {
            None if state.ok() => {
                statuses.insert(
                    state.key.clone(),
                    (Validity::Valid, valid_description(&state.notes)),
                );
            }
            None => {
                statuses.insert(state.key.clone(), (Validity::Invalid, errors));
            }
            Some(existing) if existing.0 == Validity::Invalid && state.ok() => {
                *existing = (
                    Validity::Valid,
                    format!(
                        "{}; not served where it is also delegated to: {}",
                        valid_description(&state.notes),
                        existing.1
                    ),
                );
            }
            Some(existing) if existing.0 == Validity::Valid && !state.ok() => {
                existing.1.push_str(&format!(
                    "; not served where it is also delegated to: {errors}"
                ));
            }
            Some(_) => {}
        }
    }

    /// Every route reachable from `root` through valid states, once each, in walk order.
    fn collect(&mut self, root: usize) -> Result<Vec<RouteWithClusters>, Vec<String>> {
        let mut seen_states = HashSet::from_iter([root]);
        let mut seen_routes = BTreeSet::new();
        let mut pending = vec![root];
        let mut routes = Vec::new();
        while let Some(id) = pending.pop() {
            let state = &self.states[id];
            for index in &state.own_routes {
                self.work += 1;
                if !seen_routes.insert((state.key.clone(), *index)) {
                    continue;
                }
                if routes.len() >= self.limits.max_routes_per_virtual_host {
                    return Err(vec![routes_limit(self.limits)]);
                }
                if let Some(Ok(route)) = self.built.get(&(state.key.clone(), *index)) {
                    routes.push(route.clone());
                }
            }
            for child in state.children.iter().rev() {
                if seen_states.insert(*child) {
                    pending.push(*child);
                }
            }
        }
        Ok(routes)
    }
}

fn depth_note(prefix: &str, target: &ObjectKey, limits: &DagLimits) -> String {
    format!(
        "route {prefix:?}: delegate \"{target}\" not followed: it would exceed the delegation depth limit of {}",
        limits.max_delegation_depth
    )
}

/// The reason a virtual host with too many routes is refused.
pub(super) fn routes_limit(limits: &DagLimits) -> String {
    format!(
        "its delegation tree has more than the limit of {} routes per virtual host",
        limits.max_routes_per_virtual_host
    )
}
