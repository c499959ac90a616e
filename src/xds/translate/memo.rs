//! Translation remembered between builds: a virtual host, a secure virtual host's RouteConfiguration, a
//! cluster and a ClusterLoadAssignment are translated (and encoded) again only when their input
//! differs from last time. The plain-HTTP RouteConfiguration holds every virtual host; it is put
//! together from the virtual hosts' encodings (a repeated message field is the concatenation of its
//! elements' encodings), so one changed host re-encodes one host.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Message;

use super::{cluster, endpoint, listeners, route, secrets, ListenerConfig, Named, Resources};
use crate::dag::{self, Dag};
use crate::store::{EndpointSlice, ObjectKey, Snapshot};

/// The field number of `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS_FIELD: u32 = 2;

/// What [`translate_memoised`] keeps between builds.
#[derive(Debug, Default)]
pub struct TranslationMemo {
    /// Host → its routes and its `VirtualHost` encoding in the plain-HTTP RouteConfiguration.
    http_hosts: HashMap<String, (Vec<dag::Route>, Vec<u8>)>,
    secure_hosts: HashMap<String, (dag::SecureVirtualHost, Any)>,
    clusters: HashMap<String, (dag::Cluster, Any)>,
    /// EDS name → the Endpoints and EndpointSlices it was computed from (shared objects, compared by
    /// address), and the ClusterLoadAssignment.
    endpoints: HashMap<String, (EndpointInputs, Any)>,
    /// Translations computed (not reused) by the last call, for tests and benchmarks.
    pub recomputed: usize,
}

#[derive(Debug, Clone)]
struct EndpointInputs {
    cluster: dag::Cluster,
    endpoints: Option<Arc<k8s_openapi::api::core::v1::Endpoints>>,
    slices: Vec<Arc<EndpointSlice>>,
}

