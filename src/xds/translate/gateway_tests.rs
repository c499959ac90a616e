//! The Envoy resources of Gateway API listeners, pinned.

use super::*;
use crate::dag::gateway::model::TlsChain;
use crate::store::ObjectKey;

fn forward(shares: Vec<Share>) -> GatewayRoute {
    GatewayRoute {
        path: PathMatch::SegmentPrefix("/api".to_string()),
        method: None,
        headers: Vec::new(),
        query_params: Vec::new(),
        request_headers: HeaderChanges::default(),
        action: GatewayAction::Forward(shares),
        source: ObjectKey::new("t", "r"),
    }
}

fn share(cluster: Option<&str>, weight: u32) -> Share {
    Share {
        cluster: cluster.map(str::to_string),
        weight,
    }
}

fn http_listener(routes: Vec<GatewayRoute>) -> GatewayEnvoyListener {
    GatewayEnvoyListener {
        name: "http-8081".to_string(),
        port: 8081,
        protocol: Protocol::Http,
        tls: Vec::new(),
        hosts: imbl::OrdMap::unit("a.example.com".to_string(), std::sync::Arc::new(routes)),
    }
}

fn only_route(l: &GatewayEnvoyListener) -> Route {
    let config = route_config(l);
    assert_eq!(config.name, "http-8081");
    assert!(config.ignore_port_in_host_matching);
    assert_eq!(config.virtual_hosts.len(), 1);
    assert_eq!(config.virtual_hosts[0].domains, ["a.example.com"]);
    config.virtual_hosts[0].routes[0].clone()
}

#[test]
fn matches_become_path_method_header_and_query_matchers() {
    let mut r = forward(vec![share(Some("c1"), 1)]);
    r.method = Some("POST".to_string());
    r.headers = vec![ValueMatch {
        name: "env".to_string(),
        value: "can.*".to_string(),
        regex: true,
    }];
    r.query_params = vec![ValueMatch {
        name: "v".to_string(),
        value: "2".to_string(),
        regex: false,
    }];
    r.request_headers = HeaderChanges {
        set: vec![("x-a".to_string(), "1".to_string())],
        add: vec![("x-b".to_string(), "2".to_string())],
        remove: vec!["x-c".to_string()],
    };
    let route = only_route(&http_listener(vec![r]));
    let m = route.r#match.expect("a match");
    assert_eq!(
        m.path_specifier,
        Some(PathSpecifier::PathSeparatedPrefix("/api".to_string()))
    );
    assert_eq!(m.headers.len(), 2);
    assert_eq!(m.headers[0].name, ":method");
    assert_eq!(m.headers[1].name, "env");
    assert!(matches!(
        &m.headers[1].header_match_specifier,
        Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::SafeRegex(r)), ..
        })) if r.regex == "can.*"
    ));
    assert_eq!(m.query_parameters[0].name, "v");
    assert_eq!(
        route
            .request_headers_to_add
            .iter()
            .map(|h| (h.header.as_ref().unwrap().key.as_str(), h.append_action))
            .collect::<Vec<_>>(),
        [
            ("x-a", HeaderAppendAction::OverwriteIfExistsOrAdd as i32),
            ("x-b", HeaderAppendAction::AppendIfExistsOrAdd as i32)
        ]
    );
    assert_eq!(route.request_headers_to_remove, ["x-c"]);
    let Some(Action::Route(action)) = route.action else {
        panic!("{:?}", route.action)
    };
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster("c1".to_string()))
    );
}

#[test]
fn an_unusable_backend_keeps_its_share_as_a_500_and_none_usable_answers_500() {
    let route = only_route(&http_listener(vec![forward(vec![
        share(Some("c1"), 3),
        share(None, 1),
    ])]));
    let Some(Action::Route(action)) = route.action else {
        panic!("{:?}", route.action)
    };
    assert_eq!(
        action.cluster_not_found_response_code,
        route_action::ClusterNotFoundResponseCode::InternalServerError as i32
    );
    let Some(ClusterSpecifier::WeightedClusters(w)) = action.cluster_specifier else {
        panic!("weighted")
    };
    let names: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(names, [("c1", 3), (INVALID_BACKEND_CLUSTER, 1)]);

    let route = only_route(&http_listener(vec![forward(vec![share(None, 1)])]));
    assert_eq!(
        route.action,
        Some(Action::DirectResponse(DirectResponseAction {
            status: 500,
            ..Default::default()
        }))
    );
}

#[test]
fn a_redirect_to_https_leaves_the_well_known_port_to_envoy() {
    let mut r = forward(Vec::new());
    r.action = GatewayAction::Redirect(Redirect {
        scheme: Some("https".to_string()),
        hostname: None,
        port: Some(443),
        path: Some(RedirectPath::Prefix("/v2".to_string())),
        status_code: 301,
    });
    let route = only_route(&http_listener(vec![r]));
    let Some(Action::Redirect(redirect)) = route.action else {
        panic!("{:?}", route.action)
    };
    assert_eq!(
        redirect,
        RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
                true
            )),
            path_rewrite_specifier: Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
                "/v2".to_string()
            )),
            response_code: redirect_action::RedirectResponseCode::MovedPermanently as i32,
            ..Default::default()
        }
    );
}

#[test]
fn an_https_listener_has_a_chain_per_name_and_answers_other_names_with_the_oldest_certificate() {
    let l = GatewayEnvoyListener {
        name: "https-8443".to_string(),
        port: 8443,
        protocol: Protocol::Https,
        tls: vec![
            TlsChain {
                server_name: Some("a.example.com".to_string()),
                secret: "t/a".to_string(),
            },
            TlsChain {
                server_name: Some("*.example.com".to_string()),
                secret: "t/w".to_string(),
            },
        ],
        hosts: imbl::OrdMap::new(),
    };
    let listener = listener(&l, &ListenerConfig::default());
    assert_eq!(listener.name, "https-8443");
    let names: Vec<Vec<String>> = listener
        .filter_chains
        .iter()
        .map(|c| c.filter_chain_match.clone().unwrap().server_names)
        .collect();
    assert_eq!(names, [["a.example.com"], ["*.example.com"]]);
    let default = listener.default_filter_chain.expect("a default chain");
    assert_eq!(
        default.transport_socket,
        Some(downstream_tls("t/a", TlsVersion::default()))
    );
    assert_eq!(listener.listener_filters.len(), 1);

    // A listener without a host name takes every name itself.
    let mut any = l.clone();
    any.tls[1].server_name = None;
    assert!(super::listener(&any, &ListenerConfig::default())
        .default_filter_chain
        .is_none());
}
