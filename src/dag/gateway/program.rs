//! What Envoy is told for Gateway API objects: the statuses' decisions and the routing table turned
//! into Envoy listeners with their hosts and routes, and the clusters and certificates those use.
//!
//! Only listeners that are `Programmed` serve. A backend that resolves but can't be made a cluster
//! (a Service of type ExternalName) is answered 500 like any other unusable backend.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::listener::Protocol;
use super::model::{
    GatewayAction, GatewayEnvoyListener, GatewayRoute, HeaderChanges, Redirect, RedirectPath,
    Share, TlsChain,
};
use super::precedence::{self, RuleMatch};
use super::routes::{self, Action, Entry, Target};
use super::status::{
    gateway_frame, route_parents, GatewayApiStatus, GatewayFrame, GatewayOptions, RouteParentState,
};
use super::validate::wire_name;
use crate::crd::gateway::httproutes::{
    HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesFiltersRequestRedirect,
    HttpRouteRulesFiltersRequestRedirectPathType,
};
use crate::crd::gateway::HttpRoute;
use crate::dag::backend::resolve_port;
use crate::dag::secret::tls_secret;
use crate::dag::{Cluster, TlsSecret, UpstreamSettings};
use crate::store::{ObjectKey, Snapshot};

/// Everything Gateway API objects add: statuses, Envoy listeners, clusters and certificates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayProgram {
    pub status: GatewayApiStatus,
    /// By Envoy listener name.
    pub listeners: BTreeMap<String, GatewayEnvoyListener>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    pub secrets: BTreeMap<String, TlsSecret>,
}

/// The part of the program that routes don't change: the statuses of classes and Gateways (no
/// route counted yet), the Envoy listeners that serve (no hosts yet) and their certificates.
#[derive(Debug, Clone, Default)]
pub struct ProgramFrame {
    pub gateways: GatewayFrame,
    /// (Gateway, listener name) → the Envoy listener serving it.
    pub envoy_listeners: BTreeMap<(ObjectKey, String), String>,
    /// The Envoy listeners that serve, by name, with no hosts.
    pub listeners: BTreeMap<String, GatewayEnvoyListener>,
    pub secrets: BTreeMap<String, TlsSecret>,
}

/// One HTTPRoute's part of the program: its parents' statuses, the (Envoy listener, host) pairs it
/// serves on and its routes there, and the clusters those use. It depends on the route, the
/// [`ProgramFrame`] and what it read (Services, ReferenceGrants, namespace labels), not on other
/// routes: routes meet only on a host, where [`host_routes`] orders them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteProgram {
    pub parents: Vec<RouteParentState>,
    pub places: BTreeSet<(String, String)>,
    pub routes: Vec<HostRoute>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
}

/// A route with what orders it among the routes of its host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    pub order: RuleMatch,
    pub route: GatewayRoute,
}

/// The [`ProgramFrame`] of `snapshot`.
pub fn frame(snapshot: &Snapshot, options: &GatewayOptions) -> ProgramFrame {
    let gateways = gateway_frame(snapshot, options);
    let status = &gateways.status;
    let mut listeners = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for plan in status.plan.listeners.values() {
        let serving: Vec<&(ObjectKey, String)> = plan
            .members
            .iter()
            .filter(|(gateway, name)| programmed(status, gateway, name))
            .collect();
        let tls: Vec<TlsChain> = match plan.protocol {
            Protocol::Http => Vec::new(),
            Protocol::Https => serving
                .iter()
                .filter_map(|(gateway, name)| {
                    let (server_name, secret) = certificate(snapshot, gateway, name)?;
                    let chain = TlsChain {
                        server_name,
                        secret: secret.name.clone(),
                    };
                    secrets.insert(secret.name.clone(), secret);
                    Some(chain)
                })
                .collect(),
        };
        if serving.is_empty() || (plan.protocol == Protocol::Https && tls.is_empty()) {
            continue;
        }
        listeners.insert(
            plan.name.clone(),
            GatewayEnvoyListener {
                name: plan.name.clone(),
                port: plan.port,
                protocol: plan.protocol,
                tls,
                hosts: imbl::OrdMap::new(),
            },
        );
    }
    ProgramFrame {
        envoy_listeners: routes::envoy_listeners(status),
        gateways,
        listeners,
        secrets,
    }
}

/// HTTPRoute `key`'s [`RouteProgram`].
pub fn route_program(
    snapshot: &Snapshot,
    frame: &ProgramFrame,
    key: &ObjectKey,
    http_route: &HttpRoute,
) -> RouteProgram {
    let parents = route_parents(snapshot, key, http_route, &frame.gateways);
    let places: BTreeSet<(String, String)> = routes::placements(&parents, &frame.envoy_listeners)
        .into_iter()
        .filter(|(listener, _)| frame.listeners.contains_key(listener))
        .collect();
    let mut clusters = BTreeMap::new();
    let routes = if places.is_empty() {
        Vec::new()
    } else {
        routes::route_entries(snapshot, key, http_route)
            .iter()
            .map(|e| HostRoute {
                order: e.order.clone(),
                route: route(snapshot, e, &mut clusters),
            })
            .collect()
    };
    RouteProgram {
        parents,
        places,
        routes,
        clusters,
    }
}

