//! IngressRoute (`contour.heptio.com/v1beta1`) → contributions to the DAG, with Contour v0.14's rules:
//! roots own an fqdn (unique across roots), routes delegate to children whose prefixes must extend the
//! parent's, cycles are reported, and IngressRoutes no root reaches are orphaned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::annotations::{parse_duration, parse_timeout, parse_tls_version};
use super::build::{by_age, Candidate, Contribution, TlsBinding};
use super::delegation::{Statuses, Walker};
use super::{
    class, names, secret, validate, Cluster, DagOptions, HealthCheck, Insecure, LbPolicy,
    ObjectKind, ObjectStatus, PathMatch, RetryPolicy, Route, UpstreamSettings, UpstreamValidation,
    Validity, WeightedCluster,
};
use crate::crd::{IngressRoute, RouteService};
use crate::store::{ObjectKey, Snapshot};

/// What Contour calls an orphan, in its words.
pub const ORPHANED: &str =
    "this IngressRoute is not part of a delegation chain from a root IngressRoute";

/// What every root IngressRoute of our class would contribute (to be applied in age order with the
/// others), the statuses already known (delegates, refused roots), and how much work the walk took.
pub(super) fn candidates(
    snapshot: &Snapshot,
    options: &DagOptions,
) -> (Vec<Candidate>, Statuses, u64) {
    let plan = plan(snapshot, options);
    let mut statuses = Statuses::new();
    let (candidates, work) = walk_roots(snapshot, options, &plan.ours, &plan.walked, &mut statuses);
    statuses.extend(plan.refused);
    (candidates, statuses, work)
}

/// The IngressRoutes of our class a walk may read, by key.
pub(super) type Ours<'a> = foldhash::HashMap<&'a ObjectKey, &'a IngressRoute>;

/// What is decided before any delegation is walked.
pub(super) struct Plan<'a> {
    /// The IngressRoutes of our class.
    pub ours: Ours<'a>,
    /// The roots to walk, oldest first.
    pub walked: Vec<(&'a ObjectKey, &'a IngressRoute)>,
    /// The roots refused without a walk (their fqdn is an older root's, or their namespace may not
    /// have roots). No walk sets their status: it overrides what a walk would.
    pub refused: Statuses,
}

/// The IngressRoutes of our class, and which roots are walked.
pub(super) fn plan<'a>(snapshot: &'a Snapshot, options: &DagOptions) -> Plan<'a> {
    let ours: Ours = snapshot
        .ingress_routes
        .iter()
        .map(|(k, r)| (k, &**r))
        .filter(|(_, r)| is_ours(r, options))
        .collect();
    let roots = roots_by_age(&ours);
    let mut fqdn_owners: BTreeMap<&str, Vec<&ObjectKey>> = BTreeMap::new();
    for (key, route) in &roots {
        if let Some(vh) = &route.spec.virtualhost {
            fqdn_owners.entry(vh.fqdn.as_str()).or_default().push(key);
        }
    }
    let mut refused = Statuses::new();
    let walked = split_roots(
        roots,
        |fqdn| fqdn_owners[fqdn].iter().copied(),
        options,
        &mut refused,
    );
    Plan {
        ours,
        walked,
        refused,
    }
}

/// The roots among `ours` that are walked, oldest first; the others go into `refused` with why.
/// `owners(fqdn)` gives the roots of our class claiming `fqdn`, oldest first.
pub(super) fn walked_roots<'a, 'o, O: Owners<'o>>(
    ours: &Ours<'a>,
    owners: impl Fn(&str) -> O,
    options: &DagOptions,
    refused: &mut Statuses,
) -> Vec<(&'a ObjectKey, &'a IngressRoute)> {
    split_roots(roots_by_age(ours), owners, options, refused)
}

/// The roots (IngressRoutes with a virtual host) among `ours`, oldest first.
fn roots_by_age<'a>(ours: &Ours<'a>) -> Vec<(&'a ObjectKey, &'a IngressRoute)> {
    by_age(
        ours.iter()
            .map(|(k, r)| (*k, *r))
            .filter(|(_, r)| r.spec.virtualhost.is_some()),
    )
}

