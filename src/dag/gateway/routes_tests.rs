//! Routing tables of small snapshots: which entries land on which listener and host, in which
//! order, with which action.

use serde_json::{json, Value};

use super::*;
use crate::dag::gateway::status::{gateway_api_status, GatewayOptions};
use crate::store::KubeObject;

const V1: &str = "gateway.networking.k8s.io/v1";

fn table(routes: Vec<Value>) -> RoutingTable {
    let mut objects = vec![
        json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "isobar"},
               "spec": {"controllerName": "isobar.dev/gateway-controller"}}),
        json!({"apiVersion": V1, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "t"},
               "spec": {"gatewayClassName": "isobar", "listeners": [
                   {"name": "http", "protocol": "HTTP", "port": 80},
                   {"name": "shop", "protocol": "HTTP", "port": 80, "hostname": "shop.example.com"}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "t"},
               "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "t"},
               "spec": {"ports": [{"port": 80}]}}),
    ];
    objects.extend(routes);
    let mut s = Snapshot::default();
    for o in objects {
        s.insert(KubeObject::from_value(o).expect("an object"));
    }
    let status = gateway_api_status(&s, &GatewayOptions::default());
    routing_table(&s, &status)
}

fn route(name: &str, spec: Value) -> Value {
    json!({"apiVersion": V1, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "t"}, "spec": spec})
}

fn paths(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| format!("{}:{}", e.order.origin.route.name, e.order.path.path()))
        .collect()
}

#[test]
fn routes_land_on_their_listeners_hosts_in_precedence_order() {
    let t = table(vec![
        route(
            "root",
            json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        ),
        route(
            "api",
            json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api/"}},
                                   {"path": {"type": "Exact", "value": "/"}}],
                       "backendRefs": [{"name": "api", "port": 80}]}]}),
        ),
        route(
            "shop",
            json!({"parentRefs": [{"name": "gw", "sectionName": "shop"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        ),
    ]);
    let keys: Vec<_> = t.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            ("http-8080".to_string(), "*".to_string()),
            ("http-8080".to_string(), "shop.example.com".to_string())
        ]
    );
    // Exact first, then the longer prefix (its trailing slash ignored), then `/`.
    assert_eq!(paths(&t[&keys[0]]), ["api:/", "api:/api", "root:/"]);
    assert_eq!(paths(&t[&keys[1]]), ["shop:/"]);
}

#[test]
fn an_unresolved_backend_keeps_its_share_as_a_500_and_weight_0_gets_nothing() {
    let t = table(vec![route(
        "split",
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
             "backendRefs": [{"name": "web", "port": 80, "weight": 3}, {"name": "gone", "port": 80, "weight": 1},
                             {"name": "api", "port": 80, "weight": 0}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/b"}}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/c"}}],
             "backendRefs": [{"name": "web", "port": 80, "weight": 0}]}
        ]}),
    )]);
    let entries = &t[&("http-8080".to_string(), "*".to_string())];
    let action = |p: &str| {
        &entries
            .iter()
            .find(|e| e.order.path.path() == p)
            .expect(p)
            .action
    };
    let Action::Backends(shares) = action("/a") else {
        panic!("backends")
    };
    assert_eq!(shares.len(), 2, "{shares:?}");
    assert!(matches!(&shares[0], (Target::Service(r), 3) if &*r.service.name == "web"));
    assert!(matches!(&shares[1], (Target::Error(why), 1) if why.contains("t/gone")));
    for p in ["/b", "/c"] {
        let Action::Backends(shares) = action(p) else {
            panic!("backends")
        };
        assert!(
            matches!(shares.as_slice(), [(Target::Error(_), 1)]),
            "{p}: {shares:?}"
        );
    }
}

#[test]
fn a_redirect_rule_redirects_and_header_matches_are_kept() {
    let t = table(vec![route(
        "r",
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/old"},
                                "headers": [{"name": "X-Tenant", "value": "a"}], "method": "GET"}],
                   "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}),
    )]);
    let e = &t[&("http-8080".to_string(), "*".to_string())][0];
    assert!(matches!(&e.action, Action::Redirect(r) if r.status_code == Some(301)));
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(
        e.headers,
        [ValueMatch {
            name: "x-tenant".to_string(),
            value: "a".to_string(),
            regex: false
        }]
    );
}

#[test]
fn a_route_not_accepted_serves_nothing() {
    let t = table(vec![route(
        "bad",
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
        "rules": [{"matches": [{"path": {"type": "Exact", "value": "/a//b"}}],
                   "backendRefs": [{"name": "web", "port": 80}]}]}),
    )]);
    assert!(t.is_empty(), "{t:?}");
}
