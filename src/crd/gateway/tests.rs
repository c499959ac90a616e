//! The generated types read Gateway API objects as an API server stores them (defaults filled in,
//! status written) and write them back unchanged.

use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// Parses `value` as `T` and checks that serialising it gives `value` back: no field is lost or
/// renamed by the generated types.
fn round_trip<T: DeserializeOwned + Serialize>(value: Value) -> T {
    let parsed: T = serde_json::from_value(value.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&parsed).expect("serialises"), value);
    parsed
}

#[test]
fn resource_identities_are_the_upstream_ones() {
    assert_eq!(
        GatewayClass::api_version(&()),
        "gateway.networking.k8s.io/v1"
    );
    assert_eq!(GatewayClass::kind(&()), "GatewayClass");
    assert_eq!(Gateway::plural(&()), "gateways");
    assert_eq!(HttpRoute::kind(&()), "HTTPRoute");
    assert_eq!(HttpRoute::plural(&()), "httproutes");
    assert_eq!(
        ReferenceGrant::api_version(&()),
        "gateway.networking.k8s.io/v1"
    );
}

#[test]
fn an_http_route_as_stored_round_trips() {
    let route: HttpRoute = round_trip(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "shop", "generation": 3},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": "gw", "sectionName": "https", "port": 443}],
            "hostnames": ["shop.example.com", "*.shop.example.com"],
            "rules": [{
                "matches": [
                    {"path": {"type": "PathPrefix", "value": "/cart"},
                     "headers": [{"type": "Exact", "name": "x-tenant", "value": "a"}]},
                    {"path": {"type": "Exact", "value": "/"}}
                ],
                "filters": [
                    {"type": "RequestHeaderModifier",
                     "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}], "remove": ["x-b"]}},
                    {"type": "RequestRedirect",
                     "requestRedirect": {"scheme": "https", "statusCode": 301}}
                ],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "cart", "port": 80, "weight": 90},
                    {"group": "", "kind": "Service", "name": "cart-next", "namespace": "next",
                     "port": 8080, "weight": 0}
                ]
            }]
        },
        "status": {"parents": [{
            "parentRef": {"name": "gw"},
            "controllerName": "isobar.dev/gateway-controller",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "", "observedGeneration": 3,
                            "lastTransitionTime": "2026-12-03T00:00:00Z"}]
        }]}
    }));
    let rule = &route.spec.rules.as_ref().expect("rules")[0];
    let weights: Vec<Option<i32>> = rule
        .backend_refs
        .iter()
        .flatten()
        .map(|b| b.weight)
        .collect();
    assert_eq!(weights, [Some(90), Some(0)]);
    let redirect = rule.filters.as_ref().expect("filters")[1]
        .request_redirect
        .as_ref()
        .expect("redirect");
    assert_eq!(redirect.status_code, Some(301));
}

#[test]
fn a_gateway_a_class_and_a_grant_as_stored_round_trip() {
    let gateway: Gateway = round_trip(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {
            "gatewayClassName": "isobar",
            "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80,
                 "allowedRoutes": {"namespaces": {"from": "Same"}}},
                {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "*.example.com",
                 "tls": {"mode": "Terminate",
                         "certificateRefs": [{"group": "", "kind": "Secret", "name": "wildcard",
                                              "namespace": "certs"}]},
                 "allowedRoutes": {"namespaces": {"from": "Selector",
                                                  "selector": {"matchLabels": {"shared": "yes"}}},
                                   "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]}}
            ]
        }
    }));
    assert_eq!(gateway.spec.listeners.len(), 2);
    assert_eq!(gateway.spec.listeners[1].port, 443);

    let class: GatewayClass = round_trip(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "isobar"},
        "spec": {"controllerName": "isobar.dev/gateway-controller"}
    }));
    assert_eq!(class.spec.controller_name, "isobar.dev/gateway-controller");

    let grant: ReferenceGrant = round_trip(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "routes-to-certs", "namespace": "certs"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}],
            "to": [{"group": "", "kind": "Secret", "name": "wildcard"}]
        }
    }));
    assert_eq!(grant.spec.to[0].group, "");
}