/// The roots claiming one fqdn, oldest first, as [`walked_roots`] and [`split_roots`] are given
/// them (borrowed from an index, not collected per root).
pub(super) trait Owners<'o>: ExactSizeIterator<Item = &'o ObjectKey> + Clone {}

impl<'o, I: ExactSizeIterator<Item = &'o ObjectKey> + Clone> Owners<'o> for I {}

/// `roots` (oldest first) without those refused, which go into `refused` with why.
fn split_roots<'a, 'o, O: Owners<'o>>(
    roots: Vec<(&'a ObjectKey, &'a IngressRoute)>,
    owners: impl Fn(&str) -> O,
    options: &DagOptions,
    refused: &mut Statuses,
) -> Vec<(&'a ObjectKey, &'a IngressRoute)> {
    let mut walked = Vec::new();
    for (key, route) in roots {
        let Some(vhost) = route.spec.virtualhost.as_ref() else {
            continue;
        };
        match refusal(key, &vhost.fqdn, owners(&vhost.fqdn), options) {
            Some(reason) => {
                refused.insert(key.clone(), reason);
            }
            None => walked.push((key, route)),
        }
    }
    walked
}

/// Why root `key` is refused without a walk, if it is: `owners` are the roots of our class with its
/// fqdn, oldest first (the oldest keeps it: a newcomer that claims it too is the one reported, so
/// adding an IngressRoute never takes a host away from one that was serving it; Contour invalidates
/// all of them), and only some namespaces may have roots.
fn refusal<'o>(
    key: &ObjectKey,
    fqdn: &str,
    owners: impl Owners<'o>,
    options: &DagOptions,
) -> Option<(Validity, String)> {
    let oldest = owners.clone().next();
    if let Some(oldest) = oldest.filter(|o| owners.len() > 1 && *o != key) {
        let names: Vec<String> = owners.map(|k| k.to_string()).collect();
        return Some((
            Validity::Invalid,
            format!(
                "fqdn {:?} is used in multiple IngressRoutes: {}; it stays with {}",
                fqdn,
                names.join(", "),
                oldest
            ),
        ));
    }
    if !options.root_namespaces.is_empty()
        && !options
            .root_namespaces
            .iter()
            .any(|n| **n == *key.namespace)
    {
        return Some((
            Validity::Invalid,
            "root IngressRoute cannot be defined in this namespace".to_string(),
        ));
    }
    None
}

/// The candidates of `roots` (oldest first), walked with one walker: what they delegate to is
/// walked once, and the delegates' statuses go into `statuses` (first writer wins). Returns the
/// candidates and the walk's work.
pub(super) fn walk_roots(
    snapshot: &Snapshot,
    options: &DagOptions,
    ours: &Ours,
    roots: &[(&ObjectKey, &IngressRoute)],
    statuses: &mut Statuses,
) -> (Vec<Candidate>, u64) {
    let mut walker = Walker::new(snapshot, ours, &options.limits);
    let candidates = roots
        .iter()
        .map(|(key, route)| {
            let contribution = root_contribution(snapshot, ours, &mut walker, key, route, statuses)
                .map(|(c, notes)| (c.finished(), notes));
            Candidate {
                created: route.metadata.creation_timestamp.clone(),
                kind: ObjectKind::IngressRoute,
                key: (*key).clone(),
                contribution,
            }
        })
        .collect();
    (candidates, walker.work)
}

/// The IngressRoutes `route` names as delegates (its routes' and its TCP proxy's): what its walk
/// may read.
pub(super) fn delegates<'a>(
    key: &'a ObjectKey,
    route: &'a IngressRoute,
) -> impl Iterator<Item = ObjectKey> + 'a {
    route
        .spec
        .routes
        .iter()
        .filter_map(|r| r.delegate.as_ref())
        .chain(
            route
                .spec
                .tcpproxy
                .iter()
                .filter_map(|t| t.delegate.as_ref()),
        )
        .map(|d| delegate_key(d, key))
}

/// One status per IngressRoute of our class: what the build found, or orphaned when nothing reached
/// it.
pub(super) fn statuses(
    snapshot: &Snapshot,
    options: &DagOptions,
    statuses: &Statuses,
) -> Vec<ObjectStatus> {
    snapshot
        .ingress_routes
        .iter()
        .filter(|(_, r)| is_ours(r, options))
        .map(|(key, _)| status(key, statuses.get(key).cloned()))
        .collect()
}

