//! Gateway API statuses for a whole snapshot: which GatewayClasses are isobar's, each of their
//! Gateways' listeners and conditions, and each HTTPRoute's conditions per parent — the pure parts
//! of this module put together. Routing (what Envoy is sent) is built from the same decisions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::attach::{self, AllowedNamespaces, Attached, NotAttached, ParentRef, RouteKind};
use super::backend_ref::{self, BackendRef, Unresolved};
use super::conditions::{self, CertificateRefs, Condition, ListenerFacts};
use super::grant::{self, Reference};
use super::listener::{self, GatewayListener, ListenerPlan};
use super::validate;
use crate::crd::gateway::gateways::GatewayListenersAllowedRoutesNamespacesFrom as From;
use crate::crd::gateway::httproutes::HttpRouteRulesBackendRefs;
use crate::crd::gateway::{Gateway, HttpRoute};
use crate::dag::secret::tls_secret;
use crate::store::{ObjectKey, Snapshot};

/// isobar's default `--gateway-controller-name`.
pub const DEFAULT_GATEWAY_CONTROLLER_NAME: &str = "isobar.dev/gateway-controller";

/// The settings that change how Gateway API objects are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    /// GatewayClasses with this `controllerName` are isobar's.
    pub controller_name: String,
    /// Added to a listener port below 1024.
    pub privileged_port_offset: u16,
    /// Ports Envoy binds for something else (the Ingress listeners), with what that is: a Gateway
    /// listener there gets `PortUnavailable`.
    pub reserved_ports: BTreeMap<u16, String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            controller_name: DEFAULT_GATEWAY_CONTROLLER_NAME.to_string(),
            privileged_port_offset: listener::DEFAULT_PRIVILEGED_PORT_OFFSET,
            reserved_ports: BTreeMap::new(),
        }
    }
}

/// One listener's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    pub name: String,
    pub supported_kinds: Vec<RouteKind>,
    pub attached_routes: usize,
    pub conditions: Vec<Condition>,
}

/// One Gateway's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayState {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerState>,
}

/// A route's status for one of isobar's parents, and where it attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteParentState {
    pub parent: ParentRef,
    pub gateway: ObjectKey,
    pub attached: Vec<Attached>,
    pub conditions: Vec<Condition>,
}

/// Every Gateway API status isobar owns in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayApiStatus {
    /// isobar's GatewayClasses by name.
    pub classes: BTreeMap<String, Vec<Condition>>,
    pub gateways: BTreeMap<ObjectKey, GatewayState>,
    /// Routes with at least one parent that is isobar's Gateway.
    pub routes: BTreeMap<ObjectKey, Vec<RouteParentState>>,
    pub plan: ListenerPlan,
}

/// The labels of a namespace that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// One Gateway API object's state in a line, as the admin API and the operator page list objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub kind: &'static str,
    pub key: ObjectKey,
    /// Every condition of the object (its listeners', its parents') in a good state.
    pub good: bool,
    /// The conditions in brief, with the reasons and messages of those in a bad state.
    pub reason: String,
}

impl GatewayApiStatus {
    /// Marks HTTPRoute `route` as left out of the configuration: each of its parents in `full` (the
    /// status of the snapshot with the route in it) with `Accepted=False`, `reason` and `message`,
    /// and attached nowhere. For a route Envoy rejected, or one held back while isobar finds which
    /// object Envoy rejected.
    pub fn set_aside(
        &mut self,
        full: &GatewayApiStatus,
        route: &ObjectKey,
        reason: &'static str,
        message: &str,
    ) {
        let Some(parents) = full.routes.get(route) else {
            return;
        };
        let set_aside = parents
            .iter()
            .map(|p| {
                let generation = p.conditions.first().map_or(0, |c| c.observed_generation);
                let accepted = Condition {
                    type_: "Accepted",
                    status: false,
                    reason,
                    message: message.to_string(),
                    observed_generation: generation,
                };
                RouteParentState {
                    parent: p.parent.clone(),
                    gateway: p.gateway.clone(),
                    attached: Vec::new(),
                    conditions: std::iter::once(accepted)
                        .chain(
                            p.conditions
                                .iter()
                                .filter(|c| c.type_ != "Accepted")
                                .cloned(),
                        )
                        .collect(),
                }
            })
            .collect();
        self.routes.insert(route.clone(), set_aside);
    }