impl EndpointInputs {
    fn same(&self, other: &EndpointInputs) -> bool {
        fn same_ptr<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        self.cluster == other.cluster
            && same_ptr(&self.endpoints, &other.endpoints)
            && self.slices.len() == other.slices.len()
            && self
                .slices
                .iter()
                .zip(&other.slices)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// [`super::translate`], reusing what `memo` holds for inputs that did not change. The result is the
/// same as [`super::translate`]'s.
pub fn translate_memoised(
    dag: &Dag,
    snapshot: &Snapshot,
    config: &ListenerConfig,
    memo: &mut TranslationMemo,
) -> Resources {
    memo.recomputed = 0;
    Resources {
        listeners: listeners(dag, config),
        routes: memo.routes(dag),
        clusters: memo.clusters(dag),
        endpoints: memo.endpoints(dag, snapshot),
        secrets: secrets(dag),
    }
}

/// Takes `key`'s entry out of `previous` if `fresh` says it is still good, else computes a new one.
fn reuse<V>(
    previous: &mut HashMap<String, V>,
    key: &str,
    fresh: impl FnOnce(&V) -> bool,
    compute: impl FnOnce() -> V,
    recomputed: &mut usize,
) -> V {
    match previous.remove(key) {
        Some(v) if fresh(&v) => v,
        _ => {
            *recomputed += 1;
            compute()
        }
    }
}

impl TranslationMemo {
    fn routes(&mut self, dag: &Dag) -> Named {
        let mut previous = std::mem::take(&mut self.http_hosts);
        // prost writes fields in field-number order: the name (1), the virtual hosts (2), then the
        // rest; the pieces are written in that order so the bytes are the ones `encode` gives.
        let whole = route::route_configuration(route::HTTP_ROUTE_CONFIG, Vec::new());
        let mut http = RouteConfiguration {
            name: whole.name.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        for vhost in dag.virtual_hosts.values() {
            let entry = reuse(
                &mut previous,
                &vhost.host,
                |(routes, _)| *routes == vhost.routes,
                || {
                    let encoded =
                        route::virtual_host(dag, &vhost.host, &vhost.routes, false).encode_to_vec();
                    (vhost.routes.clone(), encoded)
                },
                &mut self.recomputed,
            );
            prost::encoding::encode_key(
                VIRTUAL_HOSTS_FIELD,
                prost::encoding::WireType::LengthDelimited,
                &mut http,
            );
            prost::encoding::encode_varint(entry.1.len() as u64, &mut http);
            http.extend_from_slice(&entry.1);
            self.http_hosts.insert(vhost.host.clone(), entry);
        }
        http.extend(
            RouteConfiguration {
                name: String::new(),
                ..whole
            }
            .encode_to_vec(),
        );
        let mut out = vec![(
            route::HTTP_ROUTE_CONFIG.to_string(),
            Any {
                type_url: crate::xds::type_url::ROUTE.to_string(),
                value: http,
            },
        )];
        let mut previous = std::mem::take(&mut self.secure_hosts);
        for vhost in dag
            .secure_virtual_hosts
            .values()
            .filter(|v| v.tcp_proxy.is_none())
        {
            let entry = reuse(
                &mut previous,
                &vhost.host,
                |(v, _)| v == vhost,
                || {
                    let name = route::https_route_config_name(&vhost.host);
                    let config = route::route_configuration(
                        &name,
                        vec![route::virtual_host(dag, &vhost.host, &vhost.routes, true)],
                    );
                    (vhost.clone(), pack_any(config))
                },
                &mut self.recomputed,
            );
            out.push((route::https_route_config_name(&vhost.host), entry.1.clone()));
            self.secure_hosts.insert(vhost.host.clone(), entry);
        }
        out
    }

    fn clusters(&mut self, dag: &Dag) -> Named {
        let mut previous = std::mem::take(&mut self.clusters);
        let mut out = Vec::with_capacity(dag.clusters.len());
        for c in dag.clusters.values() {
            let entry = reuse(
                &mut previous,
                &c.name,
                |(old, _)| old == c,
                || (c.clone(), pack_any(cluster::cluster(c))),
                &mut self.recomputed,
            );
            out.push((c.name.clone(), entry.1.clone()));
            self.clusters.insert(c.name.clone(), entry);
        }
        out
    }

    /// The ClusterLoadAssignments of `dag`'s clusters, recomputed only for clusters whose Service's
    /// Endpoints or EndpointSlices changed.
    pub fn endpoints(&mut self, dag: &Dag, snapshot: &Snapshot) -> Named {
        // EndpointSlices by Service, once, instead of a scan of the namespace per cluster.
        let mut slices: HashMap<ObjectKey, Vec<Arc<EndpointSlice>>> = HashMap::new();
        for (key, slice) in &snapshot.endpoint_slices {
            if let Some(service) = slice.service_name() {
                slices
                    .entry(ObjectKey::new(&key.namespace, service))
                    .or_default()
                    .push(Arc::clone(slice));
            }
        }
        let mut previous = std::mem::take(&mut self.endpoints);
        let mut out: Named = Vec::with_capacity(dag.clusters.len());
        for c in dag.clusters.values() {
            if self.endpoints.contains_key(&c.eds_name) {
                // Several clusters share an EDS name only if they are the same Service port.
                continue;
            }
            let inputs = EndpointInputs {
                cluster: c.clone(),
                endpoints: snapshot.endpoints.get(&c.service).cloned(),
                slices: slices.get(&c.service).cloned().unwrap_or_default(),
            };
            let entry = reuse(
                &mut previous,
                &c.eds_name,
                |(old, _)| old.same(&inputs),
                || {
                    let addresses =
                        endpoint::addresses_of(&inputs.slices, inputs.endpoints.as_deref(), c);
                    let any = pack_any(endpoint::load_assignment(&c.eds_name, addresses));
                    (inputs.clone(), any)
                },
                &mut self.recomputed,
            );
            out.push((c.eds_name.clone(), entry.1.clone()));
            self.endpoints.insert(c.eds_name.clone(), entry);
        }
        out
    }
}
