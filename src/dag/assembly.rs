//! The DAG assembled from candidates and kept between builds, changed host by host.
//!
//! Whether a candidate is applied depends only on the candidates applied before it that share a host
//! with it (route conflicts, the route limit and TLS bindings are all per host), and a refused
//! candidate is refused on every host. So the candidates fall into components joined by shared hosts,
//! and a component's outcome is the full build's restricted to it: applying its members oldest first
//! gives the same routes, the same refusals. A change re-applies only the components it touches (the
//! changed candidates' old and new hosts, closed over the candidates sharing them) and replaces those
//! hosts' entries in the DAG; clusters and certificates, shared across hosts, are counted by the
//! candidates and hosts using them, and by the Gateway API program's routes and listeners
//! ([`super::gateway_memo`]), which keeps the DAG's Gateway listeners here too.

use foldhash::{HashMap, HashSet};
use std::collections::BTreeSet;
use std::sync::Arc;

use smallvec::SmallVec;

use super::build::{insert_clusters, Builder, Candidate};
use super::{Cluster, Dag, ObjectKind, TlsSecret};
use crate::store::ObjectKey;

/// A candidate's identity: its object.
pub(super) type CandidateId = (ObjectKind, ObjectKey);

/// A candidate's outcome: its status notes when applied, the reasons it was refused otherwise.
pub(super) type Outcome = Result<Vec<String>, Vec<String>>;

#[derive(Debug, Default)]
pub(super) struct Assembly {
    /// `--max-routes-per-virtual-host`.
    route_limit: usize,
    candidates: HashMap<CandidateId, Arc<Candidate>>,
    /// The candidates naming each host (mostly one: a list, the first inline).
    by_host: HashMap<String, SmallVec<[CandidateId; 1]>>,
    outcomes: HashMap<CandidateId, Outcome>,
    /// How many applied candidates use each cluster (a cluster's name is derived from all of its
    /// settings, so one name is one content).
    cluster_users: HashMap<String, usize>,
    /// The certificate each TLS host serves, and how many hosts serve each.
    host_secrets: HashMap<String, String>,
    secret_users: HashMap<String, usize>,
    dag: Dag,
    /// Units of work of the last update, as [`super::build_counting_work`] counts them.
    pub work: u64,
}

impl Assembly {
    pub fn new(route_limit: usize) -> Self {
        Assembly {
            route_limit,
            ..Assembly::default()
        }
    }

    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    pub fn outcome(&self, id: &CandidateId) -> Option<&Outcome> {
        self.outcomes.get(id)
    }

    /// Replaces each changed candidate (`None`: gone) and re-applies the components they touch.
    /// Returns the candidates whose outcome was computed again.
    pub fn update(
        &mut self,
        changes: Vec<(CandidateId, Option<Arc<Candidate>>)>,
    ) -> Vec<CandidateId> {
        self.work = 0;
        // The first build: nothing held, so every candidate is new, nothing is to be taken back,
        // and the components are every candidate with every host (no walk needed to find them).
        let first = self.candidates.is_empty();
        debug_assert!(
            !first
                || (self.outcomes.is_empty()
                    && self.dag.virtual_hosts.is_empty()
                    && self.dag.secure_virtual_hosts.is_empty()
                    && self.host_secrets.is_empty()),
            "no candidate held, so no host and no outcome either"
        );
        let mut seeds: BTreeSet<String> = BTreeSet::new();
        // Hashed, not ordered: they are applied in the candidates' order below. At the first build
        // every candidate is one, and comparing keys (namespaces, then names) cost more than hashing.
        let mut members: HashSet<CandidateId> = HashSet::default();
        // The first build and a relist bring every candidate: the maps grow once, not step by step.
        self.candidates.reserve(changes.len());
        self.outcomes.reserve(changes.len());
        self.by_host.reserve(changes.len());
        for (id, new) in changes {
            if let Some(old) = self.candidates.remove(&id) {
                self.unapply(&id, &old);
                for host in old.hosts() {
                    if let Some(ids) = self.by_host.get_mut(host) {
                        ids.retain(|i| *i != id);
                        if ids.is_empty() {
                            self.by_host.remove(host);
                        }
                    }
                    seeds.insert(host.to_string());
                }
            }
            if let Some(new) = new {
                for host in new.hosts() {
                    self.by_host
                        .entry(host.to_string())
                        .or_default()
                        .push(id.clone());
                    if !first {
                        seeds.insert(host.to_string());
                    }
                }
                self.candidates.insert(id.clone(), new);
                if !first {
                    members.insert(id);
                }
            }
        }
        let mut ordered: Vec<Arc<Candidate>> = if first {
            self.candidates.values().cloned().collect()
        } else {
            self.take_back_components(seeds, members)
        };
        // Applied oldest first, as the full build does.
        ordered.sort_by(|a, b| a.order().cmp(&b.order()));
        let mut builder = Builder::new(self.route_limit, ordered.len());
        // The clusters the DAG does not have yet, added together (see `insert_clusters`).
        let mut first_used = Vec::new();
        for c in &ordered {
            let outcome = match &c.contribution {
                Ok((contribution, notes)) => {
                    builder.try_apply(contribution).map(|()| notes.clone())
                }
                Err(reasons) => Err(reasons.clone()),
            };
            if let (Ok(_), Ok((contribution, _))) = (&outcome, &c.contribution) {
                first_used.extend(contribution.clusters.iter().filter(|c| self.count_user(c)));
            }
            self.outcomes.insert((c.kind, c.key.clone()), outcome);
        }
        insert_clusters(&mut self.dag.clusters, first_used);
        for (host, out) in builder.outputs() {
            if let Some(secret) = out.secret {
                self.use_secret(host, secret);
            }
            if let Some(secure) = out.secure {
                self.dag
                    .secure_virtual_hosts
                    .insert(host.to_string(), secure);
            }
            if let Some(plain) = out.plain {
                self.dag.virtual_hosts.insert(host.to_string(), plain);
            }
        }
        self.work = builder.work;
        ordered.iter().map(|c| (c.kind, c.key.clone())).collect()
    }