/// An IngressRoute's status from what the build found for it: orphaned when nothing reached it.
pub(super) fn status(key: &ObjectKey, found: Option<(Validity, String)>) -> ObjectStatus {
    let (validity, description) =
        found.unwrap_or_else(|| (Validity::Orphaned, ORPHANED.to_string()));
    ObjectStatus {
        kind: ObjectKind::IngressRoute,
        object: key.clone(),
        validity,
        description,
    }
}

/// `key`'s IngressRoute in `snapshot`, if it is of our class.
pub(super) fn our_route<'a>(
    snapshot: &'a Snapshot,
    options: &DagOptions,
    key: &ObjectKey,
) -> Option<&'a IngressRoute> {
    let route = snapshot.ingress_routes.get(key)?;
    is_ours(route, options).then_some(&**route)
}

/// Whether `r` is of our class.
fn is_ours(r: &IngressRoute, options: &DagOptions) -> bool {
    class::requested_class(r.metadata.annotations.as_ref(), None)
        .is_none_or(|c| c == options.ingress_class_name)
}

fn root_contribution(
    snapshot: &Snapshot,
    all: &Ours,
    walker: &mut Walker,
    key: &ObjectKey,
    root: &IngressRoute,
    statuses: &mut BTreeMap<ObjectKey, (Validity, String)>,
) -> Result<(Contribution, Vec<String>), Vec<String>> {
    let vhost = root.spec.virtualhost.as_ref().ok_or_else(Vec::new)?;
    let fqdn = vhost.fqdn.as_str();
    if fqdn.contains('*') {
        return Err(vec![format!(
            "fqdn {fqdn:?}: wildcard hosts are not supported by IngressRoute"
        )]);
    }
    names::validate_host(fqdn).map_err(|e| vec![e])?;
    let mut c = Contribution::new(key.clone());
    let mut binding = None;
    if let Some(tls) = &vhost.tls {
        let min_tls_version = tls
            .minimum_protocol_version
            .as_deref()
            .map(parse_tls_version)
            .transpose()
            .map_err(|e| vec![format!("tls.minimumProtocolVersion: {e}")])?
            .unwrap_or_default();
        let passthrough = tls.passthrough == Some(true);
        let secret = match tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            Some(_) if passthrough => {
                return Err(vec![
                    "tls: secretName and passthrough can't be used together".to_string(),
                ])
            }
            Some(name) => Some(
                secret::delegated_tls_secret(snapshot, &key.namespace, name)
                    .map_err(|e| vec![e])?,
            ),
            None if passthrough => None,
            None => {
                return Err(vec![
                    "tls: give a secretName, or passthrough: true".to_string()
                ])
            }
        };
        if passthrough && root.spec.tcpproxy.is_none() {
            return Err(vec!["tls passthrough needs a tcpproxy".to_string()]);
        }
        binding = Some(TlsBinding {
            secret,
            min_tls_version,
            tcp_proxy: None,
        });
    }
    if let Some(tcpproxy) = &root.spec.tcpproxy {
        let Some(b) = binding.as_mut() else {
            return Err(vec![
                "tcpproxy needs virtualhost.tls (a secretName, or passthrough)".to_string(),
            ]);
        };
        let (weighted, clusters) = tcp_proxy_services(snapshot, all, key, tcpproxy, statuses)?;
        b.tcp_proxy = Some(weighted);
        c.clusters.extend(clusters.into_iter().map(Arc::new));
    }
    if let Some(b) = binding {
        c.tls.insert(fqdn.to_string(), b);
    }
    let walked = walker.walk_root(key, statuses)?;
    for (route, clusters) in walked.routes {
        c.add_route(fqdn, route, clusters).map_err(|e| vec![e])?;
    }
    Ok((c, walked.notes))
}

pub(super) type RouteWithClusters = (Route, Vec<Cluster>);

