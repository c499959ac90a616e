//! Which listeners an HTTPRoute's `parentRef` attaches to, or the spec's reason why none.
//!
//! A parentRef names a Gateway (group `gateway.networking.k8s.io`, kind `Gateway`, the route's
//! namespace unless it says otherwise), optionally one listener by `sectionName` and/or `port` (the
//! port as the Gateway writes it, not the port Envoy binds). Each selected listener then decides:
//! its `allowedRoutes.kinds` must admit HTTPRoute, its `allowedRoutes.namespaces` the route's
//! namespace (`Same` by default, `All`, or a label `Selector` over the namespace's labels), and its
//! host name must intersect the route's host names.

use std::collections::BTreeMap;

use kube::core::labels::{Selector, SelectorExt};

use super::hostname;
use crate::store::ObjectKey;

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// A route's reference to its parent, as written (the spec's defaults not yet applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentRef {
    /// The Gateway it names, if it names a Gateway (it may name another kind of parent, which is
    /// none of isobar's business).
    pub fn gateway(&self, route_namespace: &str) -> Option<ObjectKey> {
        let group = self.group.as_deref().unwrap_or(GROUP);
        let kind = self.kind.as_deref().unwrap_or("Gateway");
        (group == GROUP && kind == "Gateway").then(|| {
            ObjectKey::new(
                self.namespace.as_deref().unwrap_or(route_namespace),
                self.name.clone(),
            )
        })
    }
}

/// A kind of route, as `allowedRoutes.kinds` and `supportedKinds` write it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteKind {
    pub group: String,
    pub kind: String,
}

impl RouteKind {
    /// `HTTPRoute`, the one kind isobar's HTTP and HTTPS listeners take.
    pub fn http_route() -> RouteKind {
        RouteKind {
            group: GROUP.to_string(),
            kind: "HTTPRoute".to_string(),
        }
    }
}

/// `allowedRoutes.kinds` (a missing group means Gateway API's) split into the kinds an HTTP or HTTPS
/// listener supports and the others, which make the listener's `ResolvedRefs` false with reason
/// `InvalidRouteKinds`. Not given or empty, the listener takes what its protocol serves: HTTPRoute.
pub fn route_kinds(kinds: Option<&[(Option<String>, String)]>) -> (Vec<RouteKind>, Vec<RouteKind>) {
    let Some(kinds) = kinds.filter(|k| !k.is_empty()) else {
        return (vec![RouteKind::http_route()], Vec::new());
    };
    kinds
        .iter()
        .map(|(group, kind)| RouteKind {
            group: group.clone().unwrap_or_else(|| GROUP.to_string()),
            kind: kind.clone(),
        })
        .partition(|k| *k == RouteKind::http_route())
}

/// Which namespaces' routes a listener takes.
#[derive(Debug, Clone, Default)]
pub enum AllowedNamespaces {
    #[default]
    Same,
    All,
    /// Namespaces whose labels match; `None` for a selector that does not parse, which matches
    /// nothing.
    Selector(Option<Selector>),
}

/// One listener of an accepted Gateway, as attachment needs it.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    /// The port as written in the Gateway.
    pub port: i32,
    pub hostname: Option<String>,
    pub namespaces: AllowedNamespaces,
    /// Whether the listener takes HTTPRoutes: its protocol serves them and `allowedRoutes.kinds`
    /// (if given) names HTTPRoute.
    pub takes_http_routes: bool,
    /// Whether it serves at all (not conflicted, not refused).
    pub serving: bool,
}

/// Why a parentRef attaches to no listener: the `Accepted=False` reasons of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAttached {
    /// No listener has the `sectionName` / `port` asked for.
    NoMatchingParent(String),
    /// Listeners were found, but none takes this route's kind or namespace.
    NotAllowedByListeners(String),
    /// Listeners take the route, but no host name is common to them and the route.
    NoMatchingListenerHostname(String),
}

/// A listener the route attached to, and the host names it serves there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub listener: String,
    pub hostnames: Vec<String>,
}

