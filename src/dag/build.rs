//! The DAG builder: objects in, routing model and statuses out.

use std::collections::BTreeMap;

use super::{
    ingress, ingressroute, Cluster, Dag, DagOptions, ObjectStatus, PathMatch, Route,
    SecureVirtualHost, TlsSecret, VirtualHost,
};
use crate::store::{ObjectKey, Snapshot};

/// Builds the DAG and one status per object this controller owns.
///
/// Objects are applied oldest first (then by namespace/name), Ingresses before IngressRoutes, and the
/// first object to claim a route or a host's certificate keeps it: a newcomer that conflicts is the one
/// reported invalid, so adding an object never takes routes away from an existing one.
pub fn build(snapshot: &Snapshot, options: &DagOptions) -> (Dag, Vec<ObjectStatus>) {
    let mut builder = Builder::default();
    let mut statuses = ingress::apply(snapshot, options, &mut builder);
    statuses.extend(ingressroute::apply(snapshot, options, &mut builder));
    (builder.finish(), statuses)
}

/// What one valid object (or delegation tree) adds.
pub(super) struct Contribution {
    pub source: ObjectKey,
    pub routes: BTreeMap<(String, PathMatch), Route>,
    pub clusters: Vec<Cluster>,
    pub tls: BTreeMap<String, TlsSecret>,
}

impl Contribution {
    pub fn new(source: ObjectKey) -> Self {
        Contribution {
            source,
            routes: BTreeMap::new(),
            clusters: Vec::new(),
            tls: BTreeMap::new(),
        }
    }

    /// Adds a route; the same path given twice with different backends is an error.
    pub fn add_route(
        &mut self,
        host: &str,
        route: Route,
        clusters: Vec<Cluster>,
    ) -> Result<(), String> {
        match self.routes.get(&(host.to_string(), route.path.clone())) {
            Some(existing) if existing.clusters != route.clusters => Err(format!(
                "path {:?} on host {host:?} is given twice with different backends",
                route.path.path()
            )),
            Some(_) => Ok(()),
            None => {
                self.routes
                    .insert((host.to_string(), route.path.clone()), route);
                self.clusters.extend(clusters);
                Ok(())
            }
        }
    }
}

/// The routing model under construction.
#[derive(Default)]
pub(super) struct Builder {
    routes: BTreeMap<String, BTreeMap<PathMatch, Route>>,
    clusters: BTreeMap<String, Cluster>,
    /// Host → (secret, object that bound it).
    tls: BTreeMap<String, (TlsSecret, ObjectKey)>,
}

impl Builder {
    /// Checks `c` against what is there and adds it, or says why it can't be added without taking
    /// something from an object already applied.
    pub fn try_apply(&mut self, c: Contribution) -> Result<(), Vec<String>> {
        self.check(&c)?;
        self.apply(c);
        Ok(())
    }

    fn check(&self, c: &Contribution) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for ((host, path), route) in &c.routes {
            if let Some(existing) = self.routes.get(host).and_then(|r| r.get(path)) {
                if existing.source != route.source {
                    errors.push(format!(
                        "path {:?} on host {host:?} is already routed by \"{}\"",
                        path.path(),
                        existing.source
                    ));
                }
            }
        }
        for (host, secret) in &c.tls {
            if let Some((existing, source)) = self.tls.get(host) {
                if existing.name != secret.name {
                    errors.push(format!(
                        "tls host {host:?} already uses secret \"{}\" from \"{source}\"",
                        existing.name
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

    fn apply(&mut self, c: Contribution) {
        for ((host, path), route) in c.routes {
            self.routes.entry(host).or_default().insert(path, route);
        }
        for cluster in c.clusters {
            self.clusters.insert(cluster.name.clone(), cluster);
        }
        for (host, secret) in c.tls {
            self.tls.entry(host).or_insert((secret, c.source.clone()));
        }
    }

    fn finish(self) -> Dag {
        let mut dag = Dag::default();
        for (host, routes) in self.routes {
            let mut routes: Vec<Route> = routes.into_values().collect();
            routes.sort_by(|a, b| a.path.precedence().cmp(&b.path.precedence()));
            if let Some((secret, _)) = self.tls.get(&host) {
                dag.secrets.insert(secret.name.clone(), secret.clone());
                dag.secure_virtual_hosts.insert(
                    host.clone(),
                    SecureVirtualHost {
                        host: host.clone(),
                        secret: secret.name.clone(),
                        routes: routes.clone(),
                    },
                );
            }
            dag.virtual_hosts
                .insert(host.clone(), VirtualHost { host, routes });
        }
        dag.clusters = self.clusters;
        dag
    }
}

/// Objects in the order they are applied: oldest first, then by namespace/name.
pub(super) fn by_age<'a, T: kube::Resource + 'a>(
    objects: impl Iterator<Item = (&'a ObjectKey, &'a T)>,
) -> Vec<(&'a ObjectKey, &'a T)> {
    let mut v: Vec<_> = objects.collect();
    v.sort_by_key(|(key, o)| (o.meta().creation_timestamp.clone(), *key));
    v
}