/// "valid IngressRoute", with anything worth knowing appended.
pub(super) fn valid_description(notes: &[String]) -> String {
    std::iter::once("valid IngressRoute".to_string())
        .chain(notes.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The route an IngressRoute's route entry with services serves (delegating entries are the walk's).
pub(super) fn build_route(
    snapshot: &Snapshot,
    key: &ObjectKey,
    route: &crate::crd::Route,
) -> Result<RouteWithClusters, String> {
    let prefix = route.match_.as_str();
    let (weighted, clusters) = services(snapshot, &key.namespace, &route.services)?;
    let mut r = Route::new(
        PathMatch::StringPrefix(prefix.to_string()),
        weighted,
        key.clone(),
    );
    r.websocket = route.enable_websockets == Some(true);
    r.insecure = if route.permit_insecure == Some(true) {
        Insecure::Serve
    } else {
        Insecure::Redirect
    };
    if let Some(rewrite) = &route.prefix_rewrite {
        validate::prefix_rewrite(rewrite).map_err(|e| format!("prefixRewrite: {e}"))?;
        r.prefix_rewrite = Some(rewrite.clone());
    }
    if let Some(request) = route
        .timeout_policy
        .as_ref()
        .and_then(|t| t.request.as_deref())
    {
        r.timeout =
            Some(parse_timeout(request).map_err(|e| format!("timeoutPolicy.request: {e}"))?);
    }
    if let Some(retry) = &route.retry_policy {
        r.retry = Some(RetryPolicy {
            retry_on: "5xx".to_string(),
            num_retries: retry.count.unwrap_or(1),
            per_try_timeout: retry
                .per_try_timeout
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| format!("retryPolicy.perTryTimeout: {e}"))?,
        });
    }
    Ok((r, clusters))
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
        let settings = upstream_settings(snapshot, namespace, s)?;
        let cluster = super::backend::resolve_port(
            snapshot,
            namespace,
            &s.name,
            Some(s.port),
            None,
            settings,
        )
        .map_err(|e| {
            if e.contains("not found") || e.contains("has no port") {
                format!("Service [{}:{}] is invalid or missing", s.name, s.port)
            } else {
                e
            }
        })?;
        if !seen.insert(cluster.name.clone()) {
            continue;
        }
        weighted.push(WeightedCluster::of(
            &cluster,
            if any_weight { s.weight.unwrap_or(0) } else { 1 },
        ));
        clusters.push(cluster);
    }
    validate::weight_sum(weighted.iter().map(|w| w.weight))?;
    if weighted.iter().all(|w| w.weight == 0) {
        weighted.iter_mut().for_each(|w| w.weight = 1);
    }
    Ok((weighted, clusters))
}

/// What a route's service entry asks of the upstream: load balancing, health checks, validation.
fn upstream_settings(
    snapshot: &Snapshot,
    namespace: &str,
    s: &RouteService,
) -> Result<UpstreamSettings, String> {
    let lb_policy = match s.strategy.as_deref() {
        None | Some("RoundRobin") => LbPolicy::RoundRobin,
        Some("WeightedLeastRequest") => LbPolicy::WeightedLeastRequest,
        Some("Random") => LbPolicy::Random,
        Some("Cookie") => LbPolicy::Cookie,
        Some(other) => {
            return Err(format!(
                "service {:?}: strategy {other:?} is not one of RoundRobin, WeightedLeastRequest, Random, Cookie",
                s.name
            ))
        }
    };
    let health_check = s
        .health_check
        .as_ref()
        .map(health_check)
        .transpose()
        .map_err(|e| format!("service {:?}: healthCheck.{e}", s.name))?;
    if let Some(v) = &s.validation {
        validate::sni(&v.subject_name)
            .map_err(|e| format!("service {:?}: validation.subjectName {e}", s.name))?;
    }
    let validation = match &s.validation {
        None => None,
        Some(v) => {
            let key = ObjectKey::new(namespace, &v.ca_secret);
            let ca_pem = super::reads::secret(snapshot, &key)
                .and_then(|secret| {
                    let from_data = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("ca.crt"))
                        .map(|b| b.0.clone());
                    from_data.or_else(|| {
                        secret
                            .string_data
                            .as_ref()
                            .and_then(|d| d.get("ca.crt"))
                            .map(|s| s.as_bytes().to_vec())
                    })
                })
                .ok_or_else(|| {
                    format!(
                        "service {:?}: validation CA secret \"{key}\" not found or has no ca.crt",
                        s.name
                    )
                })?;
            crate::tls::pem::certs("ca.crt", &ca_pem).map_err(|e| {
                format!("service {:?}: validation CA secret \"{key}\": {e}", s.name)
            })?;
            if v.subject_name.is_empty() {
                return Err(format!(
                    "service {:?}: validation.subjectName is empty",
                    s.name
                ));
            }
            Some(UpstreamValidation {
                ca_pem,
                subject_name: v.subject_name.clone(),
            })
        }
    };
    Ok(UpstreamSettings {
        lb_policy,
        health_check,
        validation,
        ..UpstreamSettings::default()
    })
}

