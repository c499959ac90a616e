//! ADS probe clients that behave like Envoy: CDS and LDS wildcard, then EDS for every EDS cluster's
//! service name and RDS for every route configuration the listeners name, everything ACKed. Each
//! counts the DiscoveryResponses it receives and their encoded size, and can watch for one resource
//! to reach a given content (the measured change).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::{route, route_action, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, HttpConnectionManager,
};
use isobar_harness::xds_client::{
    connect_ads, request, XdsClientTls, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use isobar_harness::xds_delta_client::{connect_delta_ads, delta_request};
use isobar_harness::{Error, Result};
use prost::Message;
use tokio::task::JoinHandle;

/// How long a probe waits for the next response before it gives up (it idles between changes).
const IDLE: Duration = Duration::from_secs(3600);

/// Which ADS flavour a probe (and the Envoys) speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// State of the world (`StreamAggregatedResources`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`).
    Delta,
}

impl Mode {
    /// `sotw` or `delta`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }
}

/// The content a change must give one resource.
#[derive(Debug, Clone)]
pub enum Target {
    /// Cluster `cluster`'s ClusterLoadAssignment lists `count` endpoints.
    Endpoints { cluster: String, count: usize },
    /// Route configuration `route_config` sends `host` to cluster `cluster`.
    Route {
        route_config: String,
        host: String,
        cluster: String,
    },
}

/// Messages and encoded bytes received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// DiscoveryResponses (or DeltaDiscoveryResponses).
    pub messages: u64,
    /// Their `encoded_len`.
    pub bytes: u64,
}

impl Traffic {
    fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
    }

    /// `self - before`.
    pub fn since(self, before: Traffic) -> Traffic {
        Traffic {
            messages: self.messages - before.messages,
            bytes: self.bytes - before.bytes,
        }
    }
}

/// What one probe holds and has received.
#[derive(Debug, Default)]
pub struct ProbeState {
    /// All responses.
    pub total: Traffic,
    /// Responses by resource type (`CDS`, `LDS`, `RDS`, `EDS`, ...).
    pub by_type: BTreeMap<&'static str, Traffic>,
    /// Clusters held, with the EDS service name of EDS clusters.
    clusters: BTreeMap<String, Option<String>>,
    /// Listeners held, with the route configurations they name.
    listeners: BTreeMap<String, BTreeSet<String>>,
    /// ClusterLoadAssignments held.
    endpoints: BTreeSet<String>,
    /// RouteConfigurations held.
    routes: BTreeSet<String>,
    target: Option<Target>,
    reached: bool,
    /// When the target was last found reached.
    reached_at: Option<Instant>,
    /// Why the probe stopped, if it did.
    pub failure: Option<String>,
}

impl ProbeState {
    fn wanted_eds(&self) -> BTreeSet<String> {
        self.clusters.values().flatten().cloned().collect()
    }

    fn wanted_rds(&self) -> BTreeSet<String> {
        self.listeners.values().flatten().cloned().collect()
    }

    /// Holds `clusters` clusters, a listener, and every ClusterLoadAssignment and
    /// RouteConfiguration those name.
    pub fn complete(&self, clusters: usize) -> bool {
        self.clusters.len() == clusters
            && !self.listeners.is_empty()
            && self.wanted_eds().is_subset(&self.endpoints)
            && self.wanted_rds().is_subset(&self.routes)
    }

    /// Whether the resource of the current target has the target's content.
    pub fn reached(&self) -> bool {
        self.reached
    }

    /// When the target was found reached (`None` while it is not).
    pub fn reached_at(&self) -> Option<Instant> {
        self.reached.then_some(self.reached_at).flatten()
    }

    fn set_reached(&mut self, reached: bool) {
        if reached && !self.reached {
            self.reached_at = Some(Instant::now());
        }
        self.reached = reached;
    }

    /// Watches for `target` from now on.
    pub fn set_target(&mut self, target: Target) {
        self.target = Some(target);
        self.reached = false;
        self.reached_at = None;
    }