    /// The components of the `seeds` hosts (every candidate reachable from them through shared
    /// hosts; `members`, the changed candidates, are in them already) taken back: the candidates'
    /// outcomes and clusters, the hosts' entries in the DAG. Returns the components' candidates.
    fn take_back_components(
        &mut self,
        seeds: BTreeSet<String>,
        mut members: HashSet<CandidateId>,
    ) -> Vec<Arc<Candidate>> {
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        let mut pending: Vec<String> = seeds.into_iter().collect();
        while let Some(host) = pending.pop() {
            if hosts.contains(&host) {
                continue;
            }
            for id in self.by_host.get(&host).into_iter().flatten() {
                // A host lists only candidates that are held (they come and go together).
                let Some(c) = self.candidates.get(id) else {
                    continue;
                };
                if !members.contains(id) {
                    members.insert(id.clone());
                    pending.extend(
                        c.hosts()
                            .into_iter()
                            .filter(|h| *h != host && !hosts.contains(*h))
                            .map(str::to_string),
                    );
                }
            }
            hosts.insert(host);
        }
        for id in &members {
            if let Some(c) = self.candidates.get(id).cloned() {
                self.unapply(id, &c);
            }
        }
        for host in &hosts {
            self.clear_host(host);
        }
        members
            .iter()
            .filter_map(|id| self.candidates.get(id).cloned())
            .collect()
    }

    /// Takes back what an applied candidate's contribution added to the shared clusters.
    fn unapply(&mut self, id: &CandidateId, c: &Candidate) {
        if let (Some(Ok(_)), Ok((contribution, _))) = (self.outcomes.remove(id), &c.contribution) {
            for cluster in &contribution.clusters {
                self.drop_cluster(&cluster.name);
            }
        }
    }

    fn clear_host(&mut self, host: &str) {
        self.dag.virtual_hosts.remove(host);
        self.dag.secure_virtual_hosts.remove(host);
        if let Some(secret) = self.host_secrets.remove(host) {
            if release(&mut self.secret_users, &secret) {
                self.dag.secrets.remove(&secret);
            }
        }
    }

    /// One user more for `cluster` (the Gateway API program's routes count here too).
    pub(super) fn use_cluster(&mut self, cluster: &Arc<Cluster>) {
        if self.count_user(cluster) {
            self.dag
                .clusters
                .insert(cluster.name.clone(), Arc::clone(cluster));
        }
    }

    /// Counts one user more for `cluster`; whether it is its first (the DAG has yet to get it).
    fn count_user(&mut self, cluster: &Cluster) -> bool {
        // Looked up before an entry is made, so only a cluster's first use copies its name (a
        // contribution holds each cluster once; further uses come from other objects and Gateway
        // routes leading to the same Service port).
        if let Some(users) = self.cluster_users.get_mut(&cluster.name) {
            *users += 1;
            return false;
        }
        self.cluster_users.insert(cluster.name.clone(), 1);
        true
    }

    pub(super) fn drop_cluster(&mut self, name: &str) {
        if release(&mut self.cluster_users, name) {
            self.dag.clusters.remove(name);
        }
    }

    /// One user more for a certificate not bound to a host (a Gateway HTTPS listener's).
    pub(super) fn hold_secret(&mut self, secret: &TlsSecret) {
        let users = self.secret_users.entry(secret.name.clone()).or_default();
        *users += 1;
        if *users == 1 {
            self.dag.secrets.insert(secret.name.clone(), secret.clone());
        }
    }

    pub(super) fn release_secret(&mut self, name: &str) {
        if release(&mut self.secret_users, name) {
            self.dag.secrets.remove(name);
        }
    }

    /// The Gateway API listeners, which the Gateway API program keeps.
    pub(super) fn gateway_listeners_mut(
        &mut self,
    ) -> &mut imbl::OrdMap<String, super::gateway::model::GatewayEnvoyListener> {
        &mut self.dag.gateway_listeners
    }

    fn use_secret(&mut self, host: &str, secret: TlsSecret) {
        let users = self.secret_users.entry(secret.name.clone()).or_default();
        *users += 1;
        self.host_secrets
            .insert(host.to_string(), secret.name.clone());
        if *users == 1 {
            self.dag.secrets.insert(secret.name.clone(), secret);
        }
    }
}

/// One user fewer; whether that was the last.
fn release(users: &mut HashMap<String, usize>, name: &str) -> bool {
    match users.get_mut(name) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            users.remove(name);
            true
        }
        None => false,
    }
}