    /// Every class, Gateway and route of isobar's, in that order.
    pub fn summaries(&self) -> Vec<ObjectSummary> {
        use super::conditions::{brief, is_bad};
        let summary = |kind, key: ObjectKey, parts: Vec<(String, &[Condition])>| ObjectSummary {
            kind,
            key,
            good: parts.iter().all(|(_, cs)| !cs.iter().any(is_bad)),
            reason: parts
                .iter()
                .map(|(label, cs)| format!("{label}{}", brief(cs)))
                .collect::<Vec<_>>()
                .join("; "),
        };
        let classes = self.classes.iter().map(|(name, cs)| {
            summary(
                "GatewayClass",
                ObjectKey::new("", name.clone()),
                vec![(String::new(), cs.as_slice())],
            )
        });
        let gateways = self.gateways.iter().map(|(key, g)| {
            let listeners = g.listeners.iter().map(|l| {
                (
                    format!("listener {} ({} routes): ", l.name, l.attached_routes),
                    l.conditions.as_slice(),
                )
            });
            let parts = std::iter::once((String::new(), g.conditions.as_slice()))
                .chain(listeners)
                .collect();
            summary("Gateway", key.clone(), parts)
        });
        let routes = self.routes.iter().map(|(key, parents)| {
            let parts = parents
                .iter()
                .map(|p| (format!("parent {}: ", p.gateway), p.conditions.as_slice()))
                .collect();
            summary("HTTPRoute", key.clone(), parts)
        });
        classes.chain(gateways).chain(routes).collect()
    }
}

fn generation(meta: &ObjectMeta) -> i64 {
    meta.generation.unwrap_or_default()
}

/// An object's creation time in seconds since the epoch, for precedence; unknown counts as newest.
pub(super) fn created(meta: &ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map_or(super::precedence::Origin::UNKNOWN_CREATION, |t| {
            t.0.as_second()
        })
}

/// What an HTTPS listener's `certificateRefs` come to.
fn certificates(
    snapshot: &Snapshot,
    gateway: &ObjectKey,
    l: &crate::crd::gateway::GatewayListeners,
) -> CertificateRefs {
    if l.protocol != "HTTPS" {
        return CertificateRefs::Resolved;
    }
    let refs = l
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.as_deref())
        .unwrap_or_default();
    if refs.is_empty() {
        return CertificateRefs::Invalid("an HTTPS listener needs tls.certificateRefs".to_string());
    }
    for r in refs {
        let (group, kind) = (
            r.group.as_deref().unwrap_or(""),
            r.kind.as_deref().unwrap_or("Secret"),
        );
        if !group.is_empty() || kind != "Secret" {
            return CertificateRefs::Invalid(format!(
                "certificateRef {:?} is not a core Secret",
                r.name
            ));
        }
        let namespace = r.namespace.as_deref().unwrap_or(&gateway.namespace);
        let reference = Reference {
            from_group: attach::GROUP,
            from_kind: "Gateway",
            from_namespace: &gateway.namespace,
            to_group: "",
            to_kind: "Secret",
            to_namespace: namespace,
            to_name: &r.name,
        };
        if !grant::permitted(&reference, grants_in(snapshot, namespace)) {
            return CertificateRefs::NotPermitted(format!(
                "Secret {namespace}/{} is in another namespace and no ReferenceGrant there allows Gateways from {:?}",
                r.name, gateway.namespace
            ));
        }
        if let Err(why) = tls_secret(snapshot, &ObjectKey::new(namespace, r.name.clone())) {
            return CertificateRefs::Invalid(why);
        }
    }
    CertificateRefs::Resolved
}

fn grants_in<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
) -> Vec<&'a crate::crd::gateway::ReferenceGrant> {
    let from = ObjectKey::new(namespace, "");
    snapshot
        .reference_grants
        .range(from..)
        .take_while(|(k, _)| *k.namespace == *namespace)
        .map(|(_, g)| g.as_ref())
        .collect()
}

/// A listener as attachment sees it.
fn attach_view(
    l: &crate::crd::gateway::GatewayListeners,
    serving: bool,
    supported: &[RouteKind],
) -> attach::Listener {
    let namespaces = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = namespaces.and_then(|n| n.from.as_ref());
    let namespaces = match from {
        Some(From::All) => AllowedNamespaces::All,
        // The generated selector type has the fields of k8s-openapi's, which kube-core evaluates.
        Some(From::Selector) => AllowedNamespaces::Selector(
            namespaces
                .and_then(|n| n.selector.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| serde_json::from_value::<LabelSelector>(v).ok())
                .and_then(|s| s.try_into().ok()),
        ),
        Some(From::Same) | None => AllowedNamespaces::Same,
    };
    attach::Listener {
        name: l.name.clone(),
        port: l.port,
        hostname: l.hostname.clone(),
        namespaces,
        takes_http_routes: !supported.is_empty(),
        serving,
    }
}