    /// Takes in one resource; a state-of-the-world CDS/LDS response replaces the type's set first.
    fn apply(&mut self, type_url: &str, value: &[u8]) -> std::result::Result<(), String> {
        let bad = |what: &str, e: prost::DecodeError| format!("decoding a {what}: {e}");
        match type_url {
            CLUSTER_TYPE => {
                let c = Cluster::decode(value).map_err(|e| bad("Cluster", e))?;
                let eds = matches!(
                    c.cluster_discovery_type,
                    Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
                )
                .then(|| {
                    c.eds_cluster_config
                        .as_ref()
                        .map(|e| e.service_name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| c.name.clone())
                });
                self.clusters.insert(c.name, eds);
            }
            LISTENER_TYPE => {
                let l = Listener::decode(value).map_err(|e| bad("Listener", e))?;
                let rds = route_config_names(&l)?;
                self.listeners.insert(l.name, rds);
            }
            ENDPOINT_TYPE => {
                let cla = ClusterLoadAssignment::decode(value)
                    .map_err(|e| bad("ClusterLoadAssignment", e))?;
                if let Some(Target::Endpoints { cluster, count }) = &self.target {
                    if self.clusters.get(cluster).cloned().flatten().as_ref()
                        == Some(&cla.cluster_name)
                    {
                        let n: usize = cla.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
                        let reached = n == *count;
                        self.set_reached(reached);
                    }
                }
                self.endpoints.insert(cla.cluster_name);
            }
            ROUTE_TYPE => {
                let rc =
                    RouteConfiguration::decode(value).map_err(|e| bad("RouteConfiguration", e))?;
                if let Some(Target::Route {
                    route_config,
                    host,
                    cluster,
                }) = &self.target
                {
                    if *route_config == rc.name {
                        let reached = routes_host_to(&rc, host, cluster);
                        self.set_reached(reached);
                    }
                }
                self.routes.insert(rc.name);
            }
            _ => {}
        }
        Ok(())
    }

    fn remove(&mut self, type_url: &str, name: &str) {
        match type_url {
            CLUSTER_TYPE => drop(self.clusters.remove(name)),
            LISTENER_TYPE => drop(self.listeners.remove(name)),
            ENDPOINT_TYPE => drop(self.endpoints.remove(name)),
            ROUTE_TYPE => drop(self.routes.remove(name)),
            _ => {}
        }
    }

    /// The dependent type a response of `type_url` may change the names of, with those names.
    fn follow_up(&self, type_url: &str) -> Option<(&'static str, BTreeSet<String>)> {
        match type_url {
            CLUSTER_TYPE => Some((ENDPOINT_TYPE, self.wanted_eds())),
            LISTENER_TYPE => Some((ROUTE_TYPE, self.wanted_rds())),
            _ => None,
        }
    }
}

fn route_config_names(l: &Listener) -> std::result::Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    for chain in &l.filter_chains {
        for f in &chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            if !any.type_url.ends_with("HttpConnectionManager") {
                continue;
            }
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .map_err(|e| format!("decoding an HttpConnectionManager: {e}"))?;
            if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.insert(rds.route_config_name);
            }
        }
    }
    Ok(names)
}

fn routes_host_to(rc: &RouteConfiguration, host: &str, cluster: &str) -> bool {
    rc.virtual_hosts
        .iter()
        .filter(|v| v.domains.iter().any(|d| d == host))
        .flat_map(|v| &v.routes)
        .any(|r| {
            matches!(&r.action, Some(route::Action::Route(a))
                if matches!(&a.cluster_specifier, Some(route_action::ClusterSpecifier::Cluster(c)) if c == cluster))
        })
}

fn short(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER_TYPE => "CDS",
        LISTENER_TYPE => "LDS",
        ENDPOINT_TYPE => "EDS",
        ROUTE_TYPE => "RDS",
        _ => "other",
    }
}

/// A running probe; dropping it ends its stream.
pub struct Probe {
    state: Arc<Mutex<ProbeState>>,
    task: JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    /// Connects to `addr` and subscribes like Envoy, on a task of its own.
    pub fn start(mode: Mode, addr: SocketAddr, tls: XdsClientTls) -> Probe {
        let state = Arc::new(Mutex::new(ProbeState::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let result = match mode {
                Mode::Sotw => run_sotw(addr, tls, &shared).await,
                Mode::Delta => run_delta(addr, tls, &shared).await,
            };
            if let Err(e) = result {
                lock(&shared).failure = Some(e.to_string());
            }
        });
        Probe { state, task }
    }

