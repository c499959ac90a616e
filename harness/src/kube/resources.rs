//! REST paths of Kubernetes objects: a small kind → resource table for the kinds isobar's tests
//! use, and the path rules (`/api/v1/...` for the core group, `/apis/GROUP/VERSION/...` otherwise).

/// A resource type: its plural (the path segment) and whether objects live in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// `apiVersion`, e.g. `v1` or `networking.k8s.io/v1`.
    pub api_version: String,
    /// The lower-case plural, e.g. `ingresses`.
    pub plural: String,
    /// Whether objects are namespaced.
    pub namespaced: bool,
}

/// `(group, kind, plural, namespaced)`; the group is `""` for the core group.
const KNOWN: &[(&str, &str, &str, bool)] = &[
    ("", "Namespace", "namespaces", false),
    ("", "Service", "services", true),
    ("", "Endpoints", "endpoints", true),
    ("", "Secret", "secrets", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("discovery.k8s.io", "EndpointSlice", "endpointslices", true),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    ("coordination.k8s.io", "Lease", "leases", true),
    ("contour.heptio.com", "IngressRoute", "ingressroutes", true),
    (
        "contour.heptio.com",
        "TLSCertificateDelegation",
        "tlscertificatedelegations",
        true,
    ),
    ("projectcontour.io", "HTTPProxy", "httpproxies", true),
    (
        "gateway.networking.k8s.io",
        "GatewayClass",
        "gatewayclasses",
        false,
    ),
    ("gateway.networking.k8s.io", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    (
        "gateway.networking.k8s.io",
        "ReferenceGrant",
        "referencegrants",
        true,
    ),
];

/// The group of an `apiVersion` (`""` for `v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Looks `kind` up in the built-in table (any version of its group).
pub fn known_resource(api_version: &str, kind: &str) -> Option<ResourceType> {
    let group = group_of(api_version);
    KNOWN
        .iter()
        .find(|(g, k, _, _)| *g == group && *k == kind)
        .map(|(_, _, plural, namespaced)| ResourceType {
            api_version: api_version.to_string(),
            plural: plural.to_string(),
            namespaced: *namespaced,
        })
}

/// The discovery path listing the resources of `api_version`.
pub fn discovery_path(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

impl ResourceType {
    /// The collection path: `.../namespaces/NS/PLURAL` or `.../PLURAL`.
    /// `namespace` is ignored for cluster-scoped resources and defaults to `default`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = discovery_path(&self.api_version);
        if self.namespaced {
            let ns = namespace.filter(|n| !n.is_empty()).unwrap_or("default");
            format!("{base}/namespaces/{ns}/{}", self.plural)
        } else {
            format!("{base}/{}", self.plural)
        }
    }

    /// The path of the object named `name`.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection_path(namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_group_objects_live_under_api_v1() {
        let svc = known_resource("v1", "Service").unwrap();
        assert_eq!(
            svc.object_path(Some("ns1"), "web"),
            "/api/v1/namespaces/ns1/services/web"
        );
        assert_eq!(
            svc.object_path(None, "web"),
            "/api/v1/namespaces/default/services/web"
        );
        let ns = known_resource("v1", "Namespace").unwrap();
        assert_eq!(ns.object_path(Some("ignored"), "x"), "/api/v1/namespaces/x");
    }

    #[test]
    fn grouped_and_custom_resources_live_under_apis() {
        let ing = known_resource("networking.k8s.io/v1", "Ingress").unwrap();
        assert_eq!(
            ing.object_path(Some("a"), "b"),
            "/apis/networking.k8s.io/v1/namespaces/a/ingresses/b"
        );
        let eps = known_resource("discovery.k8s.io/v1beta1", "EndpointSlice").unwrap();
        assert_eq!(
            eps.collection_path(Some("a")),
            "/apis/discovery.k8s.io/v1beta1/namespaces/a/endpointslices"
        );
        let ir = known_resource("contour.heptio.com/v1beta1", "IngressRoute").unwrap();
        assert_eq!(
            ir.object_path(Some("a"), "r"),
            "/apis/contour.heptio.com/v1beta1/namespaces/a/ingressroutes/r"
        );
        let crd = known_resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").unwrap();
        assert_eq!(
            crd.object_path(None, "x.y"),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.y"
        );
        assert!(known_resource("v1", "Ingress").is_none());
    }
}
