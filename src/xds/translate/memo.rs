//! Translation remembered between builds: a virtual host, a secure virtual host's RouteConfiguration, a
//! cluster and a ClusterLoadAssignment are translated (and encoded) again only when their input
//! differs from last time. The plain-HTTP RouteConfiguration holds every virtual host; it is put
//! together from the virtual hosts' encodings (a repeated message field is the concatenation of its
//! elements' encodings), so one changed host re-encodes one host; so is each Gateway listener's.

use foldhash::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::ordmap::DiffItem;
use smallvec::SmallVec;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Message;

use super::listener::{https_listener_of, listeners_with, same_filter_chain, tls_filter_chain};
use super::secret::secret;
use super::{cluster, endpoint, route, ListenerConfig};
use crate::dag::{self, Dag};
use crate::parallel;
use crate::store::{diff_key, EndpointSlice, ObjectKey, Snapshot};
use crate::xds::cache::{CacheDiff, CacheSnapshot, Resource};
use crate::xds::type_url;

/// What [`translate_changes`] keeps between builds.
#[derive(Debug, Default)]
pub struct TranslationMemo {
    /// Whether anything was translated yet (`ingress_http` exists from the first translation on, with
    /// no virtual hosts if there are none).
    translated: bool,
    /// The addresses the listeners were last translated with.
    listener_config: Option<ListenerConfig>,
    /// TLS host → its filter chain's encoding in the TLS listener, in host order.
    tls_filter_chains: BTreeMap<String, Vec<u8>>,
    /// The DAG and the snapshot last translated: diffed with the next ones (their persistent maps
    /// share what is unchanged, so a diff visits only what differs).
    dag: Dag,
    snapshot: Snapshot,
    /// Host → its `VirtualHost` encoding in the plain-HTTP RouteConfiguration, in host order.
    http_hosts: BTreeMap<String, Vec<u8>>,
    /// Gateway listener → its hosts' `VirtualHost` encodings, in host order.
    gateway_hosts: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// EDS name → how many clusters read it, and one of them. Several only when they are the same
    /// Service port, so any of them gives the same addresses. A count and one cluster, not a list of
    /// names: at 10,000 clusters the lists held 2 MB.
    eds_users: HashMap<String, EdsUsers>,
    /// Service → the EDS names of its clusters, sorted (mostly one: kept inline).
    eds_by_service: HashMap<ObjectKey, SmallVec<[String; 1]>>,
    /// Service → its EndpointSlices, by slice.
    slices: HashMap<ObjectKey, BTreeMap<ObjectKey, Arc<EndpointSlice>>>,
    /// Translations computed (not reused) by the last call, for tests and benchmarks.
    pub recomputed: usize,
}

/// The clusters reading one EDS name: how many, and the last one added.
#[derive(Debug)]
struct EdsUsers {
    count: usize,
    cluster: Arc<dag::Cluster>,
}

/// Brings `encodings` (host → its `VirtualHost` encoding) up to date with the hosts a diff visits,
/// encoding the added and changed ones with `encode`. Returns whether any host changed and how many
/// were encoded.
fn encode_hosts<'a, V: Sync + 'a>(
    encodings: &mut BTreeMap<String, Vec<u8>>,
    hosts: impl Iterator<Item = DiffItem<'a, 'a, String, V>>,
    encode: impl Fn(&str, &V) -> Vec<u8> + Sync + Send,
) -> (bool, usize) {
    let hosts: Vec<_> = hosts.collect();
    let encoded_hosts = parallel::map(&hosts, |d| {
        after(d).map(|v| encode(diff_key::<String, V>(d), v))
    });
    let (changed, mut encoded) = (!hosts.is_empty(), 0);
    for (d, encoding) in hosts.into_iter().zip(encoded_hosts) {
        let host = diff_key(&d);
        match encoding {
            Some(e) => {
                encoded += 1;
                encodings.insert(host.clone(), e);
            }
            None => {
                encodings.remove(host);
            }
        }
    }
    (changed, encoded)
}

