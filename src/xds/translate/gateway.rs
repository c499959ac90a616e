//! Gateway API listeners: one Envoy listener per bound port (`http-8081`, `https-8443`), each with a
//! RouteConfiguration of the same name holding its hosts, and the HTTPRoute matches as Envoy routes.
//!
//! A share of a rule whose backend can't be used goes to a cluster name that never exists, with
//! `cluster_not_found_response_code: INTERNAL_SERVER_ERROR`: exactly that share is answered 500, as
//! the spec asks (RDS route tables are not validated against the clusters Envoy has). A rule with no
//! usable backend at all answers 500 directly.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, route::Action, route_action, route_action::ClusterSpecifier,
    route_match::PathSpecifier, weighted_cluster, DirectResponseAction, HeaderMatcher,
    QueryParameterMatcher, RedirectAction, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::listener::{downstream_tls, http_connection_manager, socket_address, tls_inspector};
use super::route::route_configuration;
use super::ListenerConfig;
use crate::dag::gateway::listener::Protocol;
use crate::dag::gateway::model::{
    GatewayAction, GatewayEnvoyListener, GatewayRoute, HeaderChanges, Redirect, RedirectPath,
    Share, ValueMatch,
};
use crate::dag::{PathMatch, TlsVersion};

/// The cluster name a share of traffic whose backend can't be used is sent to; no cluster has it.
pub const INVALID_BACKEND_CLUSTER: &str = "isobar/invalid-backend";

/// The Envoy listener for `l`, bound where the Ingress listener of its protocol binds.
pub fn listener(l: &GatewayEnvoyListener, config: &ListenerConfig) -> Listener {
    match l.protocol {
        Protocol::Http => Listener {
            name: l.name.clone(),
            address: Some(socket_address(&config.http_address, l.port)),
            filter_chains: vec![FilterChain {
                filters: vec![http_connection_manager(&l.name, &l.name)],
                ..Default::default()
            }],
            ..Default::default()
        },
        Protocol::Https => {
            let chain = |secret: &str, server_name: Option<&String>| FilterChain {
                filter_chain_match: server_name.map(|name| FilterChainMatch {
                    server_names: vec![name.clone()],
                    ..Default::default()
                }),
                transport_socket: Some(downstream_tls(secret, TlsVersion::default())),
                filters: vec![http_connection_manager(&l.name, &l.name)],
                ..Default::default()
            };
            let filter_chains: Vec<FilterChain> = l
                .tls
                .iter()
                .map(|t| chain(&t.secret, t.server_name.as_ref()))
                .collect();
            // A name no listener has still completes the handshake (with the oldest listener's
            // certificate) and gets a 404, unless a listener without a host name takes every name.
            let default_filter_chain = match l.tls.first() {
                Some(first) if l.tls.iter().all(|t| t.server_name.is_some()) => {
                    Some(chain(&first.secret, None))
                }
                _ => None,
            };
            Listener {
                name: l.name.clone(),
                address: Some(socket_address(&config.https_address, l.port)),
                listener_filters: vec![tls_inspector()],
                filter_chains,
                default_filter_chain,
                ..Default::default()
            }
        }
    }
}

/// The RouteConfiguration of `l`: one virtual host per host name.
pub fn route_config(l: &GatewayEnvoyListener) -> RouteConfiguration {
    route_configuration(
        &l.name,
        l.hosts
            .iter()
            .map(|(host, routes)| virtual_host(host, routes))
            .collect(),
    )
}

/// One host of a Gateway listener and its routes.
pub fn virtual_host(host: &str, routes: &[GatewayRoute]) -> VirtualHost {
    VirtualHost {
        name: host.to_string(),
        domains: vec![host.to_string()],
        routes: routes.iter().map(route).collect(),
        ..Default::default()
    }
}

fn string_matcher(m: &ValueMatch) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(if m.regex {
            MatchPattern::SafeRegex(RegexMatcher {
                regex: m.value.clone(),
                ..Default::default()
            })
        } else {
            MatchPattern::Exact(m.value.clone())
        }),
        ignore_case: false,
    }
}

fn header_matcher(name: &str, m: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(m)),
        ..Default::default()
    }
}

