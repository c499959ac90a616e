//! The DAG builder: objects in, routing model and statuses out.

use foldhash::{HashMap, HashMapExt};
use std::collections::{btree_map, BTreeMap};
use std::sync::Arc;

use itertools::Itertools;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::host_routes::HostRoutes;
use super::route_table::RouteTable;
use super::{
    ingress, ingressroute, Cluster, Dag, DagOptions, Insecure, ObjectKind, ObjectStatus, Route,
    SecureVirtualHost, TlsSecret, TlsVersion, Validity, VirtualHost, WeightedCluster,
};
use crate::store::{ObjectKey, Snapshot};

/// Builds the DAG and one status per object this controller owns.
///
/// Objects are applied oldest first (then by namespace/name), Ingresses before IngressRoutes, and the
/// first object to claim a route or a host's certificate keeps it: a newcomer that conflicts is the one
/// reported invalid, so adding an object never takes routes away from an existing one.
pub fn build(snapshot: &Snapshot, options: &DagOptions) -> (Dag, Vec<ObjectStatus>) {
    let (dag, statuses, _) = build_counting_work(snapshot, options);
    (dag, statuses)
}

/// [`build`], also returning how many units of work it did (delegation states entered, routes
/// examined and collected): tests bound it to prove the work is linear in the input, whatever its
/// shape, without timing anything.
pub fn build_counting_work(
    snapshot: &Snapshot,
    options: &DagOptions,
) -> (Dag, Vec<ObjectStatus>, u64) {
    // Each Ingress's candidate stands alone (on the build threads, for many).
    let ingresses: Vec<_> = snapshot.ingresses.iter().collect();
    let mut candidates: Vec<Candidate> = crate::parallel::map(&ingresses, |(key, object)| {
        ingress::candidate(snapshot, options, key, object)
    })
    .into_iter()
    .flatten()
    .collect();
    let (routes, mut route_statuses, walk_work) = ingressroute::candidates(snapshot, options);
    candidates.extend(routes);
    let mut builder = Builder::new(options.limits.max_routes_per_virtual_host, candidates.len());
    builder.work += walk_work;
    // Oldest first across both kinds (Ingresses first at equal age, then by name): the first object
    // to claim a route or a host keeps it.
    candidates.sort_by(|a, b| a.order().cmp(&b.order()));
    let mut statuses = Vec::new();
    for candidate in &candidates {
        let outcome = match &candidate.contribution {
            Ok((c, notes)) => builder.try_apply(c).map(|()| notes.clone()),
            Err(reasons) => Err(reasons.clone()),
        };
        let key = candidate.key.clone();
        match candidate.kind {
            ObjectKind::Ingress => statuses.push(ingress_status(key, outcome)),
            ObjectKind::IngressRoute => {
                route_statuses.insert(key, route_status(outcome));
            }
            // No candidate is an HTTPRoute.
            ObjectKind::HttpRoute => {}
        }
    }
    statuses.extend(ingressroute::statuses(snapshot, options, &route_statuses));
    let work = builder.work;
    let mut dag = builder.finish();
    dag.add_gateway_program(&super::gateway::program::program(
        snapshot,
        &options.gateway,
    ));
    (dag, statuses, work)
}

/// An Ingress's status from the outcome of its contribution.
pub(super) fn ingress_status(
    key: ObjectKey,
    outcome: Result<Vec<String>, Vec<String>>,
) -> ObjectStatus {
    ObjectStatus {
        kind: ObjectKind::Ingress,
        object: key,
        validity: if outcome.is_ok() {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        description: match outcome {
            Ok(_) => "valid Ingress".to_string(),
            Err(reasons) => reasons.join("; "),
        },
    }
}

/// A root IngressRoute's validity and description from the outcome of its contribution.
pub(super) fn route_status(outcome: Result<Vec<String>, Vec<String>>) -> (Validity, String) {
    match outcome {
        Ok(notes) => (Validity::Valid, ingressroute::valid_description(&notes)),
        Err(reasons) => (Validity::Invalid, reasons.join("; ")),
    }
}

/// What one object would add, and when it was created: contributions are applied oldest first
/// across kinds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub created: Option<Time>,
    pub kind: ObjectKind,
    pub key: ObjectKey,
    /// The contribution and the notes its status mentions, or why the object is invalid.
    pub contribution: Result<(Contribution, Vec<String>), Vec<String>>,
}

