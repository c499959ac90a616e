//! Each CEL rule isobar checks, refused and (where it has one) its accepted counterpart.

use serde_json::{json, Value};

use super::*;

fn route(spec: Value) -> Vec<String> {
    http_route(&serde_json::from_value(spec).expect("an HTTPRoute spec"))
}

fn gw(listeners: Value) -> Vec<String> {
    gateway(
        &serde_json::from_value(json!({"gatewayClassName": "isobar", "listeners": listeners}))
            .expect("a Gateway spec"),
    )
}

fn one_rule(rule: Value) -> Vec<String> {
    route(json!({"parentRefs": [{"name": "gw"}], "rules": [rule]}))
}

fn has(problems: &[String], text: &str) -> bool {
    problems.iter().any(|p| p.contains(text))
}

#[test]
fn a_plain_route_is_valid() {
    assert_eq!(
        one_rule(json!({
            "matches": [{"path": {"type": "PathPrefix", "value": "/shop"}},
                        {"path": {"type": "Exact", "value": "/a%20b"}}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}],
            "backendRefs": [{"name": "web", "port": 80}]
        })),
        Vec::<String>::new()
    );
}

#[test]
fn path_values_are_checked_as_the_crd_does() {
    for (value, problem) in [
        ("shop", "must be an absolute path"),
        ("/a//b", "must not contain '//'"),
        ("/a/./b", "must not contain '/./'"),
        ("/a/../b", "must not contain '/../'"),
        ("/a%2fb", "must not contain '%2f'"),
        ("/a%2Fb", "must not contain '%2F'"),
        ("/a#b", "must not contain '#'"),
        ("/a/..", "must not end with '/..'"),
        ("/a/.", "must not end with '/.'"),
        ("/a b", "must only contain valid characters"),
        ("/a%zz", "must only contain valid characters"),
    ] {
        let problems = one_rule(
            json!({"matches": [{"path": {"type": "Exact", "value": value}}],
                                       "backendRefs": [{"name": "web", "port": 80}]}),
        );
        assert!(has(&problems, problem), "{value}: {problems:?}");
        assert!(
            problems[0].starts_with("spec.rules[0].matches[0].path: "),
            "{problems:?}"
        );
    }
    // A regular expression is not a path; its value is not checked here.
    assert!(one_rule(
        json!({"matches": [{"path": {"type": "RegularExpression", "value": "a.*"}}],
                            "backendRefs": [{"name": "web", "port": 80}]})
    )
    .is_empty());
}

#[test]
fn filters_are_checked_as_the_crd_does() {
    let redirect = json!({"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}});
    let rewrite = json!({"type": "URLRewrite", "urlRewrite": {"hostname": "x"}});
    assert!(has(
        &one_rule(json!({"filters": [redirect], "backendRefs": [{"name": "web", "port": 80}]})),
        "RequestRedirect filter must not be used together with backendRefs"
    ));
    assert!(has(
        &one_rule(json!({"filters": [redirect, redirect]})),
        "RequestRedirect filter cannot be repeated"
    ));
    assert!(has(
        &one_rule(json!({"filters": [redirect, rewrite]})),
        "either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite"
    ));
    assert!(has(
        &one_rule(json!({"filters": [{"type": "RequestHeaderModifier"}]})),
        "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"
    ));
    assert!(has(
        &one_rule(
            json!({"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {},
                                      "requestRedirect": {}}]})
        ),
        "filter.requestRedirect must be nil if the filter.type is not RequestHeaderModifier"
    ));
    // replacePrefixMatch needs exactly one PathPrefix match; no matches is one PathPrefix `/`.
    let prefix_redirect = json!({"type": "RequestRedirect",
        "requestRedirect": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}});
    assert!(one_rule(json!({"filters": [prefix_redirect]})).is_empty());
    assert!(has(
        &one_rule(
            json!({"matches": [{"path": {"type": "Exact", "value": "/a"}}], "filters": [prefix_redirect]})
        ),
        "exactly one PathPrefix match must be specified"
    ));
    assert!(has(
        &one_rule(json!({"filters": [{"type": "RequestRedirect",
            "requestRedirect": {"path": {"type": "ReplaceFullPath", "replacePrefixMatch": "/x"}}}]})),
        "replaceFullPath must be specified when type is set to 'ReplaceFullPath'"
    ));
    // The same rules hold for a backend's filters.
    assert!(has(
        &one_rule(json!({"backendRefs": [{"name": "web", "port": 80,
            "filters": [{"type": "RequestHeaderModifier"}]}]})),
        "spec.rules[0].backendRefs[0].filters[0]: filter.requestHeaderModifier must be specified"
    ));
}

