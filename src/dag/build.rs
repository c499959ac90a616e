//! The DAG builder: objects in, routing model and statuses out.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;

use super::{
    backend, class, names, secret, Cluster, Dag, DagOptions, ObjectKind, ObjectStatus, PathMatch,
    Route, SecureVirtualHost, TlsSecret, Validity, VirtualHost,
};
use crate::store::{ObjectKey, Snapshot};

/// Builds the DAG and one status per object this controller owns.
///
/// Objects are applied oldest first (then by namespace/name), and the first object to claim a route or
/// a host's certificate keeps it: a newcomer that conflicts is the one reported invalid, so adding an
/// object never takes routes away from an existing one.
pub fn build(snapshot: &Snapshot, options: &DagOptions) -> (Dag, Vec<ObjectStatus>) {
    let mut ingresses: Vec<(&ObjectKey, &Ingress)> = snapshot
        .ingresses
        .iter()
        .filter(|(_, i)| class::is_ours(i, &options.ingress_class_name))
        .collect();
    ingresses.sort_by_key(|(key, i)| (i.metadata.creation_timestamp.as_ref().map(|t| t.0), *key));

    let mut builder = Builder::default();
    let mut statuses = Vec::with_capacity(ingresses.len());
    for (key, ingress) in ingresses {
        let outcome = contribution(snapshot, key, ingress).and_then(|c| {
            builder.check(&c)?;
            builder.apply(c);
            Ok(())
        });
        statuses.push(ObjectStatus {
            kind: ObjectKind::Ingress,
            object: key.clone(),
            validity: if outcome.is_ok() {
                Validity::Valid
            } else {
                Validity::Invalid
            },
            description: match outcome {
                Ok(()) => "valid Ingress".to_string(),
                Err(reasons) => reasons.join("; "),
            },
        });
    }
    (builder.finish(), statuses)
}

/// What one valid object adds.
struct Contribution {
    source: ObjectKey,
    routes: BTreeMap<(String, PathMatch), Route>,
    clusters: Vec<Cluster>,
    tls: BTreeMap<String, TlsSecret>,
}

/// Everything `ingress` asks for, or every reason it can't have it.
fn contribution(
    snapshot: &Snapshot,
    key: &ObjectKey,
    ingress: &Ingress,
) -> Result<Contribution, Vec<String>> {
    let mut c = Contribution {
        source: key.clone(),
        routes: BTreeMap::new(),
        clusters: Vec::new(),
        tls: BTreeMap::new(),
    };
    let mut errors = Vec::new();
    let Some(spec) = ingress.spec.as_ref() else {
        return Err(vec!["Ingress has no spec".to_string()]);
    };
    let add_route = |c: &mut Contribution,
                     errors: &mut Vec<String>,
                     host: &str,
                     path: PathMatch,
                     cluster: Cluster| {
        let route = Route {
            path: path.clone(),
            cluster: cluster.name.clone(),
            source: key.clone(),
        };
        match c.routes.get(&(host.to_string(), path.clone())) {
            Some(existing) if existing.cluster != route.cluster => errors.push(format!(
                "path {:?} on host {host:?} is given twice with different backends",
                path.path()
            )),
            Some(_) => {}
            None => {
                c.routes.insert((host.to_string(), path), route);
                c.clusters.push(cluster);
            }
        }
    };

    if let Some(default_backend) = spec.default_backend.as_ref() {
        match backend::resolve(snapshot, &key.namespace, default_backend) {
            Ok(cluster) => add_route(
                &mut c,
                &mut errors,
                "*",
                PathMatch::StringPrefix("/".into()),
                cluster,
            ),
            Err(e) => errors.push(format!("default backend: {e}")),
        }
    }
    for rule in spec.rules.iter().flatten() {
        let host = match rule.host.as_deref() {
            None | Some("") => "*",
            Some(h) => match names::validate_host(h) {
                Ok(()) => h,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
        };
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let matched = names::path_match(path);
            let cluster = backend::resolve(snapshot, &key.namespace, &path.backend);
            match (matched, cluster) {
                (Ok(m), Ok(cluster)) => add_route(&mut c, &mut errors, host, m, cluster),
                (Err(e), _) | (_, Err(e)) => errors.push(e),
            }
        }
    }
    for tls in spec.tls.iter().flatten() {
        let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            errors.push("a tls entry has no secretName".to_string());
            continue;
        };
        if secret_name.contains('/') {
            errors.push(format!(
                "TLS secret {secret_name:?} is in another namespace; that needs a TLSCertificateDelegation, which is not supported yet"
            ));
            continue;
        }
        let secret =
            match secret::tls_secret(snapshot, &ObjectKey::new(&key.namespace, secret_name)) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
        for host in tls.hosts.iter().flatten() {
            if let Err(e) = names::validate_host(host) {
                errors.push(format!("tls: {e}"));
                continue;
            }
            match c.tls.get(host) {
                Some(existing) if existing.name != secret.name => errors.push(format!(
                    "tls host {host:?} is given two secrets, {:?} and {:?}",
                    existing.name, secret.name
                )),
                _ => {
                    c.tls.insert(host.clone(), secret.clone());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors)
    }
}

#[derive(Default)]
struct Builder {
    routes: BTreeMap<String, BTreeMap<PathMatch, Route>>,
    clusters: BTreeMap<String, Cluster>,
    /// Host → (secret, object that bound it).
    tls: BTreeMap<String, (TlsSecret, ObjectKey)>,
}

impl Builder {
    /// Reasons `c` can't be added without taking something from an object already applied.
    fn check(&self, c: &Contribution) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for ((host, path), route) in &c.routes {
            if let Some(existing) = self.routes.get(host).and_then(|r| r.get(path)) {
                if existing.source != route.source {
                    errors.push(format!(
                        "path {:?} on host {host:?} is already routed by Ingress \"{}\"",
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
                        "tls host {host:?} already uses secret \"{}\" from Ingress \"{source}\"",
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