/// Attaches a route in `route_namespace` with `route_hostnames` through `parent` to the listeners of
/// the Gateway `gateway` in `gateway_namespace`. `namespace_labels` gives a namespace's labels
/// (`None` for a namespace that does not exist, which no selector matches).
pub fn attach<'a>(
    route_namespace: &str,
    route_hostnames: &[String],
    parent: &ParentRef,
    gateway_namespace: &str,
    listeners: &[Listener],
    namespace_labels: impl Fn(&str) -> Option<&'a BTreeMap<String, String>>,
) -> Result<Vec<Attached>, NotAttached> {
    let selected: Vec<&Listener> = listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect();
    if selected.is_empty() {
        return Err(NotAttached::NoMatchingParent(
            match (&parent.section_name, parent.port) {
                (Some(s), Some(p)) => format!("the Gateway has no listener {s:?} on port {p}"),
                (Some(s), None) => format!("the Gateway has no listener {s:?}"),
                (None, Some(p)) => format!("the Gateway has no listener on port {p}"),
                (None, None) => "the Gateway has no listeners".to_string(),
            },
        ));
    }
    let allowed: Vec<&Listener> = selected
        .into_iter()
        .filter(|l| l.serving && l.takes_http_routes)
        .filter(|l| match &l.namespaces {
            AllowedNamespaces::Same => route_namespace == gateway_namespace,
            AllowedNamespaces::All => true,
            AllowedNamespaces::Selector(s) => s.as_ref().is_some_and(|s| {
                namespace_labels(route_namespace).is_some_and(|labels| s.matches(labels))
            }),
        })
        .collect();
    if allowed.is_empty() {
        return Err(NotAttached::NotAllowedByListeners(format!(
            "no listener of the Gateway takes HTTPRoutes from namespace {route_namespace:?}"
        )));
    }
    let attached: Vec<Attached> = allowed
        .into_iter()
        .filter_map(|l| {
            let hostnames = hostname::intersect(l.hostname.as_deref(), route_hostnames);
            (!hostnames.is_empty()).then(|| Attached {
                listener: l.name.clone(),
                hostnames,
            })
        })
        .collect();
    if attached.is_empty() {
        return Err(NotAttached::NoMatchingListenerHostname(format!(
            "no host name of the route ({}) matches a listener's",
            route_hostnames.join(", ")
        )));
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;

    fn listener(name: &str, port: i32, host: Option<&str>, ns: AllowedNamespaces) -> Listener {
        Listener {
            name: name.to_string(),
            port,
            hostname: host.map(str::to_string),
            namespaces: ns,
            takes_http_routes: true,
            serving: true,
        }
    }

    fn parent(section: Option<&str>, port: Option<i32>) -> ParentRef {
        ParentRef {
            name: "gw".to_string(),
            section_name: section.map(str::to_string),
            port,
            ..ParentRef::default()
        }
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn no_labels(_: &str) -> Option<&'static BTreeMap<String, String>> {
        None
    }

    #[test]
    fn allowed_route_kinds_default_to_http_route_and_refuse_the_rest() {
        assert_eq!(route_kinds(None), (vec![RouteKind::http_route()], vec![]));
        let kinds = [
            (None, "HTTPRoute".to_string()),
            (Some(GROUP.to_string()), "GRPCRoute".to_string()),
            (Some("example.com".to_string()), "HTTPRoute".to_string()),
        ];
        let (supported, invalid) = route_kinds(Some(&kinds));
        assert_eq!(supported, [RouteKind::http_route()]);
        assert_eq!(
            invalid
                .iter()
                .map(|k| format!("{}/{}", k.group, k.kind))
                .collect::<Vec<_>>(),
            [
                "gateway.networking.k8s.io/GRPCRoute",
                "example.com/HTTPRoute"
            ]
        );
        assert_eq!(
            route_kinds(Some(&[])),
            (vec![RouteKind::http_route()], vec![])
        );
    }

    #[test]
    fn a_parent_ref_defaults_to_a_gateway_in_the_routes_namespace() {
        let p = parent(None, None);
        assert_eq!(p.gateway("shop"), Some(ObjectKey::new("shop", "gw")));
        let other = ParentRef {
            kind: Some("Service".to_string()),
            group: Some(String::new()),
            ..p.clone()
        };
        assert_eq!(other.gateway("shop"), None);
        let across = ParentRef {
            namespace: Some("infra".to_string()),
            ..p
        };
        assert_eq!(across.gateway("shop"), Some(ObjectKey::new("infra", "gw")));
    }

    #[test]
    fn section_name_and_port_select_listeners() {
        let ls = [
            listener("http", 80, None, AllowedNamespaces::All),
            listener("alt", 8080, None, AllowedNamespaces::All),
        ];
        let names = |p: ParentRef| -> Vec<String> {
            attach("shop", &[], &p, "infra", &ls, no_labels)
                .unwrap()
                .into_iter()
                .map(|a| a.listener)
                .collect()
        };
        assert_eq!(names(parent(None, None)), ["http", "alt"]);
        assert_eq!(names(parent(Some("alt"), None)), ["alt"]);
        assert_eq!(names(parent(None, Some(80))), ["http"]);
        assert!(matches!(
            attach(
                "shop",
                &[],
                &parent(Some("alt"), Some(80)),
                "infra",
                &ls,
                no_labels
            ),
            Err(NotAttached::NoMatchingParent(_))
        ));
        assert!(matches!(
            attach(
                "shop",
                &[],
                &parent(Some("nope"), None),
                "infra",
                &ls,
                no_labels
            ),
            Err(NotAttached::NoMatchingParent(_))
        ));
    }

    #[test]
    fn allowed_routes_namespaces_same_all_and_selector() {
        let selector: Selector = LabelSelector {
            match_labels: Some([("shared".to_string(), "yes".to_string())].into()),
            ..LabelSelector::default()
        }
        .try_into()
        .expect("a valid selector");
        let ls = [
            listener("same", 80, None, AllowedNamespaces::Same),
            listener("sel", 81, None, AllowedNamespaces::Selector(Some(selector))),
        ];
        let shared: BTreeMap<String, String> = [("shared".to_string(), "yes".to_string())].into();
        let labels = |ns: &str| (ns == "tenant-a").then_some(&shared);
        let names = |ns: &str| -> Result<Vec<String>, NotAttached> {
            attach(ns, &[], &parent(None, None), "infra", &ls, labels)
                .map(|v| v.into_iter().map(|a| a.listener).collect())
        };
        assert_eq!(names("infra").unwrap(), ["same"]);
        assert_eq!(names("tenant-a").unwrap(), ["sel"]);
        assert!(matches!(
            names("tenant-b"),
            Err(NotAttached::NotAllowedByListeners(_))
        ));
    }

    #[test]
    fn listeners_that_take_no_http_routes_or_do_not_serve_take_none() {
        let mut wrong_kind = listener("a", 80, None, AllowedNamespaces::All);
        wrong_kind.takes_http_routes = false;
        let mut conflicted = listener("b", 80, None, AllowedNamespaces::All);
        conflicted.serving = false;
        assert!(matches!(
            attach(
                "shop",
                &[],
                &parent(None, None),
                "infra",
                &[wrong_kind, conflicted],
                no_labels
            ),
            Err(NotAttached::NotAllowedByListeners(_))
        ));
    }

    #[test]
    fn host_names_must_intersect() {
        let ls = [
            listener("a", 80, Some("a.example.com"), AllowedNamespaces::All),
            listener("w", 81, Some("*.example.com"), AllowedNamespaces::All),
        ];
        let got = attach(
            "shop",
            &hosts(&["a.example.com"]),
            &parent(None, None),
            "infra",
            &ls,
            no_labels,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                Attached {
                    listener: "a".to_string(),
                    hostnames: hosts(&["a.example.com"])
                },
                Attached {
                    listener: "w".to_string(),
                    hostnames: hosts(&["a.example.com"])
                },
            ]
        );
        assert!(matches!(
            attach(
                "shop",
                &hosts(&["example.net"]),
                &parent(None, None),
                "infra",
                &ls,
                no_labels
            ),
            Err(NotAttached::NoMatchingListenerHostname(_))
        ));
    }
}
