//! The Kubernetes source: kube-rs watchers fill one shared [`Snapshot`], and every change is classified
//! ([`Change`]) so the controller rebuilds only what it must.
//!
//! A relist (after a watch error or `410 Gone`) replaces a kind's objects only once the new list is
//! complete, so routes never disappear in between.

mod compare;
mod secret;
mod watch;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};

use crate::store::{Endpoints as ReducedEndpoints, Service as ReducedService, StoredSecret};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::Discovery;
use kube::Client;
use tokio::sync::{mpsc, watch as watch_channel};

use super::Change;
use crate::crd::gateway::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::crd::{IngressRoute, TLSCertificateDelegation};
use crate::store::Snapshot;
use crate::supervisor::Supervisor;
use watch::{watch_kind, KindSpec};

/// The running source.
pub struct KubeSource {
    /// The objects as last seen.
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// One message per change.
    pub changes: mpsc::UnboundedReceiver<Change>,
    /// Names of the kinds whose initial list has completed.
    pub synced: watch_channel::Receiver<BTreeSet<&'static str>>,
    /// The kinds that must be synced before the first configuration is served (all of them).
    pub required: BTreeSet<&'static str>,
}

/// Starts watchers for every kind isobar reads, each a supervised task named `<kind> watcher`.
pub async fn start(client: Client, supervisor: &mut Supervisor) -> KubeSource {
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let (tx, changes) = mpsc::unbounded_channel();
    let (synced_tx, synced) = watch_channel::channel(BTreeSet::new());
    let synced_tx = Arc::new(synced_tx);
    let mut required = BTreeSet::new();

    macro_rules! spawn_typed {
        ($ty:ty, $name:literal, $field:ident, $change:expr, $optional:expr) => {
            spawn_typed!($ty, $name, $field, $change, $optional, |o: $ty| o)
        };
        ($ty:ty, $name:literal, $field:ident, $change:expr, $optional:expr, $convert:expr) => {
            spawn_typed!(
                $ty,
                $name,
                $field,
                $change,
                $optional,
                $convert,
                |o: &$ty| { crate::store::key(&o.metadata) }
            )
        };
        ($ty:ty, $name:literal, $field:ident, $change:expr, $optional:expr, $convert:expr, $key:expr) => {{
            let spec = KindSpec {
                name: $name,
                change: $change,
                optional: $optional,
                map: |s: &mut Snapshot| &mut s.$field,
                key: $key,
            };
            // Every kind is awaited before the first build, optional ones too: a 404 (CRD not
            // installed) marks one listed, and a restarted isobar must not serve a configuration
            // without the IngressRoutes it served before.
            required.insert($name);
            supervisor.spawn(
                concat!($name, " watcher"),
                watch_kind(
                    Api::<$ty>::all(client.clone()),
                    spec,
                    Arc::clone(&snapshot),
                    tx.clone(),
                    Arc::clone(&synced_tx),
                    $convert,
                ),
            );
        }};
    }
    // Reduced on arrival to what routing reads (crate::store::core_reduced).
    spawn_typed!(
        Service,
        "services",
        services,
        Change::Routing,
        false,
        ReducedService::from,
        |o: &ReducedService| o.metadata.key()
    );
    spawn_typed!(
        Endpoints,
        "endpoints",
        endpoints,
        Change::Endpoints,
        false,
        ReducedEndpoints::from,
        |o: &ReducedEndpoints| o.metadata.key()
    );
    // Reduced as they are decoded to the keys isobar reads: most of a cluster's Secrets are not for it.
    spawn_typed!(
        secret::ReadSecret,
        "secrets",
        secrets,
        Change::Routing,
        false,
        |s: secret::ReadSecret| StoredSecret::from(s.0),
        |o: &StoredSecret| crate::store::key(&o.metadata)
    );
    spawn_typed!(Ingress, "ingresses", ingresses, Change::Routing, false);
    spawn_typed!(
        IngressRoute,
        "ingressroutes",
        ingress_routes,
        Change::Routing,
        true
    );
    spawn_typed!(
        TLSCertificateDelegation,
        "tlscertificatedelegations",
        tls_certificate_delegations,
        Change::Routing,
        true
    );
    // Cluster-scoped (keyed with an empty namespace), and read only for their labels (Gateway
    // listeners select route namespaces by label): kept as name and labels.
    spawn_typed!(
        Namespace,
        "namespaces",
        namespaces,
        Change::Routing,
        false,
        |o: Namespace| Namespace {
            metadata: kube::api::ObjectMeta {
                name: o.metadata.name,
                labels: o.metadata.labels,
                ..Default::default()
            },
            ..Default::default()
        },
        cluster_scoped_key::<Namespace>
    );
    // Gateway API: optional, like IngressRoute (the CRDs may not be installed).
    spawn_typed!(Gateway, "gateways", gateways, Change::Routing, true);
    spawn_typed!(HttpRoute, "httproutes", http_routes, Change::Routing, true);
    spawn_typed!(
        ReferenceGrant,
        "referencegrants",
        reference_grants,
        Change::Routing,
        true
    );
    spawn_typed!(
        GatewayClass,
        "gatewayclasses",
        gateway_classes,
        Change::Routing,
        true,
        |o: GatewayClass| o,
        cluster_scoped_key::<GatewayClass>
    );
    spawn_typed!(
        IngressClass,
        "ingressclasses",
        ingress_classes,
        Change::Routing,
        false,
        |o: IngressClass| o,
        cluster_scoped_key::<IngressClass>
    );
    match endpoint_slice_resource(&client).await {
        Some(resource) => {
            tracing::info!(version = %resource.api_version, "watching EndpointSlices");
            let spec = KindSpec {
                name: "endpointslices",
                change: Change::Endpoints,
                optional: false,
                map: |s: &mut Snapshot| &mut s.endpoint_slices,
                key: |o: &crate::store::EndpointSlice| crate::store::key(&o.metadata),
            };
            required.insert("endpointslices");
            supervisor.spawn(
                "endpointslices watcher",
                watch_kind(
                    Api::<DynamicObject>::all_with(client.clone(), &resource),
                    spec,
                    Arc::clone(&snapshot),
                    tx.clone(),
                    Arc::clone(&synced_tx),
                    |o: DynamicObject| {
                        serde_json::to_value(&o)
                            .and_then(serde_json::from_value)
                            .unwrap_or_default()
                    },
                ),
            );
        }
        None => tracing::info!("EndpointSlices not served; using Endpoints only"),
    }
    KubeSource {
        snapshot,
        changes,
        synced,
        required,
    }
}

/// The key of a cluster-scoped object: its name, with an empty namespace.
fn cluster_scoped_key<T: kube::Resource>(o: &T) -> crate::store::ObjectKey {
    crate::store::ObjectKey::new("", o.meta().name.clone().unwrap_or_default())
}

/// `discovery.k8s.io/v1` where served, `v1beta1` otherwise (Kubernetes 1.20), or none.
async fn endpoint_slice_resource(client: &Client) -> Option<ApiResource> {
    let discovery = match Discovery::new(client.clone())
        .filter(&["discovery.k8s.io"])
        .run()
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "API discovery failed; EndpointSlices not watched");
            return None;
        }
    };
    let group = discovery.get("discovery.k8s.io")?;
    for version in ["v1", "v1beta1"] {
        if let Some((resource, _)) = group
            .versioned_resources(version)
            .into_iter()
            .find(|(r, _)| r.kind == "EndpointSlice")
        {
            return Some(resource);
        }
    }
    None
}
