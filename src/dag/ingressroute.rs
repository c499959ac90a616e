//! IngressRoute (`contour.heptio.com/v1beta1`) → contributions to the DAG, with Contour v0.14's rules:
//! roots own an fqdn (unique across roots), routes delegate to children whose prefixes must extend the
//! parent's, cycles are reported, and IngressRoutes no root reaches are orphaned.

use std::collections::{BTreeMap, BTreeSet};

use super::build::{by_age, Builder, Contribution};
use super::{
    class, names, secret, Cluster, DagOptions, ObjectKind, ObjectStatus, PathMatch, Route,
    Validity, WeightedCluster,
};
use crate::crd::{IngressRoute, RouteService};
use crate::store::{ObjectKey, Snapshot};

/// What Contour calls an orphan, in its words.
pub const ORPHANED: &str =
    "this IngressRoute is not part of a delegation chain from a root IngressRoute";

/// Applies every IngressRoute of our class; one status each.
pub(super) fn apply(
    snapshot: &Snapshot,
    options: &DagOptions,
    builder: &mut Builder,
) -> Vec<ObjectStatus> {
    let ours: BTreeMap<&ObjectKey, &IngressRoute> = snapshot
        .ingress_routes
        .iter()
        .filter(|(_, r)| {
            let annotations = r.metadata.annotations.as_ref();
            class::requested_class(annotations, None)
                .is_none_or(|c| c == options.ingress_class_name)
        })
        .collect();
    let mut statuses: BTreeMap<ObjectKey, (Validity, String)> = BTreeMap::new();

    let roots = by_age(
        ours.iter()
            .map(|(k, r)| (*k, *r))
            .filter(|(_, r)| r.spec.virtualhost.is_some()),
    );
    let mut fqdn_owners: BTreeMap<&str, Vec<&ObjectKey>> = BTreeMap::new();
    for (key, route) in &roots {
        if let Some(vh) = &route.spec.virtualhost {
            fqdn_owners.entry(vh.fqdn.as_str()).or_default().push(key);
        }
    }
    for (key, route) in roots {
        let Some(vhost) = route.spec.virtualhost.as_ref() else {
            continue;
        };
        let owners = &fqdn_owners[vhost.fqdn.as_str()];
        if owners.len() > 1 {
            let names: Vec<String> = owners.iter().map(|k| k.to_string()).collect();
            statuses.insert(
                key.clone(),
                (
                    Validity::Invalid,
                    format!(
                        "fqdn {:?} is used in multiple IngressRoutes: {}",
                        vhost.fqdn,
                        names.join(", ")
                    ),
                ),
            );
            continue;
        }
        if !options.root_namespaces.is_empty() && !options.root_namespaces.contains(&key.namespace)
        {
            statuses.insert(
                key.clone(),
                (
                    Validity::Invalid,
                    "root IngressRoute cannot be defined in this namespace".to_string(),
                ),
            );
            continue;
        }
        let outcome = root_contribution(snapshot, &ours, key, route, &mut statuses)
            .and_then(|c| builder.try_apply(c));
        statuses.insert(
            key.clone(),
            match outcome {
                Ok(()) => (Validity::Valid, "valid IngressRoute".to_string()),
                Err(reasons) => (Validity::Invalid, reasons.join("; ")),
            },
        );
    }
    ours.keys()
        .map(|key| {
            let (validity, description) = statuses
                .get(*key)
                .cloned()
                .unwrap_or((Validity::Orphaned, ORPHANED.to_string()));
            ObjectStatus {
                kind: ObjectKind::IngressRoute,
                object: (*key).clone(),
                validity,
                description,
            }
        })
        .collect()
}

fn root_contribution(
    snapshot: &Snapshot,
    all: &BTreeMap<&ObjectKey, &IngressRoute>,
    key: &ObjectKey,
    root: &IngressRoute,
    statuses: &mut BTreeMap<ObjectKey, (Validity, String)>,
) -> Result<Contribution, Vec<String>> {
    let vhost = root.spec.virtualhost.as_ref().ok_or_else(Vec::new)?;
    let fqdn = vhost.fqdn.as_str();
    if fqdn.contains('*') {
        return Err(vec![format!(
            "fqdn {fqdn:?}: wildcard hosts are not supported by IngressRoute"
        )]);
    }
    names::validate_host(fqdn).map_err(|e| vec![e])?;
    let mut c = Contribution::new(key.clone());
    if let Some(tls) = &vhost.tls {
        if tls.passthrough == Some(true) {
            return Err(vec!["tls passthrough is not supported yet".to_string()]);
        }
        if let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            let secret = secret::delegated_tls_secret(snapshot, &key.namespace, secret_name)
                .map_err(|e| vec![e])?;
            c.tls.insert(fqdn.to_string(), secret);
        }
    }
    let mut chain = vec![key.clone()];
    let routes = walk(snapshot, all, key, root, None, &mut chain, statuses)?;
    for (route, clusters) in routes {
        c.add_route(fqdn, route, clusters).map_err(|e| vec![e])?;
    }
    Ok(c)
}