/// The statuses of every Gateway API object of isobar's classes in `snapshot`.
pub fn gateway_api_status(snapshot: &Snapshot, options: &GatewayOptions) -> GatewayApiStatus {
    let frame = gateway_frame(snapshot, options);
    let mut out = frame.status.clone();
    for (key, route) in &snapshot.http_routes {
        out.add_route(key, route_parents(snapshot, key, route, &frame));
    }
    out
}

/// What routes attach to: the statuses of classes and Gateways with no route counted yet, and each
/// Gateway's listeners as attachment sees them. It depends on classes, Gateways, ReferenceGrants and
/// Secrets only, so a route's change leaves it as it is.
#[derive(Debug, Clone, Default)]
pub struct GatewayFrame {
    pub status: GatewayApiStatus,
    pub(super) views: BTreeMap<ObjectKey, Vec<attach::Listener>>,
}

impl GatewayApiStatus {
    /// Adds a route's parents, counting it on the listeners of those that accepted it.
    pub fn add_route(&mut self, key: &ObjectKey, parents: Vec<RouteParentState>) {
        self.count(&parents, true);
        if !parents.is_empty() {
            self.routes.insert(key.clone(), parents);
        }
    }

    /// Takes a route's parents out again, and its count on their listeners.
    pub fn remove_route(&mut self, key: &ObjectKey) {
        if let Some(parents) = self.routes.remove(key) {
            self.count(&parents, false);
        }
    }

    fn count(&mut self, parents: &[RouteParentState], add: bool) {
        for s in parents {
            let accepted = s
                .conditions
                .iter()
                .any(|c| c.type_ == "Accepted" && c.status);
            let Some(gateway) = self.gateways.get_mut(&s.gateway).filter(|_| accepted) else {
                continue;
            };
            for a in &s.attached {
                if let Some(l) = gateway.listeners.iter_mut().find(|l| l.name == a.listener) {
                    if add {
                        l.attached_routes += 1;
                    } else {
                        l.attached_routes = l.attached_routes.saturating_sub(1);
                    }
                }
            }
        }
    }
}

/// The [`GatewayFrame`] of `snapshot`.
pub fn gateway_frame(snapshot: &Snapshot, options: &GatewayOptions) -> GatewayFrame {
    let mut out = GatewayApiStatus::default();
    for (key, class) in &snapshot.gateway_classes {
        if class.spec.controller_name == options.controller_name {
            out.classes.insert(
                key.name.to_string(),
                conditions::gateway_class(generation(&class.metadata)),
            );
        }
    }
    // isobar's Gateways, with the CEL-equivalent problems of each.
    let ours: Vec<(&ObjectKey, &Gateway, Vec<String>)> = snapshot
        .gateways
        .iter()
        .filter(|(_, g)| out.classes.contains_key(&g.spec.gateway_class_name))
        .map(|(k, g)| (k, g.as_ref(), validate::gateway(&g.spec)))
        .collect();
    let listeners: Vec<GatewayListener> = ours
        .iter()
        .filter(|(_, _, invalid)| invalid.is_empty())
        .flat_map(|(key, g, _)| {
            g.spec.listeners.iter().map(|l| GatewayListener {
                gateway: (*key).clone(),
                created: created(&g.metadata),
                name: l.name.clone(),
                protocol: l.protocol.clone(),
                port: l.port,
                hostname: l.hostname.clone(),
            })
        })
        .collect();
    out.plan = listener::plan(
        &listeners,
        options.privileged_port_offset,
        &options.reserved_ports,
    );

    // Per Gateway: each listener's facts, and its view for attachment.
    let mut views: BTreeMap<ObjectKey, Vec<attach::Listener>> = BTreeMap::new();
    for (key, g, invalid) in &ours {
        let gen = generation(&g.metadata);
        let mut states = Vec::new();
        let mut gateway_views = Vec::new();
        for l in &g.spec.listeners {
            let kinds: Option<Vec<(Option<String>, String)>> = l
                .allowed_routes
                .as_ref()
                .and_then(|a| a.kinds.as_ref())
                .map(|ks| {
                    ks.iter()
                        .map(|k| (k.group.clone(), k.kind.clone()))
                        .collect()
                });
            let (supported, invalid_kinds) = attach::route_kinds(kinds.as_deref());
            let certs = certificates(snapshot, key, l);
            let id = ((*key).clone(), l.name.clone());
            let conditions = if invalid.is_empty() {
                conditions::listener(
                    &ListenerFacts {
                        problem: out.plan.problems.get(&id),
                        invalid_kinds: &invalid_kinds,
                        certificates: &certs,
                    },
                    gen,
                )
            } else {
                vec![Condition {
                    type_: "Accepted",
                    status: false,
                    reason: "Invalid",
                    message: invalid.join("; "),
                    observed_generation: gen,
                }]
            };
            let serving = conditions
                .iter()
                .any(|c| c.type_ == "Programmed" && c.status);
            gateway_views.push(attach_view(l, serving, &supported));
            states.push(ListenerState {
                name: l.name.clone(),
                supported_kinds: supported,
                attached_routes: 0,
                conditions,
            });
        }
        let listener_conditions: Vec<Vec<Condition>> =
            states.iter().map(|s| s.conditions.clone()).collect();
        out.gateways.insert(
            (*key).clone(),
            GatewayState {
                conditions: conditions::gateway(&listener_conditions, gen),
                listeners: states,
            },
        );
        views.insert((*key).clone(), gateway_views);
    }
    GatewayFrame { status: out, views }
}