/// A host's routes, from the routes of each HTTPRoute placed there, in the order Envoy must try
/// them.
pub fn host_routes<'a>(parts: impl IntoIterator<Item = &'a [HostRoute]>) -> Vec<GatewayRoute> {
    let mut all: Vec<&HostRoute> = parts.into_iter().flatten().collect();
    precedence::sort_by(&mut all, |h| &h.order);
    all.into_iter().map(|h| h.route.clone()).collect()
}

/// The program of the Gateway API objects in `snapshot`, computed whole.
pub fn program(snapshot: &Snapshot, options: &GatewayOptions) -> GatewayProgram {
    let frame = frame(snapshot, options);
    let parts: Vec<(&ObjectKey, RouteProgram)> = snapshot
        .http_routes
        .iter()
        .map(|(key, r)| (key, route_program(snapshot, &frame, key, r)))
        .collect();
    let mut out = GatewayProgram {
        status: frame.gateways.status.clone(),
        listeners: frame.listeners.clone(),
        clusters: BTreeMap::new(),
        secrets: frame.secrets.clone(),
    };
    let mut by_place: BTreeMap<&(String, String), Vec<&[HostRoute]>> = BTreeMap::new();
    for (key, part) in &parts {
        out.status.add_route(key, part.parents.clone());
        out.clusters
            .extend(part.clusters.iter().map(|(n, c)| (n.clone(), c.clone())));
        for place in &part.places {
            by_place.entry(place).or_default().push(&part.routes);
        }
    }
    for ((listener, host), parts) in by_place {
        if let Some(l) = out.listeners.get_mut(listener) {
            l.hosts.insert(host.clone(), Arc::new(host_routes(parts)));
        }
    }
    out
}

/// Whether a Gateway's listener has `Programmed=True`.
fn programmed(status: &GatewayApiStatus, gateway: &ObjectKey, listener: &str) -> bool {
    status
        .gateways
        .get(gateway)
        .and_then(|g| g.listeners.iter().find(|l| l.name == listener))
        .is_some_and(|l| {
            l.conditions
                .iter()
                .any(|c| c.type_ == "Programmed" && c.status)
        })
}

/// An HTTPS listener's host name and certificate (its first certificateRef; the status pass has
/// checked that each is a permitted, usable Secret).
fn certificate(
    snapshot: &Snapshot,
    gateway: &ObjectKey,
    name: &str,
) -> Option<(Option<String>, TlsSecret)> {
    let g = snapshot.gateways.get(gateway)?;
    let l = g.spec.listeners.iter().find(|l| l.name == name)?;
    let r = l.tls.as_ref()?.certificate_refs.as_ref()?.first()?;
    let namespace = r.namespace.as_deref().unwrap_or(&gateway.namespace);
    let secret = tls_secret(snapshot, &ObjectKey::new(namespace, r.name.clone())).ok()?;
    Some((l.hostname.clone(), secret))
}

/// One entry of the routing table as a route, adding the clusters it uses to `clusters`.
fn route(
    snapshot: &Snapshot,
    e: &Entry,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
) -> GatewayRoute {
    let action = match &e.action {
        Action::Redirect(r) => GatewayAction::Redirect(redirect(r)),
        Action::Backends(shares) => GatewayAction::Forward(
            shares
                .iter()
                .map(|(target, weight)| Share {
                    cluster: match target {
                        Target::Service(s) => cluster(snapshot, &s.service, s.port, clusters),
                        Target::Error(_) => None,
                    },
                    weight: *weight,
                })
                .collect(),
        ),
    };
    GatewayRoute {
        path: e.order.path.clone(),
        method: e.method.clone(),
        headers: e.headers.clone(),
        query_params: e.query_params.clone(),
        request_headers: e
            .request_headers
            .as_ref()
            .map(header_changes)
            .unwrap_or_default(),
        action,
        source: e.order.origin.route.clone(),
    }
}

/// The cluster of a Service port, added to `clusters`; `None` if it can't be one.
fn cluster(
    snapshot: &Snapshot,
    service: &ObjectKey,
    port: i32,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
) -> Option<String> {
    let c = resolve_port(
        snapshot,
        &service.namespace,
        &service.name,
        Some(port),
        None,
        UpstreamSettings::default(),
    )
    .ok()?;
    let name = c.name.clone();
    clusters.entry(name.clone()).or_insert_with(|| Arc::new(c));
    Some(name)
}

fn redirect(r: &HttpRouteRulesFiltersRequestRedirect) -> Redirect {
    Redirect {
        scheme: r.scheme.as_ref().map(wire_name),
        hostname: r.hostname.clone(),
        port: r.port.and_then(|p| u16::try_from(p).ok()),
        path: r.path.as_ref().and_then(|p| match p.r#type {
            HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
                p.replace_full_path.clone().map(RedirectPath::Full)
            }
            HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
                p.replace_prefix_match.clone().map(RedirectPath::Prefix)
            }
        }),
        // The CRD allows 301 and 302 and defaults to 302.
        status_code: match r.status_code {
            Some(301) => 301,
            _ => 302,
        },
    }
}

fn header_changes(m: &HttpRouteRulesFiltersRequestHeaderModifier) -> HeaderChanges {
    HeaderChanges {
        set: m
            .set
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        add: m
            .add
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        remove: m.remove.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "program_tests.rs"]
mod tests;