type RouteWithClusters = (Route, Vec<Cluster>);

/// The routes of `route` and of the children it delegates to. Errors are `route`'s own; a child's
/// errors make the child invalid (its routes left out) without failing its parent.
fn walk(
    snapshot: &Snapshot,
    all: &BTreeMap<&ObjectKey, &IngressRoute>,
    key: &ObjectKey,
    ir: &IngressRoute,
    parent_prefix: Option<&str>,
    chain: &mut Vec<ObjectKey>,
    statuses: &mut BTreeMap<ObjectKey, (Validity, String)>,
) -> Result<Vec<RouteWithClusters>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for route in &ir.spec.routes {
        let prefix = route.match_.as_str();
        if !prefix.starts_with('/') {
            errors.push(format!("route match {prefix:?} must start with \"/\""));
            continue;
        }
        if let Some(parent) = parent_prefix {
            if !prefix.starts_with(parent) {
                errors.push(format!(
                    "the path prefix {prefix:?} does not match the parent's path prefix {parent:?}"
                ));
                continue;
            }
        }
        if let Some(delegate) = &route.delegate {
            let target = ObjectKey::new(
                delegate
                    .namespace
                    .clone()
                    .unwrap_or_else(|| key.namespace.clone()),
                &delegate.name,
            );
            if chain.contains(&target) {
                let mut path: Vec<String> = chain.iter().map(|k| k.to_string()).collect();
                path.push(target.to_string());
                errors.push(format!(
                    "route creates a delegation cycle: {}",
                    path.join(" -> ")
                ));
                continue;
            }
            let Some(child) = all.get(&target) else {
                errors.push(format!("delegate \"{target}\" not found"));
                continue;
            };
            if child.spec.virtualhost.is_some() {
                errors.push(format!(
                    "root IngressRoute cannot delegate to another root IngressRoute (\"{target}\")"
                ));
                continue;
            }
            chain.push(target.clone());
            let child_routes = walk(snapshot, all, &target, child, Some(prefix), chain, statuses);
            chain.pop();
            match child_routes {
                Ok(routes) => {
                    statuses
                        .entry(target)
                        .or_insert((Validity::Valid, "valid IngressRoute".to_string()));
                    out.extend(routes);
                }
                Err(reasons) => {
                    statuses
                        .entry(target)
                        .or_insert((Validity::Invalid, reasons.join("; ")));
                }
            }
            continue;
        }
        match services(snapshot, &key.namespace, &route.services) {
            Ok((weighted, clusters)) => out.push((
                Route {
                    path: PathMatch::StringPrefix(prefix.to_string()),
                    clusters: weighted,
                    source: key.clone(),
                },
                clusters,
            )),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The clusters of a route's services, weighted; no weights at all means an equal split.
fn services(
    snapshot: &Snapshot,
    namespace: &str,
    services: &[RouteService],
) -> Result<(Vec<WeightedCluster>, Vec<Cluster>), String> {
    if services.is_empty() {
        return Err("route has neither services nor a delegate".to_string());
    }
    let any_weight = services.iter().any(|s| s.weight.is_some());
    let mut weighted = Vec::new();
    let mut clusters = Vec::new();
    let mut seen = BTreeSet::new();
    for s in services {
        let cluster =
            super::backend::resolve_port(snapshot, namespace, &s.name, Some(s.port), None)
                .map_err(|_| format!("Service [{}:{}] is invalid or missing", s.name, s.port))?;
        if !seen.insert(cluster.name.clone()) {
            continue;
        }
        weighted.push(WeightedCluster {
            name: cluster.name.clone(),
            weight: if any_weight { s.weight.unwrap_or(0) } else { 1 },
        });
        clusters.push(cluster);
    }
    if weighted.iter().all(|w| w.weight == 0) {
        weighted.iter_mut().for_each(|w| w.weight = 1);
    }
    Ok((weighted, clusters))
}