impl Candidate {
    /// The order contributions are applied in.
    pub fn order(&self) -> (&Option<Time>, ObjectKind, &ObjectKey) {
        (&self.created, self.kind, &self.key)
    }

    /// The hosts the contribution names (routes or TLS); none for an invalid object.
    pub fn hosts(&self) -> std::collections::BTreeSet<&str> {
        let Ok((c, _)) = &self.contribution else {
            return Default::default();
        };
        c.routes
            .keys()
            .map(|(host, _)| host.as_str())
            .chain(c.tls.keys().map(String::as_str))
            .collect()
    }
}

/// What one valid object (or delegation tree) adds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Contribution {
    pub source: ObjectKey,
    /// Shared with the DAGs built from them, as are the clusters.
    pub routes: RouteTable,
    pub clusters: Vec<Arc<Cluster>>,
    pub tls: BTreeMap<String, TlsBinding>,
}

/// TLS for one host: a certificate (none for passthrough), a minimum version, and optionally a TCP
/// proxy instead of HTTP routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsBinding {
    pub secret: Option<TlsSecret>,
    pub min_tls_version: TlsVersion,
    pub tcp_proxy: Option<Vec<WeightedCluster>>,
}

impl TlsBinding {
    fn secret_name(&self) -> Option<&str> {
        self.secret.as_ref().map(|s| s.name.as_str())
    }
}

impl Contribution {
    pub fn new(source: ObjectKey) -> Self {
        Contribution {
            source,
            routes: RouteTable::default(),
            clusters: Vec::new(),
            tls: BTreeMap::new(),
        }
    }

    /// The contribution as it is kept between builds: each cluster once, and without the spare room
    /// its collections grew (a `Vec` of clusters grows to room for four, and most contributions have
    /// one).
    pub fn finished(mut self) -> Self {
        self.routes.seal();
        // Every route brings its cluster, and several paths of an Ingress often lead to one Service
        // port. A cluster's name is derived from all of its settings, so one name is one cluster.
        self.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        self.clusters.dedup_by(|a, b| a.name == b.name);
        self.clusters.shrink_to_fit();
        self
    }

    /// Adds a route; the same path given twice with different backends is an error.
    pub fn add_route(
        &mut self,
        host: &str,
        route: Route,
        clusters: Vec<Cluster>,
    ) -> Result<(), String> {
        // One key and one lookup per route: this runs for every route of every object a build reads.
        match self.routes.entry((host.to_string(), route.path.clone())) {
            btree_map::Entry::Occupied(existing) if existing.get().clusters != route.clusters => {
                Err(format!(
                    "path {:?} on host {host:?} is given twice with different backends",
                    route.path.path()
                ))
            }
            btree_map::Entry::Occupied(_) => Ok(()),
            btree_map::Entry::Vacant(place) => {
                place.insert(Arc::new(route));
                self.clusters.extend(clusters.into_iter().map(Arc::new));
                Ok(())
            }
        }
    }
}

/// The routing model under construction. It borrows the contributions applied to it (they outlive a
/// build: the memo keeps them), and the DAG it hands out shares their routes and clusters (`Arc`s): at
/// 10,000 hosts, owned copies of every route and cluster were the largest transient allocation of
/// isobar's first build, and copies in the DAG about 7 MiB of what it holds.
pub(super) struct Builder<'a> {
    // Hash maps: looked up per route and cluster applied, and by host name (B-tree lookups compared
    // names byte by byte); the order comes from `outputs()` and the DAG's ordered maps.
    routes: HashMap<&'a str, HostRoutes<'a>>,
    clusters: HashMap<&'a str, &'a Arc<Cluster>>,
    /// Host → (TLS, object that bound it).
    tls: HashMap<&'a str, (&'a TlsBinding, &'a ObjectKey)>,
    max_routes_per_virtual_host: usize,
    /// Units of work done, see [`build_counting_work`].
    pub work: u64,
}