    /// Its state, locked.
    pub fn state(&self) -> MutexGuard<'_, ProbeState> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<ProbeState>) -> MutexGuard<'_, ProbeState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run_sotw(addr: SocketAddr, tls: XdsClientTls, state: &Mutex<ProbeState>) -> Result<()> {
    let mut stream = connect_ads(addr, Some(tls)).await?;
    stream.subscribe(CLUSTER_TYPE, &[]).await?;
    stream.subscribe(LISTENER_TYPE, &[]).await?;
    // Per type: the last response's version and nonce, which a new subscription carries as Envoy's do.
    let mut last: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut subscribed: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    loop {
        let resp = stream.recv(IDLE).await?;
        let follow = {
            let mut s = lock(state);
            s.total.add(resp.encoded_len());
            s.by_type
                .entry(short(&resp.type_url))
                .or_default()
                .add(resp.encoded_len());
            // CDS and LDS responses are the whole set; EDS and RDS ones may carry a part of it.
            if resp.type_url == CLUSTER_TYPE {
                s.clusters.clear();
            } else if resp.type_url == LISTENER_TYPE {
                s.listeners.clear();
            }
            for any in &resp.resources {
                s.apply(&resp.type_url, &any.value).map_err(Error::Xds)?;
            }
            s.follow_up(&resp.type_url)
        };
        last.insert(
            resp.type_url.clone(),
            (resp.version_info.clone(), resp.nonce.clone()),
        );
        if let Some((type_url, names)) = follow {
            if subscribed.get(type_url) != Some(&names) && !names.is_empty() {
                let (version, nonce) = last.get(type_url).cloned().unwrap_or_default();
                let list: Vec<&str> = names.iter().map(String::as_str).collect();
                stream
                    .send(request(type_url, &list, &version, &nonce, None))
                    .await?;
                // What is no longer asked for is no longer held.
                let mut s = lock(state);
                for gone in subscribed
                    .get(type_url)
                    .map(|old| old.difference(&names).cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    s.remove(type_url, &gone);
                }
                drop(s);
                subscribed.insert(type_url, names);
            }
        }
        stream.ack(&resp).await?;
    }
}

async fn run_delta(addr: SocketAddr, tls: XdsClientTls, state: &Mutex<ProbeState>) -> Result<()> {
    let mut stream = connect_delta_ads(addr, Some(tls)).await?;
    stream.subscribe(CLUSTER_TYPE, &[]).await?;
    stream.subscribe(LISTENER_TYPE, &[]).await?;
    loop {
        let resp = stream.recv(IDLE).await?;
        let follow = {
            let mut s = lock(state);
            s.total.add(resp.encoded_len());
            s.by_type
                .entry(short(&resp.type_url))
                .or_default()
                .add(resp.encoded_len());
            for r in &resp.resources {
                match &r.resource {
                    Some(any) => s.apply(&resp.type_url, &any.value).map_err(Error::Xds)?,
                    None => s.remove(&resp.type_url, &r.name),
                }
            }
            for name in &resp.removed_resources {
                s.remove(&resp.type_url, name);
            }
            s.follow_up(&resp.type_url)
        };
        if let Some((type_url, names)) = follow {
            let held: BTreeSet<String> = stream.subscribed(type_url).into_iter().collect();
            let add: Vec<&str> = names.difference(&held).map(String::as_str).collect();
            let drop_names: Vec<&str> = held.difference(&names).map(String::as_str).collect();
            if !add.is_empty() || !drop_names.is_empty() {
                stream
                    .send(delta_request(type_url, &add, &drop_names, "", None, false))
                    .await?;
                let mut s = lock(state);
                for gone in &drop_names {
                    s.remove(type_url, gone);
                }
            }
        }
        stream.ack(&resp).await?;
    }
}