#[test]
fn a_service_backend_needs_a_port() {
    assert!(has(
        &one_rule(json!({"backendRefs": [{"name": "web"}]})),
        "Must have port for Service reference"
    ));
    assert!(one_rule(
        json!({"backendRefs": [{"name": "b", "group": "example.com", "kind": "Bucket"}]})
    )
    .is_empty());
}

#[test]
fn parent_refs_to_one_parent_need_distinct_section_names() {
    let refs = |a: Value, b: Value| route(json!({"parentRefs": [a, b]}));
    assert!(has(
        &refs(
            json!({"name": "gw"}),
            json!({"name": "gw", "sectionName": "a"})
        ),
        "sectionName must be specified"
    ));
    assert!(has(
        &refs(
            json!({"name": "gw", "sectionName": "a"}),
            json!({"name": "gw", "sectionName": "a"})
        ),
        "sectionName must be unique"
    ));
    assert!(refs(
        json!({"name": "gw", "sectionName": "a"}),
        json!({"name": "gw", "sectionName": "b"})
    )
    .is_empty());
    assert!(refs(json!({"name": "gw"}), json!({"name": "other"})).is_empty());
}

#[test]
fn too_many_matches_in_one_route() {
    let rule = json!({"matches": vec![json!({"path": {"type": "PathPrefix", "value": "/"}}); 64],
                      "backendRefs": [{"name": "web", "port": 80}]});
    assert!(route(json!({"rules": [rule, rule]}))
        .iter()
        .any(|p| p.contains("must be less than 128")));
    assert!(route(json!({"rules": [rule]})).is_empty());
}

#[test]
fn listeners_are_checked_as_the_crd_does() {
    let cert = json!({"certificateRefs": [{"name": "c"}]});
    assert!(gw(json!([{"name": "a", "protocol": "HTTP", "port": 80},
                      {"name": "b", "protocol": "HTTPS", "port": 443, "tls": cert}]))
    .is_empty());
    assert!(has(
        &gw(json!([{"name": "a", "protocol": "HTTP", "port": 80, "tls": cert}])),
        "tls must not be specified"
    ));
    assert!(has(
        &gw(
            json!([{"name": "a", "protocol": "HTTPS", "port": 443, "tls": {"mode": "Passthrough", "certificateRefs": [{"name": "c"}]}}])
        ),
        "tls mode must be Terminate for protocol HTTPS"
    ));
    assert!(has(
        &gw(json!([{"name": "a", "protocol": "HTTPS", "port": 443, "tls": {}}])),
        "certificateRefs or options must be specified"
    ));
    assert!(has(
        &gw(
            json!([{"name": "a", "protocol": "HTTP", "port": 80}, {"name": "a", "protocol": "HTTP", "port": 81}])
        ),
        "Listener name must be unique"
    ));
    assert!(has(
        &gw(
            json!([{"name": "a", "protocol": "HTTP", "port": 80}, {"name": "b", "protocol": "HTTP", "port": 80}])
        ),
        "Combination of port, protocol and hostname must be unique"
    ));
    assert!(has(
        &gw(json!([{"name": "a", "protocol": "TCP", "port": 80, "hostname": "x"}])),
        "hostname must not be specified"
    ));
}