/// Adds `item` to a sorted list unless it is there.
fn insert_sorted(list: &mut SmallVec<[String; 1]>, item: &str) {
    if let Err(at) = list.binary_search_by(|x| x.as_str().cmp(item)) {
        list.insert(at, item.to_string());
    }
}

/// An entry a diff visits, as it is (`None`: removed).
fn after<'a, K, V>(d: &DiffItem<'a, 'a, K, V>) -> Option<&'a V> {
    match d {
        DiffItem::Add(_, new) | DiffItem::Update { new: (_, new), .. } => Some(new),
        DiffItem::Remove(..) => None,
    }
}

/// An entry a diff visits, as it was and as it is (`None`: absent).
fn before_after<'a, K, V>(d: DiffItem<'a, 'a, K, V>) -> (Option<&'a V>, Option<&'a V>) {
    match d {
        DiffItem::Add(_, new) => (None, Some(new)),
        DiffItem::Update {
            old: (_, old),
            new: (_, new),
        } => (Some(old), Some(new)),
        DiffItem::Remove(_, old) => (Some(old), None),
    }
}

/// What turns the cache (`current`, which holds what this memo translated last time) into the
/// translation of `dag`: [`super::translate`]'s resources, with only what changed translated, encoded
/// and hashed again. The listeners are translated only when what they hold changed, and the TLS
/// listener (a filter chain per TLS host) is put together from its filter chains' encodings, like
/// `ingress_http`: at 2,500 TLS hosts, translating and hashing it and every Secret again took 9 ms of
/// a one-Ingress change, and encoding it whole 7 ms of a new TLS host.
pub fn translate_changes(
    dag: &Dag,
    snapshot: &Snapshot,
    config: &ListenerConfig,
    memo: &mut TranslationMemo,
    current: &CacheSnapshot,
) -> CacheDiff {
    memo.recomputed = 0;
    let mut diff = CacheDiff::default();
    memo.listeners(dag, config, current, &mut diff);
    memo.secrets(dag, &mut diff);
    memo.routes(dag, &mut diff);
    let mut stale = BTreeSet::new();
    memo.clusters(dag, &mut diff, &mut stale);
    memo.load_assignments(snapshot, stale, &mut diff);
    memo.dag = dag.clone();
    diff
}

impl TranslationMemo {
    /// The listeners, if they differ from the last translation's: other addresses, a Gateway
    /// listener changed, or a TLS host came, went or changed its filter chain (its routes are not in
    /// the listener: only the filter chains that changed are encoded again).
    fn listeners(
        &mut self,
        dag: &Dag,
        config: &ListenerConfig,
        current: &CacheSnapshot,
        diff: &mut CacheDiff,
    ) {
        let mut changed = self.listener_config.as_ref() != Some(config)
            || self
                .dag
                .gateway_listeners
                .diff(&dag.gateway_listeners)
                .next()
                .is_some();
        for d in self
            .dag
            .secure_virtual_hosts
            .diff(&dag.secure_virtual_hosts)
        {
            match before_after(d) {
                (Some(old), Some(new)) if same_filter_chain(old, new) => {}
                (_, Some(new)) => {
                    self.recomputed += 1;
                    let chain = tls_filter_chain(new).encode_to_vec();
                    self.tls_filter_chains.insert(new.host.clone(), chain);
                    changed = true;
                }
                (Some(old), None) => {
                    self.tls_filter_chains.remove(&old.host);
                    changed = true;
                }
                (None, None) => {}
            }
        }
        if !changed {
            return;
        }
        let https = (!self.tls_filter_chains.is_empty())
            .then(|| https_listener_of(config, self.tls_filter_chains.values()));
        diff.replace(
            current,
            type_url::LISTENER,
            listeners_with(dag, config, https),
        );
        self.listener_config = Some(config.clone());
    }

    /// The certificates that came, changed or went.
    fn secrets(&mut self, dag: &Dag, diff: &mut CacheDiff) {
        for d in self.dag.secrets.diff(&dag.secrets) {
            let name = diff_key(&d).clone();
            match before_after(d) {
                (_, Some(s)) => {
                    self.recomputed += 1;
                    diff.upsert(type_url::SECRET, name, secret(s));
                }
                (Some(_), None) => diff.remove(type_url::SECRET, name),
                (None, None) => {}
            }
        }
    }

