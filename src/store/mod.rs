//! The snapshot of every object the controller acts on, as the sources deliver them. Both sources (a
//! directory of YAML, a Kubernetes API server) fill the same [`Snapshot`]; from here on there is one
//! code path.

mod core_reduced;
mod endpoint_slice;
mod secret;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

pub use core_reduced::{EndpointAddress, EndpointSubset, Endpoints, Meta, Service, ServiceSpec};
pub use endpoint_slice::{
    EndpointSlice, SliceConditions, SliceEndpoint, SlicePort, SERVICE_NAME_LABEL,
};
pub use secret::StoredSecret;

use crate::crd::gateway::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::crd::{IngressRoute, TLSCertificateDelegation};

/// Namespace and name of a namespaced object. Ordered, so iteration over a snapshot is deterministic.
///
/// Shared strings: a key is copied into every index, route, cluster and status that names its object
/// (some twenty copies per Ingress), and a copy is then two reference counts, not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        ObjectKey {
            namespace: Arc::from(namespace.as_ref()),
            name: Arc::from(name.as_ref()),
        }
    }
}

/// An object's namespace and name, borrowed: a snapshot's maps are searched with it without building
/// an [`ObjectKey`] (two allocations), as every backend a build resolves would otherwise do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

impl<'a> KeyRef<'a> {
    /// The key of an object with this namespace and name, as [`key`] makes it: one without a
    /// namespace is in `default` (a cluster-scoped object's namespace is given as "").
    pub fn of(namespace: Option<&'a str>, name: Option<&'a str>) -> Self {
        KeyRef {
            namespace: namespace.unwrap_or("default"),
            name: name.unwrap_or_default(),
        }
    }

    /// The owned key.
    pub fn to_key(self) -> ObjectKey {
        ObjectKey::new(self.namespace, self.name)
    }
}

/// Ordered as [`ObjectKey`] is (namespace, then name), so a search with either finds the same entry.
impl equivalent::Comparable<ObjectKey> for KeyRef<'_> {
    fn compare(&self, key: &ObjectKey) -> std::cmp::Ordering {
        (self.namespace, self.name).cmp(&(&*key.namespace, &*key.name))
    }
}

impl equivalent::Equivalent<ObjectKey> for KeyRef<'_> {
    fn equivalent(&self, key: &ObjectKey) -> bool {
        self.namespace == &*key.namespace && self.name == &*key.name
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One object of a kind isobar understands. Shared: the same parsed object goes into every snapshot
/// until it changes, so a snapshot is cheap to copy and the incremental build tells changed objects
/// by address.
#[derive(Debug, Clone)]
pub enum KubeObject {
    Service(Arc<Service>),
    Endpoints(Arc<Endpoints>),
    Secret(Arc<StoredSecret>),
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    EndpointSlice(Arc<EndpointSlice>),
    IngressRoute(Arc<IngressRoute>),
    TLSCertificateDelegation(Arc<TLSCertificateDelegation>),
    GatewayClass(Arc<GatewayClass>),
    Gateway(Arc<Gateway>),
    HttpRoute(Arc<HttpRoute>),
    ReferenceGrant(Arc<ReferenceGrant>),
    /// Read for its labels (a Gateway listener's `allowedRoutes` namespace selector).
    Namespace(Arc<Namespace>),
}

/// Why a document could not become a [`KubeObject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseOutcome {
    /// A kind isobar does not act on (a Deployment next to the Services, say): skipped.
    Ignored { api_version: String, kind: String },
    /// A kind isobar acts on, but the document does not fit its schema.
    Invalid(String),
}