/// An active health check; absent or zero numbers take Contour's defaults, anything Envoy would refuse
/// is an error naming the field.
fn health_check(h: &crate::crd::HealthCheck) -> Result<HealthCheck, String> {
    validate::path(&h.path).map_err(|e| format!("path {e}"))?;
    let host = h
        .host
        .clone()
        .unwrap_or_else(|| "contour-envoy-healthcheck".to_string());
    if host.is_empty() {
        return Err("host is empty".to_string());
    }
    validate::header_value(&host).map_err(|e| format!("host {e}"))?;
    let interval = validate::seconds("intervalSeconds", h.interval_seconds)?;
    let timeout = validate::seconds("timeoutSeconds", h.timeout_seconds)?;
    Ok(HealthCheck {
        path: h.path.clone(),
        host,
        interval: interval.unwrap_or(Duration::from_secs(10)),
        timeout: timeout.unwrap_or(Duration::from_secs(2)),
        unhealthy_threshold: h.unhealthy_threshold_count.filter(|v| *v > 0).unwrap_or(3),
        healthy_threshold: h.healthy_threshold_count.filter(|v| *v > 0).unwrap_or(2),
    })
}

/// The clusters of a root's `tcpproxy`: its services, or those of the IngressRoute it delegates to.
fn tcp_proxy_services(
    snapshot: &Snapshot,
    all: &Ours,
    key: &ObjectKey,
    tcpproxy: &crate::crd::TcpProxy,
    statuses: &mut BTreeMap<ObjectKey, (Validity, String)>,
) -> Result<(Vec<WeightedCluster>, Vec<Cluster>), Vec<String>> {
    if let Some(delegate) = &tcpproxy.delegate {
        let target = delegate_key(delegate, key);
        let child = all
            .get(&target)
            .ok_or_else(|| vec![format!("tcpproxy delegate \"{target}\" not found")])?;
        let Some(child_proxy) = child
            .spec
            .tcpproxy
            .as_ref()
            .filter(|p| p.delegate.is_none())
        else {
            return Err(vec![format!(
                "tcpproxy delegate \"{target}\" has no tcpproxy services"
            )]);
        };
        return match services(snapshot, &target.namespace, &child_proxy.services) {
            Ok(r) => {
                statuses
                    .entry(target)
                    .or_insert((Validity::Valid, "valid IngressRoute".to_string()));
                Ok(r)
            }
            Err(e) => {
                statuses
                    .entry(target)
                    .or_insert((Validity::Invalid, e.clone()));
                Err(vec![format!("tcpproxy delegate is invalid: {e}")])
            }
        };
    }
    services(snapshot, &key.namespace, &tcpproxy.services)
        .map_err(|e| vec![format!("tcpproxy: {e}")])
}

/// The IngressRoute a delegate of IngressRoute `of` names: in `of`'s namespace when it gives none
/// (that namespace shared, not copied: a root of 10,000 delegations made as many copies per walk).
pub(super) fn delegate_key(delegate: &crate::crd::Delegate, of: &ObjectKey) -> ObjectKey {
    let namespace = match delegate.namespace.as_deref() {
        Some(ns) if ns != &*of.namespace => Arc::from(ns),
        _ => Arc::clone(&of.namespace),
    };
    ObjectKey {
        namespace,
        name: Arc::from(delegate.name.as_str()),
    }
}