impl<'a> Builder<'a> {
    /// A builder for `candidates` candidates: its maps of hosts and clusters are made with room for
    /// as many (most objects bring one host and one cluster), so the first build does not grow them
    /// step by step, each step hashing every host or cluster name again.
    pub fn new(max_routes_per_virtual_host: usize, candidates: usize) -> Self {
        Builder {
            routes: HashMap::with_capacity(candidates),
            clusters: HashMap::with_capacity(candidates),
            tls: HashMap::new(),
            max_routes_per_virtual_host,
            work: 0,
        }
    }

    /// Checks `c` against what is there and adds it, or says why it can't be added without taking
    /// something from an object already applied.
    pub fn try_apply(&mut self, c: &'a Contribution) -> Result<(), Vec<String>> {
        self.work += c.routes.len() as u64 + 1;
        self.check(c)?;
        self.apply(c);
        Ok(())
    }

    fn check(&self, c: &Contribution) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        // The keys are in (host, path) order: each host's routes are one run, and the host is
        // looked up once for them all.
        for (host, routes) in &c.routes.iter().chunk_by(|((host, _), _)| host.as_str()) {
            let existing = self.routes.get(host);
            let mut added = 0;
            for ((_, path), route) in routes {
                let Some(routed) = existing else {
                    added += 1;
                    continue;
                };
                // One lookup of the path serves both the count and the conflict check.
                let same_path = routed.get(path);
                if same_path.is_none() {
                    added += 1;
                }
                let equivalent = path.equivalent().and_then(|p| routed.get(&p));
                for other in same_path.into_iter().chain(equivalent) {
                    if other.source != route.source {
                        errors.push(format!(
                            "path {:?} on host {host:?} is already routed by \"{}\"",
                            path.path(),
                            other.source
                        ));
                    }
                }
            }
            let existing = existing.map_or(0, HostRoutes::len);
            if added > 0 && existing + added > self.max_routes_per_virtual_host {
                errors.push(format!(
                    "host {host:?} would have {} routes, more than the limit of {} routes per virtual host",
                    existing + added,
                    self.max_routes_per_virtual_host
                ));
            }
        }
        for (host, binding) in &c.tls {
            if let Some((existing, source)) = self.tls.get(host.as_str()) {
                if *existing != binding {
                    errors.push(format!(
                        "tls host {host:?} is already configured by \"{source}\" (secret {:?})",
                        existing.secret_name().unwrap_or("none: passthrough")
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn apply(&mut self, c: &'a Contribution) {
        for ((host, path), route) in &c.routes {
            self.routes
                .entry(host.as_str())
                .or_default()
                .insert(path, route);
        }
        for cluster in &c.clusters {
            self.clusters.insert(&cluster.name, cluster);
        }
        for (host, binding) in &c.tls {
            self.tls.entry(host).or_insert((binding, &c.source));
        }
    }

    /// What each host something was applied to turns into, in host order: each computed on its own
    /// (on the build threads, for many), as it depends on nothing but the builder.
    pub fn outputs(&self) -> Vec<(&'a str, HostOutput)> {
        let mut hosts: Vec<&'a str> = self.routes.keys().chain(self.tls.keys()).copied().collect();
        hosts.sort_unstable();
        hosts.dedup();
        crate::parallel::map(hosts, |host| (host, self.host(host)))
    }

    /// What `host` turns into: its plain-HTTP and TLS virtual hosts and its certificate.
    fn host(&self, host: &str) -> HostOutput {
        let mut out = HostOutput::default();
        let mut routes: Vec<&Arc<Route>> = self
            .routes
            .get(host)
            .map(HostRoutes::routes)
            .unwrap_or_default();
        // No two routes of a host have one path, so no two have one precedence.
        routes.sort_unstable_by(|a, b| a.path.precedence().cmp(&b.path.precedence()));
        let tls = self.tls.get(host).map(|(binding, _)| *binding);
        // What plain HTTP gets: everything when the host has no TLS (a redirect would lead
        // nowhere), otherwise what each route allows.
        let mut insecure: Vec<Arc<Route>> = routes
            .iter()
            .filter(|r| r.insecure != Insecure::Refuse)
            .map(|r| {
                if tls.is_none() && r.insecure != Insecure::Serve {
                    Arc::new(Route {
                        insecure: Insecure::Serve,
                        ..Route::clone(r)
                    })
                } else {
                    Arc::clone(r)
                }
            })
            .collect();
        // The DAG keeps it; collected through a filter it has room for four routes where most
        // hosts have one or two.
        insecure.shrink_to_fit();
        if let Some(binding) = tls {
            out.secret.clone_from(&binding.secret);
            // A TLS host needs something to serve: routes or a TCP proxy.
            if binding.tcp_proxy.is_some() || !routes.is_empty() {
                out.secure = Some(SecureVirtualHost {
                    host: host.to_string(),
                    secret: binding.secret.as_ref().map(|s| s.name.clone()),
                    min_tls_version: binding.min_tls_version,
                    routes: routes.into_iter().cloned().collect(),
                    tcp_proxy: binding.tcp_proxy.clone(),
                });
            }
        }
        if !insecure.is_empty() {
            out.plain = Some(VirtualHost {
                host: host.to_string(),
                routes: insecure,
            });
        }
        out
    }

    fn finish(self) -> Dag {
        // The hosts' maps and the clusters' map are filled side by side.
        let (mut dag, clusters) = crate::parallel::join(
            self.routes.len().max(self.clusters.len()),
            || {
                let mut dag = Dag::default();
                for (host, out) in self.outputs() {
                    if let Some(secret) = out.secret {
                        dag.secrets.insert(secret.name.clone(), secret);
                    }
                    if let Some(secure) = out.secure {
                        dag.secure_virtual_hosts.insert(host.to_string(), secure);
                    }
                    if let Some(plain) = out.plain {
                        dag.virtual_hosts.insert(host.to_string(), plain);
                    }
                }
                dag
            },
            || {
                let mut clusters = imbl::OrdMap::new();
                insert_clusters(&mut clusters, self.clusters.values().copied());
                clusters
            },
        );
        dag.clusters = clusters;
        dag
    }
}

/// Adds `clusters` to the DAG's, in name order: a persistent map's inserts in key order compare
/// against the keys of its last leaves only, which stay in cache, where inserts in hash or age order
/// load keys from all over the heap (10,000 clusters into an empty map: 4 ms, against 2 ms sorted
/// first, the sort included).
pub(super) fn insert_clusters<'a>(
    dag: &mut imbl::OrdMap<String, Arc<Cluster>>,
    clusters: impl IntoIterator<Item = &'a Arc<Cluster>>,
) {
    let mut clusters: Vec<&Arc<Cluster>> = clusters.into_iter().collect();
    clusters.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    for c in clusters {
        dag.insert(c.name.clone(), Arc::clone(c));
    }
}

/// What one host turns into.
#[derive(Debug, Default)]
pub(super) struct HostOutput {
    pub plain: Option<VirtualHost>,
    pub secure: Option<SecureVirtualHost>,
    pub secret: Option<TlsSecret>,
}

/// Objects in the order they are applied: oldest first, then by namespace/name.
pub(super) fn by_age<'a, T: kube::Resource + 'a>(
    objects: impl Iterator<Item = (&'a ObjectKey, &'a T)>,
) -> Vec<(&'a ObjectKey, &'a T)> {
    let mut v: Vec<_> = objects.collect();
    v.sort_by_key(|(key, o)| (o.meta().creation_timestamp.clone(), *key));
    v
}
