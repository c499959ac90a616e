//! What Envoy is told for Gateway API objects: the statuses' decisions and the routing table turned
//! into Envoy listeners with their hosts and routes, and the clusters and certificates those use.
//!
//! Only listeners that are `Programmed` serve. A backend that resolves but can't be made a cluster
//! (a Service of type ExternalName) is answered 500 like any other unusable backend.

use std::collections::BTreeMap;

use super::listener::Protocol;
use super::model::{
    GatewayAction, GatewayEnvoyListener, GatewayRoute, HeaderChanges, Redirect, RedirectPath,
    Share, TlsChain,
};
use super::routes::{self, Action, Entry, Target};
use super::status::{gateway_api_status, GatewayApiStatus, GatewayOptions};
use super::validate::wire_name;
use crate::crd::gateway::httproutes::{
    HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesFiltersRequestRedirect,
    HttpRouteRulesFiltersRequestRedirectPathType,
};
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
    pub clusters: BTreeMap<String, Cluster>,
    pub secrets: BTreeMap<String, TlsSecret>,
}

/// The program of the Gateway API objects in `snapshot`.
pub fn program(snapshot: &Snapshot, options: &GatewayOptions) -> GatewayProgram {
    let status = gateway_api_status(snapshot, options);
    let table = routes::routing_table(snapshot, &status);
    let mut out = GatewayProgram::default();
    for plan in status.plan.listeners.values() {
        let serving: Vec<&(ObjectKey, String)> = plan
            .members
            .iter()
            .filter(|(gateway, name)| programmed(&status, gateway, name))
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
                    out.secrets.insert(secret.name.clone(), secret);
                    Some(chain)
                })
                .collect(),
        };
        if serving.is_empty() || (plan.protocol == Protocol::Https && tls.is_empty()) {
            continue;
        }
        out.listeners.insert(
            plan.name.clone(),
            GatewayEnvoyListener {
                name: plan.name.clone(),
                port: plan.port,
                protocol: plan.protocol,
                tls,
                hosts: BTreeMap::new(),
            },
        );
    }
    for ((listener, host), entries) in table {
        let Some(l) = out.listeners.get_mut(&listener) else {
            continue;
        };
        let routes = entries
            .iter()
            .map(|e| route(snapshot, e, &mut out.clusters))
            .collect();
        l.hosts.insert(host, routes);
    }
    out.status = status;
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
fn route(snapshot: &Snapshot, e: &Entry, clusters: &mut BTreeMap<String, Cluster>) -> GatewayRoute {
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
    clusters: &mut BTreeMap<String, Cluster>,
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
    clusters.entry(name.clone()).or_insert(c);
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
