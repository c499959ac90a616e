//! What the DAG holds for Gateway API: one entry per Envoy listener serving Gateway listeners, with
//! its hosts and their routes in the order Envoy must try them. Plain values, no Kubernetes or
//! protobuf types: translation reads only these.

use std::sync::Arc;

use super::listener::Protocol;
use crate::dag::PathMatch;
use crate::store::ObjectKey;

/// An Envoy listener serving Gateway listeners (`http-8080`, `https-8443`). Its route configuration
/// has the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEnvoyListener {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    /// HTTPS only: the certificate per SNI name (`None`: any name), oldest listener first. The first
    /// also answers a name no listener has, so an unknown host gets a 404 over TLS, not a failed
    /// handshake.
    pub tls: Vec<TlsChain>,
    /// Host name (`*` for any, `*.example.com` for any name under it) → its routes, in order.
    /// Persistent, so a DAG copy shares it and a diff between builds visits only the hosts changed.
    pub hosts: imbl::OrdMap<String, Arc<Vec<GatewayRoute>>>,
}

/// One SNI name and the certificate served for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsChain {
    pub server_name: Option<String>,
    /// Name of an entry in [`crate::dag::Dag::secrets`].
    pub secret: String,
}

/// One match of one HTTPRoute rule, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    pub path: PathMatch,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub request_headers: HeaderChanges,
    pub action: GatewayAction,
    /// The HTTPRoute that asked for it.
    pub source: ObjectKey,
}

/// A header or query-parameter match: name, value, and whether the value is a regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
    pub regex: bool,
}

/// A RequestHeaderModifier: headers set (replacing), added (appended) and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderChanges {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// What a route does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayAction {
    /// Shares of the traffic by weight, never empty, weights above 0.
    Forward(Vec<Share>),
    Redirect(Redirect),
}

/// One share of a rule's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Name of an entry in [`crate::dag::Dag::clusters`]; `None`: the backend can't be used and
    /// this share is answered 500.
    pub cluster: Option<String>,
    pub weight: u32,
}

/// A RequestRedirect filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    /// 301 or 302.
    pub status_code: u16,
}

/// How a redirect changes the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    Full(String),
    /// Replaces the matched prefix.
    Prefix(String),
}
