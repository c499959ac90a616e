//! RouteConfigurations: `ingress_http` for the HTTP listener, one per secure virtual host, and one per
//! Gateway API listener.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, redirect_action, route::Action, route_action,
    route_action::ClusterSpecifier, route_match::PathSpecifier, weighted_cluster, HeaderMatcher,
    RedirectAction, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use envoy_types::util::pack_any;
use prost::Message;

use super::Named;
use crate::dag::{self, Dag, Insecure, PathMatch, Timeout};
use crate::xds::type_url;

/// The field number of `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS_FIELD: u32 = 2;

/// The route configuration the HTTP listener uses.
pub const HTTP_ROUTE_CONFIG: &str = "ingress_http";

/// The route configuration name for the secure virtual host `host`.
pub fn https_route_config_name(host: &str) -> String {
    format!("https/{host}")
}

/// All route configurations.
pub fn routes(dag: &Dag) -> Named {
    // Each host encoded on its own: the whole configuration's messages are never held at once.
    let hosts: Vec<Vec<u8>> = dag
        .virtual_hosts
        .values()
        .map(|v| virtual_host(&v.host, &v.routes, false).encode_to_vec())
        .collect();
    let http = route_configuration_of(HTTP_ROUTE_CONFIG, hosts.iter());
    let mut out = vec![(HTTP_ROUTE_CONFIG.to_string(), http)];
    for vhost in dag
        .secure_virtual_hosts
        .values()
        .filter(|v| v.tcp_proxy.is_none())
    {
        let name = https_route_config_name(&vhost.host);
        let config =
            route_configuration(&name, vec![virtual_host(&vhost.host, &vhost.routes, true)]);
        out.push((name, pack_any(config)));
    }
    for l in dag.gateway_listeners.values() {
        out.push((l.name.clone(), pack_any(super::gateway::route_config(l))));
    }
    out
}

/// The RouteConfiguration `name` from its virtual hosts' encodings, in order: the bytes `encode`
/// gives for the whole message (a repeated message field is the concatenation of its elements).
pub(super) fn route_configuration_of<'a>(
    name: &str,
    virtual_hosts: impl Iterator<Item = &'a Vec<u8>> + Clone,
) -> Any {
    // prost writes fields in field-number order: the name (1), the virtual hosts (2), then the
    // rest; the pieces are written in that order.
    let whole = route_configuration(name, Vec::new());
    let mut out = RouteConfiguration {
        name: whole.name.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    super::encoded::append_repeated(VIRTUAL_HOSTS_FIELD, virtual_hosts, &mut out);
    out.extend(
        RouteConfiguration {
            name: String::new(),
            ..whole
        }
        .encode_to_vec(),
    );
    Any {
        type_url: type_url::ROUTE.to_string(),
        value: out,
    }
}

pub(super) fn route_configuration(
    name: &str,
    virtual_hosts: Vec<VirtualHost>,
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        // `Host: example.com:18080` matches the virtual host `example.com`, on any listener port,
        // without rewriting the Host header the backend sees.
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

pub(super) fn virtual_host(host: &str, routes: &[Arc<dag::Route>], secure: bool) -> VirtualHost {
    let authority = wildcard_authority_matcher(host);
    let mut envoy_routes = Vec::with_capacity(routes.len());
    for r in routes {
        if let Some(boundary) = rewrite_boundary(r) {
            envoy_routes.push(route(r, &boundary, authority.clone(), secure));
        }
        envoy_routes.push(route(r, &r.path, authority.clone(), secure));
    }
    VirtualHost {
        name: host.to_string(),
        domains: vec![host.to_string()],
        routes: envoy_routes,
        ..Default::default()
    }
}

/// Envoy's prefix rewrite replaces the matched text literally: `match: /api` with `prefixRewrite: /`
/// turns `/api/v1` into `//v1`. A route for `/api/` (rewritten to `/`) ahead of the one for `/api`
/// makes the backend see `/v1`, and `/api` itself still becomes `/`. This is that route's path.
fn rewrite_boundary(r: &dag::Route) -> Option<PathMatch> {
    match (&r.path, r.prefix_rewrite.as_deref()) {
        (PathMatch::StringPrefix(p), Some(rewrite))
            if rewrite.ends_with('/') && !p.ends_with('/') =>
        {
            Some(PathMatch::StringPrefix(format!("{p}/")))
        }
        _ => None,
    }
}

/// Envoy's `*.foo.com` domain also matches `a.b.foo.com`; Kubernetes' wildcard covers exactly one
/// label, so wildcard hosts' routes also require the authority to be one label deep.
fn wildcard_authority_matcher(host: &str) -> Option<HeaderMatcher> {
    let suffix = host.strip_prefix("*.")?;
    Some(HeaderMatcher {
        name: ":authority".to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
                // Host names are case-insensitive; Envoy refuses `ignore_case` with a regex, so the
                // regex says it itself.
                regex: format!("(?i)^[^.:]+\\.{}(:[0-9]+)?$", suffix.replace('.', "\\.")),
                ..Default::default()
            })),
            ignore_case: false,
        })),
        ..Default::default()
    })
}

