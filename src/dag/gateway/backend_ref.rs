//! An HTTPRoute `backendRef` resolved to a Service port, or the spec's reason it can't be. A rule
//! keeps a backend that can't be resolved, with its weight: the spec wants the share of requests that
//! would have gone there answered with 500, never dropped and never sent elsewhere.

use super::attach::GROUP;
use super::grant::{permitted, Reference};
use crate::crd::gateway::ReferenceGrant;
use crate::store::ObjectKey;

/// The spec's bound on a backend's weight.
pub const MAX_WEIGHT: i32 = 1_000_000;

/// A backendRef as written (the spec's defaults not yet applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub port: Option<i32>,
    pub weight: Option<i32>,
}

/// Why a backendRef resolves to nothing: the route's `ResolvedRefs=False` reasons of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// A kind other than a core Service.
    InvalidKind(String),
    /// Another namespace without a ReferenceGrant there.
    RefNotPermitted(String),
    /// No such Service, or no such port on it.
    BackendNotFound(String),
    /// What a newer API server's validation refuses (a Service without a port, a weight out of
    /// range); reason `UnsupportedValue`.
    Invalid(String),
}

impl Unresolved {
    /// What went wrong, for a person.
    pub fn message(&self) -> &str {
        match self {
            Unresolved::InvalidKind(m)
            | Unresolved::RefNotPermitted(m)
            | Unresolved::BackendNotFound(m)
            | Unresolved::Invalid(m) => m,
        }
    }
}

/// A backend that resolved: a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub service: ObjectKey,
    pub port: i32,
}

/// A backendRef's weight (default 1), refused outside `0..=1_000_000`.
pub fn weight(b: &BackendRef) -> Result<u32, Unresolved> {
    let w = b.weight.unwrap_or(1);
    u32::try_from(w)
        .ok()
        .filter(|_| w <= MAX_WEIGHT)
        .ok_or_else(|| Unresolved::Invalid(format!("weight {w} is not between 0 and {MAX_WEIGHT}")))
}

/// Resolves `b`, written in an HTTPRoute in `route_namespace`. `grants` gives the ReferenceGrants of
/// a namespace; `service_has_port` whether a Service exists and has a port (`Ok(())`), or why not.
pub fn resolve<'g, G>(
    route_namespace: &str,
    b: &BackendRef,
    grants: impl Fn(&str) -> G,
    service_has_port: impl Fn(&ObjectKey, i32) -> Result<(), String>,
) -> Result<Resolved, Unresolved>
where
    G: IntoIterator<Item = &'g ReferenceGrant>,
{
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        let shown = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        return Err(Unresolved::InvalidKind(format!(
            "backendRef {:?} is a {shown}; isobar routes to core Services only",
            b.name
        )));
    }
    let namespace = b.namespace.as_deref().unwrap_or(route_namespace);
    let reference = Reference {
        from_group: GROUP,
        from_kind: "HTTPRoute",
        from_namespace: route_namespace,
        to_group: "",
        to_kind: "Service",
        to_namespace: namespace,
        to_name: &b.name,
    };
    if !permitted(&reference, grants(namespace)) {
        return Err(Unresolved::RefNotPermitted(format!(
            "Service {namespace}/{} is in another namespace and no ReferenceGrant there allows HTTPRoutes from {route_namespace:?}",
            b.name
        )));
    }
    let Some(port) = b.port else {
        return Err(Unresolved::Invalid(format!(
            "backendRef to Service {:?} has no port",
            b.name
        )));
    };
    let service = ObjectKey::new(namespace, b.name.clone());
    service_has_port(&service, port).map_err(Unresolved::BackendNotFound)?;
    Ok(Resolved { service, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str, namespace: Option<&str>, port: Option<i32>) -> BackendRef {
        BackendRef {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            port,
            ..BackendRef::default()
        }
    }

    fn no_grants(_: &str) -> Vec<&'static ReferenceGrant> {
        Vec::new()
    }

    fn web_80(s: &ObjectKey, port: i32) -> Result<(), String> {
        match (&*s.name, port) {
            ("web", 80) => Ok(()),
            ("web", p) => Err(format!("Service {s} has no port {p}")),
            _ => Err(format!("Service {s} does not exist")),
        }
    }

    #[test]
    fn a_service_port_in_the_routes_namespace_resolves() {
        assert_eq!(
            resolve("shop", &b("web", None, Some(80)), no_grants, web_80),
            Ok(Resolved {
                service: ObjectKey::new("shop", "web"),
                port: 80
            })
        );
    }

    #[test]
    fn each_failure_has_the_specs_reason() {
        let r = |b: BackendRef| resolve("shop", &b, no_grants, web_80);
        assert!(matches!(
            r(b("nope", None, Some(80))),
            Err(Unresolved::BackendNotFound(_))
        ));
        assert!(matches!(
            r(b("web", None, Some(81))),
            Err(Unresolved::BackendNotFound(_))
        ));
        assert!(matches!(
            r(b("web", None, None)),
            Err(Unresolved::Invalid(_))
        ));
        assert!(matches!(
            r(b("web", Some("other"), Some(80))),
            Err(Unresolved::RefNotPermitted(_))
        ));
        let unknown = BackendRef {
            group: Some("example.com".to_string()),
            kind: Some("Bucket".to_string()),
            ..b("web", None, Some(80))
        };
        assert!(
            matches!(r(unknown), Err(Unresolved::InvalidKind(m)) if m.contains("Bucket.example.com"))
        );
    }

    #[test]
    fn another_namespace_resolves_through_a_grant_there() {
        use crate::crd::gateway::referencegrants::{ReferenceGrantFrom, ReferenceGrantTo};
        use crate::crd::gateway::ReferenceGrantSpec;
        let grant = ReferenceGrant::new(
            "routes",
            ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: GROUP.to_string(),
                    kind: "HTTPRoute".to_string(),
                    namespace: "shop".to_string(),
                }],
                to: vec![ReferenceGrantTo {
                    group: String::new(),
                    kind: "Service".to_string(),
                    name: None,
                }],
            },
        );
        let grants = |ns: &str| {
            if ns == "backends" {
                vec![&grant]
            } else {
                vec![]
            }
        };
        assert_eq!(
            resolve(
                "shop",
                &b("web", Some("backends"), Some(80)),
                grants,
                web_80
            ),
            Ok(Resolved {
                service: ObjectKey::new("backends", "web"),
                port: 80
            })
        );
        assert!(matches!(
            resolve(
                "elsewhere",
                &b("web", Some("backends"), Some(80)),
                grants,
                web_80
            ),
            Err(Unresolved::RefNotPermitted(_))
        ));
    }

    #[test]
    fn weights_default_to_one_and_stay_in_range() {
        let with = |w| BackendRef {
            weight: w,
            ..b("web", None, Some(80))
        };
        assert_eq!(weight(&with(None)), Ok(1));
        assert_eq!(weight(&with(Some(0))), Ok(0));
        assert_eq!(weight(&with(Some(MAX_WEIGHT))), Ok(1_000_000));
        assert!(weight(&with(Some(MAX_WEIGHT + 1))).is_err());
        assert!(weight(&with(Some(-1))).is_err());
    }
}
