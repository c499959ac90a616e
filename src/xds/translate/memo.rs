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

use super::{cluster, endpoint, listeners, route, secrets, ListenerConfig};
use crate::dag::{self, Dag};
use crate::store::{EndpointSlice, ObjectKey, Snapshot};
use crate::xds::cache::{CacheDiff, CacheSnapshot};
use crate::xds::type_url;

/// The field number of `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS_FIELD: u32 = 2;

/// What [`translate_changes`] keeps between builds.
#[derive(Debug, Default)]
pub struct TranslationMemo {
    /// Whether anything was translated yet (`ingress_http` exists from the first translation on, with
    /// no virtual hosts if there are none).
    translated: bool,
    /// Host → its routes and its `VirtualHost` encoding in the plain-HTTP RouteConfiguration.
    http_hosts: HashMap<String, (Vec<dag::Route>, Vec<u8>)>,
    /// What the cache holds translated, by what it was translated from.
    secure_hosts: HashMap<String, dag::SecureVirtualHost>,
    clusters: HashMap<String, dag::Cluster>,
    /// EDS name → the cluster, Endpoints and EndpointSlices its ClusterLoadAssignment was computed
    /// from (shared objects, compared by address).
    endpoints: HashMap<String, EndpointInputs>,
    /// Translations computed (not reused) by the last call, for tests and benchmarks.
    pub recomputed: usize,
}

#[derive(Debug)]
struct EndpointInputs {
    cluster: dag::Cluster,
    endpoints: Option<Arc<k8s_openapi::api::core::v1::Endpoints>>,
    slices: Vec<Arc<EndpointSlice>>,
}

impl EndpointInputs {
    fn same(
        &self,
        cluster: &dag::Cluster,
        endpoints: Option<&Arc<k8s_openapi::api::core::v1::Endpoints>>,
        slices: &[&Arc<EndpointSlice>],
    ) -> bool {
        let same_endpoints = match (&self.endpoints, endpoints) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_endpoints
            && self.slices.len() == slices.len()
            && self
                .slices
                .iter()
                .zip(slices)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && self.cluster == *cluster
    }
}

/// What turns the cache (`current`, which holds what this memo translated last time) into the
/// translation of `dag`: [`super::translate`]'s resources, with only what changed translated, encoded
/// and hashed again. Listeners and secrets (a few, or one per TLS host) are translated whole and
/// diffed against `current`.
pub fn translate_changes(
    dag: &Dag,
    snapshot: &Snapshot,
    config: &ListenerConfig,
    memo: &mut TranslationMemo,
    current: &CacheSnapshot,
) -> CacheDiff {
    memo.recomputed = 0;
    let mut diff = CacheDiff::default();
    diff.replace(current, type_url::LISTENER, listeners(dag, config));
    diff.replace(current, type_url::SECRET, secrets(dag));
    memo.routes(dag, &mut diff);
    memo.clusters(dag, &mut diff);
    memo.endpoints(dag, snapshot, &mut diff);
    diff
}

impl TranslationMemo {
    fn routes(&mut self, dag: &Dag, diff: &mut CacheDiff) {
        let mut previous = std::mem::take(&mut self.http_hosts);
        let first = !self.translated;
        self.translated = true;
        let mut http_changed = first;
        for vhost in dag.virtual_hosts.values() {
            let entry = previous
                .remove(&vhost.host)
                .filter(|(routes, _)| *routes == vhost.routes)
                .unwrap_or_else(|| {
                    self.recomputed += 1;
                    http_changed = true;
                    let encoded =
                        route::virtual_host(dag, &vhost.host, &vhost.routes, false).encode_to_vec();
                    (vhost.routes.clone(), encoded)
                });
            self.http_hosts.insert(vhost.host.clone(), entry);
        }
        http_changed |= !previous.is_empty();
        if http_changed {
            diff.upsert(
                type_url::ROUTE,
                route::HTTP_ROUTE_CONFIG.to_string(),
                self.http_route_configuration(dag),
            );
        }
        let mut previous = std::mem::take(&mut self.secure_hosts);
        for vhost in dag
            .secure_virtual_hosts
            .values()
            .filter(|v| v.tcp_proxy.is_none())
        {
            let name = route::https_route_config_name(&vhost.host);
            let entry = previous
                .remove(&vhost.host)
                .filter(|v| v == vhost)
                .unwrap_or_else(|| {
                    self.recomputed += 1;
                    let config = route::route_configuration(
                        &name,
                        vec![route::virtual_host(dag, &vhost.host, &vhost.routes, true)],
                    );
                    diff.upsert(type_url::ROUTE, name.clone(), pack_any(config));
                    vhost.clone()
                });
            self.secure_hosts.insert(vhost.host.clone(), entry);
        }
        for host in previous.into_keys() {
            diff.remove(type_url::ROUTE, route::https_route_config_name(&host));
        }
    }