/// One cluster, or traffic split by weight.
fn cluster_specifier(clusters: &[dag::WeightedCluster]) -> ClusterSpecifier {
    match clusters {
        [one] => ClusterSpecifier::Cluster(one.name.clone()),
        many => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|c| weighted_cluster::ClusterWeight {
                    name: c.name.clone(),
                    weight: Some(UInt32Value { value: c.weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

/// The cookie that pins a client to an endpoint of a `Cookie`-strategy upstream (Contour's name).
const AFFINITY_COOKIE: &str = "X-Contour-Session-Affinity";

/// The Envoy route for `r`, matching `path` (its own, or its rewrite boundary's).
fn route(
    r: &dag::Route,
    path: &PathMatch,
    authority: Option<HeaderMatcher>,
    secure: bool,
) -> Route {
    let path_specifier = match path {
        PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        // `path_separated_prefix` can't be "/"; a plain "/" prefix matches the same requests.
        PathMatch::SegmentPrefix(p) if p == "/" => PathSpecifier::Prefix(p.clone()),
        PathMatch::SegmentPrefix(p) => PathSpecifier::PathSeparatedPrefix(p.clone()),
        PathMatch::StringPrefix(p) => PathSpecifier::Prefix(p.clone()),
    };
    let action = if !secure && r.insecure == Insecure::Redirect {
        Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
                true,
            )),
            response_code: redirect_action::RedirectResponseCode::MovedPermanently as i32,
            ..Default::default()
        })
    } else {
        Action::Route(route_action(r))
    };
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier),
            headers: authority.into_iter().collect(),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

fn route_action(r: &dag::Route) -> RouteAction {
    let affinity = r.clusters.iter().any(|c| c.session_affinity);
    RouteAction {
        cluster_specifier: Some(cluster_specifier(&r.clusters)),
        upgrade_configs: if r.websocket {
            vec![route_action::UpgradeConfig {
                upgrade_type: "websocket".to_string(),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        prefix_rewrite: r.prefix_rewrite.clone().unwrap_or_default(),
        timeout: r.timeout.map(|t| match t {
            // Zero disables Envoy's route timeout.
            Timeout::Infinite => duration(std::time::Duration::ZERO),
            Timeout::After(d) => duration(d),
        }),
        retry_policy: r.retry.as_ref().map(|p| RetryPolicy {
            retry_on: p.retry_on.clone(),
            num_retries: Some(UInt32Value {
                value: p.num_retries,
            }),
            per_try_timeout: p.per_try_timeout.map(duration),
            ..Default::default()
        }),
        hash_policy: if affinity {
            vec![route_action::HashPolicy {
                policy_specifier: Some(route_action::hash_policy::PolicySpecifier::Cookie(
                    route_action::hash_policy::Cookie {
                        name: AFFINITY_COOKIE.to_string(),
                        ttl: Some(duration(std::time::Duration::ZERO)),
                        path: "/".to_string(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

/// A protobuf duration.
pub(crate) fn duration(d: std::time::Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}
