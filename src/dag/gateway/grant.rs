//! ReferenceGrant: whether an object may refer to an object in another namespace. A reference within
//! one namespace needs no grant; across namespaces it needs a ReferenceGrant in the *target's*
//! namespace whose `from` names the referring kind and namespace and whose `to` names the target's
//! kind (and, if it gives one, the target's name).

use crate::crd::gateway::ReferenceGrant;

/// One reference, from an object of `from_group`/`from_kind` in `from_namespace` to the object
/// `to_namespace`/`to_name` of `to_group`/`to_kind` (the core group is `""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    pub from_group: &'a str,
    pub from_kind: &'a str,
    pub from_namespace: &'a str,
    pub to_group: &'a str,
    pub to_kind: &'a str,
    pub to_namespace: &'a str,
    pub to_name: &'a str,
}

/// Whether `reference` is allowed, given the ReferenceGrants of the target's namespace.
pub fn permitted<'g>(
    reference: &Reference<'_>,
    grants_in_target_namespace: impl IntoIterator<Item = &'g ReferenceGrant>,
) -> bool {
    reference.from_namespace == reference.to_namespace
        || grants_in_target_namespace.into_iter().any(|g| {
            g.spec.from.iter().any(|f| {
                f.group == reference.from_group
                    && f.kind == reference.from_kind
                    && f.namespace == reference.from_namespace
            }) && g.spec.to.iter().any(|t| {
                t.group == reference.to_group
                    && t.kind == reference.to_kind
                    && t.name.as_deref().is_none_or(|n| n == reference.to_name)
            })
        })
}

#[cfg(test)]
mod tests {
    use crate::crd::gateway::referencegrants::{ReferenceGrantFrom, ReferenceGrantTo};
    use crate::crd::gateway::ReferenceGrantSpec;

    use super::*;

    fn grant(from_ns: &str, to_kind: &str, to_name: Option<&str>) -> ReferenceGrant {
        ReferenceGrant::new(
            "g",
            ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: "gateway.networking.k8s.io".to_string(),
                    kind: "HTTPRoute".to_string(),
                    namespace: from_ns.to_string(),
                }],
                to: vec![ReferenceGrantTo {
                    group: String::new(),
                    kind: to_kind.to_string(),
                    name: to_name.map(str::to_string),
                }],
            },
        )
    }

    fn route_to_service<'a>(from_ns: &'a str, to_ns: &'a str, name: &'a str) -> Reference<'a> {
        Reference {
            from_group: "gateway.networking.k8s.io",
            from_kind: "HTTPRoute",
            from_namespace: from_ns,
            to_group: "",
            to_kind: "Service",
            to_namespace: to_ns,
            to_name: name,
        }
    }

    #[test]
    fn the_same_namespace_needs_no_grant() {
        assert!(permitted(&route_to_service("a", "a", "web"), []));
    }

    #[test]
    fn another_namespace_needs_a_grant_that_names_kind_namespace_and_maybe_name() {
        let r = route_to_service("shop", "backends", "web");
        assert!(!permitted(&r, []));
        assert!(permitted(&r, [&grant("shop", "Service", None)]));
        assert!(permitted(&r, [&grant("shop", "Service", Some("web"))]));
        assert!(!permitted(&r, [&grant("shop", "Service", Some("api"))]));
        assert!(!permitted(&r, [&grant("other", "Service", None)]));
        assert!(!permitted(&r, [&grant("shop", "Secret", None)]));
    }
}