    /// `ingress_http` from the virtual hosts' encodings, in host order.
    fn http_route_configuration(&self, dag: &Dag) -> Any {
        // prost writes fields in field-number order: the name (1), the virtual hosts (2), then the
        // rest; the pieces are written in that order so the bytes are the ones `encode` gives.
        let whole = route::route_configuration(route::HTTP_ROUTE_CONFIG, Vec::new());
        let mut http = RouteConfiguration {
            name: whole.name.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        for host in dag.virtual_hosts.keys() {
            let Some((_, encoded)) = self.http_hosts.get(host) else {
                continue;
            };
            prost::encoding::encode_key(
                VIRTUAL_HOSTS_FIELD,
                prost::encoding::WireType::LengthDelimited,
                &mut http,
            );
            prost::encoding::encode_varint(encoded.len() as u64, &mut http);
            http.extend_from_slice(encoded);
        }
        http.extend(
            RouteConfiguration {
                name: String::new(),
                ..whole
            }
            .encode_to_vec(),
        );
        Any {
            type_url: type_url::ROUTE.to_string(),
            value: http,
        }
    }

    fn clusters(&mut self, dag: &Dag, diff: &mut CacheDiff) {
        let mut previous = std::mem::take(&mut self.clusters);
        for c in dag.clusters.values() {
            let entry = previous
                .remove(&c.name)
                .filter(|old| old == c)
                .unwrap_or_else(|| {
                    self.recomputed += 1;
                    diff.upsert(
                        type_url::CLUSTER,
                        c.name.clone(),
                        pack_any(cluster::cluster(c)),
                    );
                    c.clone()
                });
            self.clusters.insert(c.name.clone(), entry);
        }
        for name in previous.into_keys() {
            diff.remove(type_url::CLUSTER, name);
        }
    }

    /// The ClusterLoadAssignments of `dag`'s clusters, recomputed only for clusters whose Service's
    /// Endpoints or EndpointSlices changed.
    pub fn endpoints(&mut self, dag: &Dag, snapshot: &Snapshot, diff: &mut CacheDiff) {
        // EndpointSlices by Service, once, instead of a scan of the namespace per cluster.
        let mut slices: HashMap<ObjectKey, Vec<&Arc<EndpointSlice>>> = HashMap::new();
        for (key, slice) in &snapshot.endpoint_slices {
            if let Some(service) = slice.service_name() {
                slices
                    .entry(ObjectKey::new(&key.namespace, service))
                    .or_default()
                    .push(slice);
            }
        }
        let mut previous = std::mem::take(&mut self.endpoints);
        for c in dag.clusters.values() {
            if self.endpoints.contains_key(&c.eds_name) {
                // Several clusters share an EDS name only if they are the same Service port.
                continue;
            }
            let endpoints = snapshot.endpoints.get(&c.service);
            let service_slices = slices.get(&c.service).map(Vec::as_slice).unwrap_or(&[]);
            let entry = previous
                .remove(&c.eds_name)
                .filter(|old| old.same(c, endpoints, service_slices))
                .unwrap_or_else(|| {
                    self.recomputed += 1;
                    let inputs = EndpointInputs {
                        cluster: c.clone(),
                        endpoints: endpoints.cloned(),
                        slices: service_slices.iter().map(|s| Arc::clone(s)).collect(),
                    };
                    let addresses =
                        endpoint::addresses_of(&inputs.slices, inputs.endpoints.as_deref(), c);
                    diff.upsert(
                        type_url::ENDPOINT,
                        c.eds_name.clone(),
                        pack_any(endpoint::load_assignment(&c.eds_name, addresses)),
                    );
                    inputs
                });
            self.endpoints.insert(c.eds_name.clone(), entry);
        }
        for name in previous.into_keys() {
            diff.remove(type_url::ENDPOINT, name);
        }
    }
}