/// A route's state for each parentRef naming one of isobar's Gateways.
pub fn route_parents(
    snapshot: &Snapshot,
    key: &ObjectKey,
    route: &HttpRoute,
    frame: &GatewayFrame,
) -> Vec<RouteParentState> {
    let gen = generation(&route.metadata);
    let invalid = validate::http_route(&route.spec);
    // A test-only fault hook (never in a build without `fault-hooks`): the route's values go to
    // Envoy unchecked, so the tests can make Envoy NACK and watch the isolation find the route.
    #[cfg(feature = "fault-hooks")]
    let invalid = if route
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(validate::FAULT_UNCHECKED_ROUTE))
    {
        Vec::new()
    } else {
        invalid
    };
    let unserved = super::unserved::unserved(&route.spec);
    let hostnames = route.spec.hostnames.clone().unwrap_or_default();
    let unresolved: Vec<Unresolved> = route
        .spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.backend_refs.iter().flatten())
        .filter_map(|b| resolve_backend(snapshot, &key.namespace, b).err())
        .collect();
    let mut out = Vec::new();
    for p in route.spec.parent_refs.iter().flatten() {
        let parent = ParentRef {
            group: p.group.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        };
        let Some(gateway) = parent.gateway(&key.namespace) else {
            continue;
        };
        let Some(listeners) = frame.views.get(&gateway) else {
            continue;
        };
        let attachment: Result<Vec<Attached>, NotAttached> = attach::attach(
            &key.namespace,
            &hostnames,
            &parent,
            &gateway.namespace,
            listeners,
            |ns| {
                snapshot
                    .namespaces
                    .get(&ObjectKey::new("", ns))
                    .map(|n| n.metadata.labels.as_ref().unwrap_or(&NO_LABELS))
            },
        );
        let conditions =
            conditions::route_parent(&attachment, &invalid, &unserved, &unresolved, gen);
        out.push(RouteParentState {
            parent,
            gateway,
            attached: attachment.unwrap_or_default(),
            conditions,
        });
    }
    out
}

/// A rule's backendRef, written in a route in `namespace`: the Service port and weight, or why not.
pub fn resolve_backend(
    snapshot: &Snapshot,
    namespace: &str,
    b: &HttpRouteRulesBackendRefs,
) -> Result<(backend_ref::Resolved, u32), Unresolved> {
    let b = BackendRef {
        group: b.group.clone(),
        kind: b.kind.clone(),
        namespace: b.namespace.clone(),
        name: b.name.clone(),
        port: b.port,
        weight: b.weight,
    };
    let weight = backend_ref::weight(&b)?;
    let resolved = backend_ref::resolve(
        namespace,
        &b,
        |ns| grants_in(snapshot, ns),
        |s, port| service_port(snapshot, s, port),
    )?;
    Ok((resolved, weight))
}

/// Whether Service `key` exists and has `port`.
fn service_port(snapshot: &Snapshot, key: &ObjectKey, port: i32) -> Result<(), String> {
    let service = crate::dag::reads::service(snapshot, key)
        .ok_or_else(|| format!("Service {key} does not exist"))?;
    let has = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|ports| ports.iter().any(|p| p.port == port));
    if has {
        Ok(())
    } else {
        Err(format!("Service {key} has no port {port}"))
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