impl KubeObject {
    /// Interprets a generic document by its `apiVersion` and `kind`.
    pub fn from_value(value: serde_json::Value) -> Result<KubeObject, ParseOutcome> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        /// Parsed as `K` (its schema decides what is invalid), kept as `T`.
        fn reduced<K: DeserializeOwned, T: From<K>>(
            v: serde_json::Value,
        ) -> Result<Arc<T>, ParseOutcome> {
            serde_json::from_value::<K>(v)
                .map(|k| Arc::new(T::from(k)))
                .map_err(|e| ParseOutcome::Invalid(e.to_string()))
        }
        fn typed<T: DeserializeOwned>(v: serde_json::Value) -> Result<Arc<T>, ParseOutcome> {
            reduced::<T, T>(v)
        }
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Service") => {
                reduced::<k8s_openapi::api::core::v1::Service, _>(value).map(KubeObject::Service)
            }
            ("v1", "Endpoints") => reduced::<k8s_openapi::api::core::v1::Endpoints, _>(value)
                .map(KubeObject::Endpoints),
            ("v1", "Secret") => {
                reduced::<k8s_openapi::api::core::v1::Secret, _>(value).map(KubeObject::Secret)
            }
            ("v1", "Namespace") => typed(value).map(KubeObject::Namespace),
            ("networking.k8s.io/v1", "Ingress") => typed(value).map(KubeObject::Ingress),
            ("networking.k8s.io/v1", "IngressClass") => typed(value).map(KubeObject::IngressClass),
            ("discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1", "EndpointSlice") => {
                typed(value).map(KubeObject::EndpointSlice)
            }
            ("contour.heptio.com/v1beta1", "IngressRoute") => {
                typed(value).map(KubeObject::IngressRoute)
            }
            ("contour.heptio.com/v1beta1", "TLSCertificateDelegation") => {
                typed(value).map(KubeObject::TLSCertificateDelegation)
            }
            // The standard channel serves these kinds as v1 and v1beta1 with the same schema.
            (GATEWAY_V1 | GATEWAY_V1BETA1, "GatewayClass") => {
                typed(value).map(KubeObject::GatewayClass)
            }
            (GATEWAY_V1 | GATEWAY_V1BETA1, "Gateway") => typed(value).map(KubeObject::Gateway),
            (GATEWAY_V1 | GATEWAY_V1BETA1, "HTTPRoute") => typed(value).map(KubeObject::HttpRoute),
            (GATEWAY_V1 | GATEWAY_V1BETA1, "ReferenceGrant") => {
                typed(value).map(KubeObject::ReferenceGrant)
            }
            ("", _) | (_, "") => Err(ParseOutcome::Invalid(
                "document has no apiVersion or kind".to_string(),
            )),
            _ => Err(ParseOutcome::Ignored { api_version, kind }),
        }
    }
}

const GATEWAY_V1: &str = "gateway.networking.k8s.io/v1";
const GATEWAY_V1BETA1: &str = "gateway.networking.k8s.io/v1beta1";

/// Objects of one kind by key, in a persistent map: copying a snapshot is O(1) (the maps share their
/// nodes until one is changed), and [`imbl::OrdMap::diff`] between two snapshots visits only what
/// differs. The objects are shared (`Arc`): an object whose pointer is unchanged is unchanged.
pub type Objects<T> = imbl::OrdMap<ObjectKey, Arc<T>>;

/// The key of an entry a diff between two persistent maps visits (added, removed or updated): the
/// DAG's memo diffs snapshots' maps with it, the translation's memo the DAG's.
pub fn diff_key<'a, K, V>(d: &imbl::ordmap::DiffItem<'a, 'a, K, V>) -> &'a K {
    use imbl::ordmap::DiffItem;
    match d {
        DiffItem::Add(k, _) | DiffItem::Remove(k, _) => k,
        DiffItem::Update { new: (k, _), .. } => k,
    }
}

/// Every object isobar acts on, keyed for deterministic iteration.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub services: Objects<Service>,
    pub endpoints: Objects<Endpoints>,
    pub secrets: Objects<StoredSecret>,
    pub ingresses: Objects<Ingress>,
    /// Cluster-scoped: the key's namespace is empty.
    pub ingress_classes: Objects<IngressClass>,
    pub endpoint_slices: Objects<EndpointSlice>,
    pub ingress_routes: Objects<IngressRoute>,
    pub tls_certificate_delegations: Objects<TLSCertificateDelegation>,
    /// Cluster-scoped: the key's namespace is empty.
    pub gateway_classes: Objects<GatewayClass>,
    pub gateways: Objects<Gateway>,
    pub http_routes: Objects<HttpRoute>,
    pub reference_grants: Objects<ReferenceGrant>,
    /// Cluster-scoped: the key's namespace is empty.
    pub namespaces: Objects<Namespace>,
}

/// The key of a namespaced object; one without a namespace lands in `default`, as `kubectl apply` would
/// put it.
pub fn key(meta: &ObjectMeta) -> ObjectKey {
    key_of(meta.namespace.as_deref(), meta.name.as_deref())
}

/// [`key`] from a namespace and a name.
pub fn key_of(namespace: Option<&str>, name: Option<&str>) -> ObjectKey {
    KeyRef::of(namespace, name).to_key()
}

/// Which of a snapshot's maps an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreKind {
    Service,
    Endpoints,
    Secret,
    Ingress,
    IngressClass,
    EndpointSlice,
    IngressRoute,
    TLSCertificateDelegation,
    GatewayClass,
    Gateway,
    HttpRoute,
    ReferenceGrant,
    Namespace,
}