    fn routes(&mut self, dag: &Dag, diff: &mut CacheDiff) {
        let first = !self.translated;
        self.translated = true;
        let (changed, encoded) = encode_hosts(
            &mut self.http_hosts,
            self.dag.virtual_hosts.diff(&dag.virtual_hosts),
            |host, vhost| route::virtual_host(host, &vhost.routes, false).encode_to_vec(),
        );
        self.recomputed += encoded;
        if first || changed {
            diff.upsert(
                type_url::ROUTE,
                route::HTTP_ROUTE_CONFIG.to_string(),
                self.http_route_configuration(),
            );
        }
        // A TLS host with routes has a RouteConfiguration of its own; a TCP proxy has none.
        let routed = |v: &&dag::SecureVirtualHost| v.tcp_proxy.is_none();
        for d in self
            .dag
            .secure_virtual_hosts
            .diff(&dag.secure_virtual_hosts)
        {
            let (old, new) = before_after(d);
            match (old.filter(routed), new.filter(routed)) {
                (_, Some(vhost)) => {
                    self.recomputed += 1;
                    let name = route::https_route_config_name(&vhost.host);
                    let config = route::route_configuration(
                        &name,
                        vec![route::virtual_host(&vhost.host, &vhost.routes, true)],
                    );
                    diff.upsert(type_url::ROUTE, name, pack_any(config));
                }
                (Some(vhost), None) => {
                    diff.remove(type_url::ROUTE, route::https_route_config_name(&vhost.host));
                }
                (None, None) => {}
            }
        }
        // A Gateway listener's RouteConfiguration, like `ingress_http`, from its hosts' encodings:
        // only the hosts that changed are encoded again.
        for d in self.dag.gateway_listeners.diff(&dag.gateway_listeners) {
            match before_after(d) {
                (old, Some(l)) => {
                    let hosts = self.gateway_hosts.entry(l.name.clone()).or_default();
                    let none = imbl::OrdMap::new();
                    let (changed, encoded) = encode_hosts(
                        hosts,
                        old.map_or(&none, |o| &o.hosts).diff(&l.hosts),
                        |host, routes| super::gateway::virtual_host(host, routes).encode_to_vec(),
                    );
                    self.recomputed += encoded;
                    if old.is_none() || changed {
                        let config = route::route_configuration_of(&l.name, hosts.values());
                        diff.upsert(type_url::ROUTE, l.name.clone(), config);
                    }
                }
                (Some(l), None) => {
                    self.gateway_hosts.remove(&l.name);
                    diff.remove(type_url::ROUTE, l.name.clone());
                }
                (None, None) => {}
            }
        }
    }

    /// `ingress_http` from the virtual hosts' encodings, in host order.
    fn http_route_configuration(&self) -> Any {
        route::route_configuration_of(route::HTTP_ROUTE_CONFIG, self.http_hosts.values())
    }

    /// Clusters added, changed or gone since the last DAG; the EDS names whose users changed go to
    /// `stale`.
    fn clusters(&mut self, dag: &Dag, diff: &mut CacheDiff, stale: &mut BTreeSet<String>) {
        let last = self.dag.clusters.clone();
        let changed: Vec<_> = last.diff(&dag.clusters).collect();
        // Translated, encoded and hashed apart from each other (on the build threads for many).
        let resources = parallel::map(&changed, |d| {
            after(d).map(|c| {
                (
                    c,
                    Resource::new(c.name.clone(), pack_any(cluster::cluster(c))),
                )
            })
        });
        for (d, resource) in changed.into_iter().zip(resources) {
            let name = diff_key(&d);
            if let (Some(old), _) = before_after(d) {
                self.forget_user(old);
                stale.insert(old.eds_name.clone());
            }
            match resource {
                Some((c, resource)) => {
                    self.recomputed += 1;
                    diff.upsert_resource(type_url::CLUSTER, resource);
                    self.eds_users
                        .entry(c.eds_name.clone())
                        .and_modify(|users| {
                            users.count += 1;
                            users.cluster = Arc::clone(c);
                        })
                        .or_insert_with(|| EdsUsers {
                            count: 1,
                            cluster: Arc::clone(c),
                        });
                    insert_sorted(
                        self.eds_by_service.entry(c.service.clone()).or_default(),
                        &c.eds_name,
                    );
                    stale.insert(c.eds_name.clone());
                }
                None => diff.remove(type_url::CLUSTER, name.clone()),
            }
        }
    }

