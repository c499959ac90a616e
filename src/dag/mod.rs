//! The DAG: what Envoy should do, derived from a [`Snapshot`] by a pure, deterministic function.
//!
//! No I/O, no clocks, no globals. Every rule of Ingress semantics lives here; an invalid object gets a
//! status with a reason and contributes nothing, so it never disturbs other objects.

mod annotations;
mod assembly;
mod backend;
mod build;
mod class;
mod cluster_name;
mod delegation;
mod dot;
pub mod gateway;
mod gateway_memo;
mod host_routes;
mod ingress;
mod ingressroute;
mod memo;
mod names;
pub mod reads;
mod route_components;
mod route_table;
mod secret;
mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

pub use annotations::parse_duration;
pub use build::{build, build_counting_work};
pub use class::DEFAULT_INGRESS_CLASS;
pub use dot::dot;
pub use memo::{build_memoised, Memo};
pub use status::{status_map, ObjectKind, ObjectStatus, StatusMap, Validity};

use crate::store::ObjectKey;

/// Settings that change how objects are interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagOptions {
    /// Objects whose class is set and differs from this are ignored.
    pub ingress_class_name: String,
    /// Namespaces where root IngressRoutes may be defined; empty means all.
    pub root_namespaces: Vec<String>,
    pub limits: DagLimits,
    /// Which Gateway API objects are isobar's and where their listeners are served.
    pub gateway: gateway::status::GatewayOptions,
}

impl Default for DagOptions {
    fn default() -> Self {
        DagOptions {
            ingress_class_name: DEFAULT_INGRESS_CLASS.to_string(),
            root_namespaces: Vec::new(),
            limits: DagLimits::default(),
            gateway: gateway::status::GatewayOptions::default(),
        }
    }
}

#[cfg(test)]
impl DagOptions {
    /// The default options with at most `n` routes per virtual host.
    pub(crate) fn with_route_limit(n: usize) -> Self {
        DagOptions {
            limits: DagLimits {
                max_routes_per_virtual_host: n,
                ..DagLimits::default()
            },
            ..DagOptions::default()
        }
    }
}

/// Bounds on what one object can make isobar (and Envoy) do. An object that would exceed one gets an
/// `invalid` status naming the limit; nothing else is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagLimits {
    /// IngressRoutes in one delegation chain, the root included (`--max-delegation-depth`).
    pub max_delegation_depth: usize,
    /// Routes on one virtual host, from all the objects that add to it (`--max-routes-per-virtual-host`).
    pub max_routes_per_virtual_host: usize,
}

impl DagLimits {
    /// Contour has no such limits; these are far above what real configurations use (delegation is
    /// rarely more than a few levels deep) and low enough that one host can't dominate a rebuild.
    pub const DEFAULT_MAX_DELEGATION_DEPTH: usize = 32;
    pub const DEFAULT_MAX_ROUTES_PER_VIRTUAL_HOST: usize = 10_000;
}

impl Default for DagLimits {
    fn default() -> Self {
        DagLimits {
            max_delegation_depth: Self::DEFAULT_MAX_DELEGATION_DEPTH,
            max_routes_per_virtual_host: Self::DEFAULT_MAX_ROUTES_PER_VIRTUAL_HOST,
        }
    }
}

/// The routing model. Its maps are persistent (imbl): a copy is O(1), an incremental build changes the
/// entries of the hosts it touched in place, and [`imbl::OrdMap::diff`] between two builds' DAGs visits
/// only what differs (the translation's input).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dag {
    /// Virtual hosts served over plain HTTP, by host name (`*` is the catch-all).
    pub virtual_hosts: imbl::OrdMap<String, VirtualHost>,
    /// Virtual hosts served over HTTPS (SNI), by host name.
    pub secure_virtual_hosts: imbl::OrdMap<String, SecureVirtualHost>,
    /// Upstream clusters the routes point at, by cluster name.
    pub clusters: imbl::OrdMap<String, Arc<Cluster>>,
    /// Certificates the secure virtual hosts and the Gateway HTTPS listeners serve, by secret name.
    pub secrets: imbl::OrdMap<String, TlsSecret>,
    /// Envoy listeners serving Gateway API listeners, by name (`http-8081`); each has a route
    /// configuration of the same name.
    pub gateway_listeners: imbl::OrdMap<String, gateway::model::GatewayEnvoyListener>,
}

impl Dag {
    /// Adds what Gateway API objects program to a DAG of Ingresses and IngressRoutes. A cluster or a
    /// certificate both use is the same content under the same name.
    pub(crate) fn add_gateway_program(&mut self, program: &gateway::program::GatewayProgram) {
        for (name, c) in &program.clusters {
            self.clusters.insert(name.clone(), Arc::clone(c));
        }
        for (name, s) in &program.secrets {
            self.secrets.insert(name.clone(), s.clone());
        }
        for (name, l) in &program.listeners {
            self.gateway_listeners.insert(name.clone(), l.clone());
        }
    }
}

/// A host and its routes, most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    pub host: String,
    /// Shared with the contribution that made each route (most are served unchanged).
    pub routes: Vec<Arc<Route>>,
}

/// A virtual host served over TLS (SNI): HTTP routes with the certificate in `secret`, or a TCP proxy
/// (TLS terminated with `secret`, or passed through to the backend when `secret` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureVirtualHost {
    pub host: String,
    /// Name of an entry in [`Dag::secrets`]; `None` only for TLS passthrough.
    pub secret: Option<String>,
    pub min_tls_version: TlsVersion,
    pub routes: Vec<Arc<Route>>,
    pub tcp_proxy: Option<Vec<WeightedCluster>>,
}