fn route(r: &GatewayRoute) -> Route {
    let path_specifier = match &r.path {
        PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        // `path_separated_prefix` can't be "/"; a plain "/" prefix matches the same requests.
        PathMatch::SegmentPrefix(p) if p == "/" => PathSpecifier::Prefix(p.clone()),
        PathMatch::SegmentPrefix(p) => PathSpecifier::PathSeparatedPrefix(p.clone()),
        PathMatch::StringPrefix(p) => PathSpecifier::Prefix(p.clone()),
    };
    let method = r.method.iter().map(|m| {
        header_matcher(
            ":method",
            StringMatcher {
                match_pattern: Some(MatchPattern::Exact(m.clone())),
                ignore_case: false,
            },
        )
    });
    let headers = r
        .headers
        .iter()
        .map(|h| header_matcher(&h.name, string_matcher(h)));
    let action = match &r.action {
        GatewayAction::Redirect(redirect) => Action::Redirect(redirect_action(redirect)),
        GatewayAction::Forward(shares) if shares.iter().all(|s| s.cluster.is_none()) => {
            Action::DirectResponse(DirectResponseAction {
                status: 500,
                ..Default::default()
            })
        }
        GatewayAction::Forward(shares) => Action::Route(RouteAction {
            cluster_specifier: Some(cluster_specifier(shares)),
            cluster_not_found_response_code:
                route_action::ClusterNotFoundResponseCode::InternalServerError as i32,
            ..Default::default()
        }),
    };
    let HeaderChanges { set, add, remove } = &r.request_headers;
    let header_option =
        |(name, value): &(String, String), action: HeaderAppendAction| HeaderValueOption {
            header: Some(HeaderValue {
                key: name.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        };
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier),
            headers: method.chain(headers).collect(),
            query_parameters: r
                .query_params
                .iter()
                .map(|q| QueryParameterMatcher {
                    name: q.name.clone(),
                    query_parameter_match_specifier: Some(
                        QueryParameterMatchSpecifier::StringMatch(string_matcher(q)),
                    ),
                })
                .collect(),
            ..Default::default()
        }),
        action: Some(action),
        request_headers_to_add: set
            .iter()
            .map(|h| header_option(h, HeaderAppendAction::OverwriteIfExistsOrAdd))
            .chain(
                add.iter()
                    .map(|h| header_option(h, HeaderAppendAction::AppendIfExistsOrAdd)),
            )
            .collect(),
        request_headers_to_remove: remove.clone(),
        ..Default::default()
    }
}

fn cluster_specifier(shares: &[Share]) -> ClusterSpecifier {
    let name = |s: &Share| {
        s.cluster
            .clone()
            .unwrap_or_else(|| INVALID_BACKEND_CLUSTER.to_string())
    };
    match shares {
        [one] => ClusterSpecifier::Cluster(name(one)),
        many => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|s| weighted_cluster::ClusterWeight {
                    name: name(s),
                    weight: Some(UInt32Value { value: s.weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

fn redirect_action(r: &Redirect) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    // The spec leaves the scheme's well-known port out of the Location. Envoy drops the request's
    // port when it changes the scheme, and writes a port it is given even when it is the
    // well-known one: so that one is not given.
    let well_known = match r.scheme.as_deref() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    let port = r.port.filter(|p| Some(*p) != well_known);
    RedirectAction {
        scheme_rewrite_specifier: r.scheme.as_ref().map(|s| match s.as_str() {
            "https" => SchemeRewriteSpecifier::HttpsRedirect(true),
            other => SchemeRewriteSpecifier::SchemeRedirect(other.to_string()),
        }),
        host_redirect: r.hostname.clone().unwrap_or_default(),
        port_redirect: port.map_or(0, u32::from),
        path_rewrite_specifier: r.path.as_ref().map(|p| match p {
            RedirectPath::Full(path) => PathRewriteSpecifier::PathRedirect(path.clone()),
            RedirectPath::Prefix(prefix) => PathRewriteSpecifier::PrefixRewrite(prefix.clone()),
        }),
        response_code: if r.status_code == 301 {
            RedirectResponseCode::MovedPermanently
        } else {
            RedirectResponseCode::Found
        } as i32,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