impl KubeObject {
    /// The object's kind and key: where it lives in a snapshot.
    pub fn id(&self) -> (StoreKind, ObjectKey) {
        let (kind, key) = self.id_ref();
        (kind, key.to_key())
    }

    /// [`KubeObject::id`] borrowed: to compare objects' ids without building keys.
    pub fn id_ref(&self) -> (StoreKind, KeyRef<'_>) {
        fn meta(m: &ObjectMeta) -> (Option<&str>, Option<&str>) {
            (m.namespace.as_deref(), m.name.as_deref())
        }
        fn cluster_scoped(m: &ObjectMeta) -> (Option<&str>, Option<&str>) {
            (Some(""), m.name.as_deref())
        }
        let (kind, (namespace, name)) = match self {
            KubeObject::Service(o) => (StoreKind::Service, o.metadata.parts()),
            KubeObject::Endpoints(o) => (StoreKind::Endpoints, o.metadata.parts()),
            KubeObject::Secret(o) => (StoreKind::Secret, meta(&o.metadata)),
            KubeObject::Ingress(o) => (StoreKind::Ingress, meta(&o.metadata)),
            KubeObject::IngressClass(o) => (StoreKind::IngressClass, cluster_scoped(&o.metadata)),
            KubeObject::EndpointSlice(o) => (StoreKind::EndpointSlice, meta(&o.metadata)),
            KubeObject::IngressRoute(o) => (StoreKind::IngressRoute, meta(&o.metadata)),
            KubeObject::TLSCertificateDelegation(o) => {
                (StoreKind::TLSCertificateDelegation, meta(&o.metadata))
            }
            KubeObject::GatewayClass(o) => (StoreKind::GatewayClass, cluster_scoped(&o.metadata)),
            KubeObject::Gateway(o) => (StoreKind::Gateway, meta(&o.metadata)),
            KubeObject::HttpRoute(o) => (StoreKind::HttpRoute, meta(&o.metadata)),
            KubeObject::ReferenceGrant(o) => (StoreKind::ReferenceGrant, meta(&o.metadata)),
            KubeObject::Namespace(o) => (StoreKind::Namespace, cluster_scoped(&o.metadata)),
        };
        (kind, KeyRef::of(namespace, name))
    }
}

impl Snapshot {
    /// Adds (or replaces) an object.
    pub fn insert(&mut self, object: KubeObject) {
        let (_, key) = object.id();
        self.insert_at(key, object);
    }

    /// Adds (or replaces) an object at `key`, its key ([`KubeObject::id`]) already made: the
    /// snapshot then shares the key's strings with the caller's copy instead of holding its own.
    pub fn insert_at(&mut self, key: ObjectKey, object: KubeObject) {
        debug_assert_eq!(key, object.id().1);
        match object {
            KubeObject::Service(o) => {
                self.services.insert(key, o);
            }
            KubeObject::Endpoints(o) => {
                self.endpoints.insert(key, o);
            }
            KubeObject::Secret(o) => {
                self.secrets.insert(key, o);
            }
            KubeObject::Ingress(o) => {
                self.ingresses.insert(key, o);
            }
            KubeObject::IngressClass(o) => {
                self.ingress_classes.insert(key, o);
            }
            KubeObject::EndpointSlice(o) => {
                self.endpoint_slices.insert(key, o);
            }
            KubeObject::IngressRoute(o) => {
                self.ingress_routes.insert(key, o);
            }
            KubeObject::TLSCertificateDelegation(o) => {
                self.tls_certificate_delegations.insert(key, o);
            }
            KubeObject::GatewayClass(o) => {
                self.gateway_classes.insert(key, o);
            }
            KubeObject::Gateway(o) => {
                self.gateways.insert(key, o);
            }
            KubeObject::HttpRoute(o) => {
                self.http_routes.insert(key, o);
            }
            KubeObject::ReferenceGrant(o) => {
                self.reference_grants.insert(key, o);
            }
            KubeObject::Namespace(o) => {
                self.namespaces.insert(key, o);
            }
        }
    }