    fn forget_user(&mut self, c: &dag::Cluster) {
        if let Some(users) = self.eds_users.get_mut(&c.eds_name) {
            users.count -= 1;
            if users.count == 0 {
                self.eds_users.remove(&c.eds_name);
                if let Some(names) = self.eds_by_service.get_mut(&c.service) {
                    names.retain(|n| *n != c.eds_name);
                    if names.is_empty() {
                        self.eds_by_service.remove(&c.service);
                    }
                }
            }
        }
    }

    /// The ClusterLoadAssignments of the clusters translated (`eds_users`), computed again for the EDS
    /// names in `stale` and those whose Service's Endpoints or EndpointSlices changed since the last
    /// snapshot.
    fn load_assignments(
        &mut self,
        snapshot: &Snapshot,
        mut stale: BTreeSet<String>,
        diff: &mut CacheDiff,
    ) {
        let mut services: BTreeSet<ObjectKey> = self
            .snapshot
            .endpoints
            .diff(&snapshot.endpoints)
            .map(|d| diff_key(&d).clone())
            .collect();
        for d in self
            .snapshot
            .endpoint_slices
            .diff(&snapshot.endpoint_slices)
        {
            let key = diff_key(&d).clone();
            let (old, new) = before_after(d);
            // The slice's namespace is its Service's: shared, not copied.
            let service_of = |s: &EndpointSlice| {
                s.service_name().map(|name| ObjectKey {
                    namespace: Arc::clone(&key.namespace),
                    name: Arc::from(name),
                })
            };
            if let Some(service) = old.and_then(|s| service_of(s)) {
                if let Some(slices) = self.slices.get_mut(&service) {
                    slices.remove(&key);
                    if slices.is_empty() {
                        self.slices.remove(&service);
                    }
                }
                services.insert(service);
            }
            if let Some((service, slice)) = new.and_then(|s| Some((service_of(s)?, s))) {
                self.slices
                    .entry(service.clone())
                    .or_default()
                    .insert(key.clone(), Arc::clone(slice));
                services.insert(service);
            }
        }
        for service in services {
            stale.extend(
                self.eds_by_service
                    .get(&service)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        let stale: Vec<String> = stale.into_iter().collect();
        // Computed, encoded and hashed apart from each other (on the build threads for many).
        let assignments = parallel::map(&stale, |eds_name| {
            // Several clusters share an EDS name only if they are the same Service port: any of them
            // gives the same addresses.
            let c = &self.eds_users.get(eds_name)?.cluster;
            let slices: Vec<&EndpointSlice> = self
                .slices
                .get(&c.service)
                .map(|s| s.values().map(|s| &**s).collect())
                .unwrap_or_default();
            let endpoints = snapshot.endpoints.get(&c.service);
            let addresses = endpoint::addresses_of(&slices, endpoints.map(|e| e.as_ref()), c);
            Some(Resource::new(
                eds_name.clone(),
                pack_any(endpoint::load_assignment(eds_name, addresses)),
            ))
        });
        for (eds_name, assignment) in stale.into_iter().zip(assignments) {
            match assignment {
                Some(resource) => {
                    self.recomputed += 1;
                    diff.upsert_resource(type_url::ENDPOINT, resource);
                }
                None => diff.remove(type_url::ENDPOINT, eds_name),
            }
        }
        self.snapshot = snapshot.clone();
    }

    /// The ClusterLoadAssignments after an endpoints-only change (the DAG is the last one translated).
    pub fn endpoints(&mut self, snapshot: &Snapshot, diff: &mut CacheDiff) {
        self.load_assignments(snapshot, BTreeSet::new(), diff);
    }
}

#[cfg(test)]
#[path = "memo_tests.rs"]
mod tests;
