//! RouteConfigurations: `ingress_http` for the HTTP listener, and one per secure virtual host.

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route::Action, route_action::ClusterSpecifier,
    route_match::PathSpecifier, weighted_cluster, HeaderMatcher, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::Named;
use crate::dag::{self, Dag, PathMatch};

/// The route configuration the HTTP listener uses.
pub const HTTP_ROUTE_CONFIG: &str = "ingress_http";

/// The route configuration name for the secure virtual host `host`.
pub fn https_route_config_name(host: &str) -> String {
    format!("https/{host}")
}

/// All route configurations.
pub fn routes(dag: &Dag) -> Named {
    let http = route_configuration(
        HTTP_ROUTE_CONFIG,
        dag.virtual_hosts
            .values()
            .map(|v| virtual_host(&v.host, &v.routes))
            .collect(),
    );
    let mut out = vec![(HTTP_ROUTE_CONFIG.to_string(), pack_any(http))];
    for vhost in dag.secure_virtual_hosts.values() {
        let name = https_route_config_name(&vhost.host);
        let config = route_configuration(&name, vec![virtual_host(&vhost.host, &vhost.routes)]);
        out.push((name, pack_any(config)));
    }
    out
}

fn route_configuration(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        // `Host: example.com:18080` matches the virtual host `example.com`, on any listener port,
        // without rewriting the Host header the backend sees.
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

fn virtual_host(host: &str, routes: &[dag::Route]) -> VirtualHost {
    let authority = wildcard_authority_matcher(host);
    VirtualHost {
        name: host.to_string(),
        domains: vec![host.to_string()],
        routes: routes.iter().map(|r| route(r, authority.clone())).collect(),
        ..Default::default()
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

fn route(r: &dag::Route, authority: Option<HeaderMatcher>) -> Route {
    let path_specifier = match &r.path {
        PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        // `path_separated_prefix` can't be "/"; a plain "/" prefix matches the same requests.
        PathMatch::SegmentPrefix(p) if p == "/" => PathSpecifier::Prefix(p.clone()),
        PathMatch::SegmentPrefix(p) => PathSpecifier::PathSeparatedPrefix(p.clone()),
        PathMatch::StringPrefix(p) => PathSpecifier::Prefix(p.clone()),
    };
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier),
            headers: authority.into_iter().collect(),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(cluster_specifier(&r.clusters)),
            ..Default::default()
        })),
        ..Default::default()
    }
}