    /// Removes the object of `kind` at `key`, if there is one.
    pub fn remove(&mut self, kind: StoreKind, key: &ObjectKey) {
        match kind {
            StoreKind::Service => drop(self.services.remove(key)),
            StoreKind::Endpoints => drop(self.endpoints.remove(key)),
            StoreKind::Secret => drop(self.secrets.remove(key)),
            StoreKind::Ingress => drop(self.ingresses.remove(key)),
            StoreKind::IngressClass => drop(self.ingress_classes.remove(key)),
            StoreKind::EndpointSlice => drop(self.endpoint_slices.remove(key)),
            StoreKind::IngressRoute => drop(self.ingress_routes.remove(key)),
            StoreKind::TLSCertificateDelegation => {
                drop(self.tls_certificate_delegations.remove(key))
            }
            StoreKind::GatewayClass => drop(self.gateway_classes.remove(key)),
            StoreKind::Gateway => drop(self.gateways.remove(key)),
            StoreKind::HttpRoute => drop(self.http_routes.remove(key)),
            StoreKind::ReferenceGrant => drop(self.reference_grants.remove(key)),
            StoreKind::Namespace => drop(self.namespaces.remove(key)),
        }
    }

    /// The object the snapshot holds at `object`'s key, if it is `object` itself or equal to it: a
    /// source that reads an unchanged object again (a file re-read for another object's edit) keeps
    /// that one shared value, so the next snapshot differs from this one only where content did.
    pub fn held_equal(&self, object: &KubeObject) -> Option<KubeObject> {
        fn held<T: PartialEq>(
            map: &Objects<T>,
            key: &ObjectKey,
            o: &Arc<T>,
            wrap: fn(Arc<T>) -> KubeObject,
        ) -> Option<KubeObject> {
            let held = map.get(key)?;
            (Arc::ptr_eq(held, o) || **held == **o).then(|| wrap(Arc::clone(held)))
        }
        let (_, key) = object.id();
        match object {
            KubeObject::Service(o) => held(&self.services, &key, o, KubeObject::Service),
            KubeObject::Endpoints(o) => held(&self.endpoints, &key, o, KubeObject::Endpoints),
            KubeObject::Secret(o) => held(&self.secrets, &key, o, KubeObject::Secret),
            KubeObject::Ingress(o) => held(&self.ingresses, &key, o, KubeObject::Ingress),
            KubeObject::IngressClass(o) => {
                held(&self.ingress_classes, &key, o, KubeObject::IngressClass)
            }
            KubeObject::EndpointSlice(o) => {
                held(&self.endpoint_slices, &key, o, KubeObject::EndpointSlice)
            }
            KubeObject::IngressRoute(o) => {
                held(&self.ingress_routes, &key, o, KubeObject::IngressRoute)
            }
            KubeObject::TLSCertificateDelegation(o) => held(
                &self.tls_certificate_delegations,
                &key,
                o,
                KubeObject::TLSCertificateDelegation,
            ),
            KubeObject::GatewayClass(o) => {
                held(&self.gateway_classes, &key, o, KubeObject::GatewayClass)
            }
            KubeObject::Gateway(o) => held(&self.gateways, &key, o, KubeObject::Gateway),
            KubeObject::HttpRoute(o) => held(&self.http_routes, &key, o, KubeObject::HttpRoute),
            KubeObject::ReferenceGrant(o) => {
                held(&self.reference_grants, &key, o, KubeObject::ReferenceGrant)
            }
            KubeObject::Namespace(o) => held(&self.namespaces, &key, o, KubeObject::Namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::namespaced(serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"}}), StoreKind::Service, "a", "s")]
    #[case::no_namespace_is_default(serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}}), StoreKind::Ingress, "default", "i")]
    #[case::reduced_no_namespace(serde_json::json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"}}), StoreKind::Endpoints, "default", "e")]
    #[case::cluster_scoped(serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"}}), StoreKind::IngressClass, "", "c")]
    fn the_borrowed_id_is_the_id(
        #[case] value: serde_json::Value,
        #[case] kind: StoreKind,
        #[case] namespace: &str,
        #[case] name: &str,
    ) {
        let object = KubeObject::from_value(value).expect("a known kind");
        assert_eq!(object.id(), (kind, ObjectKey::new(namespace, name)));
        assert_eq!(object.id_ref(), (kind, KeyRef { namespace, name }));
    }

    #[test]
    fn a_borrowed_key_finds_what_the_owned_key_finds() {
        // Neighbours that a comparison of "namespace/name" text would order differently.
        let keys = [
            ("a", "b"),
            ("a", "b-c"),
            ("a-b", ""),
            ("ab", "a"),
            ("b", ""),
        ];
        let map: imbl::OrdMap<ObjectKey, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, (ns, n))| (ObjectKey::new(ns, n), i))
            .collect();
        for (namespace, name) in keys.into_iter().chain([("a", "c"), ("", "a"), ("c", "")]) {
            assert_eq!(
                map.get_key_value(&KeyRef { namespace, name }),
                map.get_key_value(&ObjectKey::new(namespace, name)),
                "{namespace}/{name}"
            );
        }
    }
}