/// A path match and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: PathMatch,
    /// Where requests go: one cluster, or several sharing the traffic by weight.
    pub clusters: Vec<WeightedCluster>,
    /// The object that asked for this route.
    pub source: ObjectKey,
    pub websocket: bool,
    /// Replaces the matched prefix before the request goes upstream.
    pub prefix_rewrite: Option<String>,
    pub timeout: Option<Timeout>,
    pub retry: Option<RetryPolicy>,
    /// What plain HTTP gets on a host that also has TLS.
    pub insecure: Insecure,
}

impl Route {
    /// A route with no options.
    pub fn new(path: PathMatch, clusters: Vec<WeightedCluster>, source: ObjectKey) -> Self {
        Route {
            path,
            clusters,
            source,
            websocket: false,
            prefix_rewrite: None,
            timeout: None,
            retry: None,
            insecure: Insecure::Serve,
        }
    }
}

/// How a route of a TLS host answers plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insecure {
    /// Served on HTTP too.
    Serve,
    /// `301` to the same URL over HTTPS.
    Redirect,
    /// Not on the HTTP listener at all.
    Refuse,
}

/// A request timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    After(Duration),
    Infinite,
}

/// Retries of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Envoy retry conditions, comma-separated.
    pub retry_on: String,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
}

/// A minimum TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    V1_1,
    /// isobar's default (Contour v0.14 defaulted to 1.1).
    #[default]
    V1_2,
    V1_3,
}

/// A cluster and its share of a route's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    /// Name of an entry in [`Dag::clusters`].
    pub name: String,
    pub weight: u32,
    /// The cluster balances on Contour's session-affinity cookie (an IngressRoute service's
    /// `strategy: Cookie`), so the route hashes on that cookie. Carried here, from the cluster, so
    /// a host's translation reads only its own routes: looking each route's cluster up among the
    /// DAG's was a third of the routes' translation at 10,000 Ingresses.
    pub session_affinity: bool,
}

impl WeightedCluster {
    /// `cluster` with `weight`.
    pub fn of(cluster: &Cluster, weight: u32) -> Self {
        WeightedCluster {
            name: cluster.name.clone(),
            weight,
            session_affinity: cluster.settings.lb_policy == LbPolicy::Cookie,
        }
    }
}

/// How a request path is matched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathMatch {
    /// The whole path, case-sensitive (Ingress `Exact`).
    Exact(String),
    /// Whole path elements (Ingress `Prefix`): `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
    /// Stored without a trailing slash, except for `/` itself.
    SegmentPrefix(String),
    /// A plain string prefix (Ingress `ImplementationSpecific`, as Contour treats it).
    StringPrefix(String),
}

impl PathMatch {
    /// The path text.
    pub fn path(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::SegmentPrefix(p) | PathMatch::StringPrefix(p) => p,
        }
    }

    /// The other spelling of the same match, if it has one: a prefix of `/` matches every path,
    /// whether by segments or as a string, so two objects asking for either conflict.
    pub fn equivalent(&self) -> Option<PathMatch> {
        match self {
            PathMatch::SegmentPrefix(p) if p == "/" => Some(PathMatch::StringPrefix(p.clone())),
            PathMatch::StringPrefix(p) if p == "/" => Some(PathMatch::SegmentPrefix(p.clone())),
            _ => None,
        }
    }

    /// Route order: exact matches first, then longer prefixes before shorter ones, so Envoy's
    /// first-match picks the most specific route.
    pub fn precedence(&self) -> (u8, std::cmp::Reverse<usize>, &str, u8) {
        match self {
            PathMatch::Exact(p) => (0, std::cmp::Reverse(p.len()), p, 0),
            PathMatch::SegmentPrefix(p) => (1, std::cmp::Reverse(p.len()), p, 0),
            PathMatch::StringPrefix(p) => (1, std::cmp::Reverse(p.len()), p, 1),
        }
    }
}

/// An upstream: one port of one Service, with how to talk to it. Two routes that use the same Service
/// port with different settings get two clusters (the name carries a hash of the settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub service: ObjectKey,
    /// The Service port's name, if it has one (Endpoints ports are matched by it).
    pub port_name: Option<String>,
    pub port: i32,
    /// The name Envoy asks EDS for.
    pub eds_name: String,
    pub settings: UpstreamSettings,
}

/// How Envoy talks to an upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamSettings {
    pub protocol: UpstreamProtocol,
    pub lb_policy: LbPolicy,
    pub health_check: Option<HealthCheck>,
    /// Verify the upstream's certificate against this CA and subject name (implies TLS).
    pub validation: Option<UpstreamValidation>,
    pub limits: Limits,
}

/// The protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/2 in cleartext.
    H2c,
    /// HTTP/1.1 over TLS.
    Tls,
}

/// Load balancing between an upstream's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    WeightedLeastRequest,
    Random,
    /// Session affinity by a cookie (ring hash).
    Cookie,
}

/// An active HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub path: String,
    pub host: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

/// Verification of an upstream's certificate.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpstreamValidation {
    pub ca_pem: Vec<u8>,
    pub subject_name: String,
}

impl std::fmt::Debug for UpstreamValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamValidation")
            .field("subject_name", &self.subject_name)
            .finish_non_exhaustive()
    }
}

/// Circuit breakers (Service annotations `max-connections` and friends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

/// A certificate and key from a `kubernetes.io/tls` Secret, already checked to parse.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSecret {
    pub name: String,
    pub cert_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for TlsSecret {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSecret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod memo_proptests;

#[cfg(test)]
mod gateway_world;

#[cfg(test)]
mod ingressroute_tests;

#[cfg(test)]
mod bounded_tests;
