//! Statuses of whole snapshots of Gateway API objects.

use serde_json::{json, Value};

use super::*;
use crate::store::KubeObject;

const V1: &str = "gateway.networking.k8s.io/v1";

fn snapshot(objects: Vec<Value>) -> Snapshot {
    let mut s = Snapshot::default();
    for o in objects {
        s.insert(KubeObject::from_value(o.clone()).unwrap_or_else(|e| panic!("{e:?}: {o}")));
    }
    s
}

fn class(name: &str, controller: &str) -> Value {
    json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": name},
           "spec": {"controllerName": controller}})
}

fn gateway(name: &str, listeners: Value) -> Value {
    json!({"apiVersion": V1, "kind": "Gateway",
           "metadata": {"name": name, "namespace": "infra", "generation": 2},
           "spec": {"gatewayClassName": "isobar", "listeners": listeners}})
}

fn route(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": V1, "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ns, "generation": 5}, "spec": spec})
}

fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"port": 80}]}})
}

fn reason(conditions: &[Condition], type_: &str) -> (bool, &'static str) {
    let c = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {conditions:?}"));
    (c.status, c.reason)
}

fn all_namespaces() -> Value {
    json!({"namespaces": {"from": "All"}})
}

#[test]
fn only_isobars_classes_and_their_gateways_get_a_status() {
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        class("other", "example.com/other"),
        gateway(
            "gw",
            json!([{"name": "http", "protocol": "HTTP", "port": 80}]),
        ),
        json!({"apiVersion": V1, "kind": "Gateway", "metadata": {"name": "theirs", "namespace": "infra"},
               "spec": {"gatewayClassName": "other", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    assert_eq!(st.classes.keys().collect::<Vec<_>>(), ["isobar"]);
    assert_eq!(
        st.gateways.keys().collect::<Vec<_>>(),
        [&ObjectKey::new("infra", "gw")]
    );
    let gw = &st.gateways[&ObjectKey::new("infra", "gw")];
    assert_eq!(reason(&gw.conditions, "Programmed"), (true, "Programmed"));
    assert!(gw.conditions.iter().all(|c| c.observed_generation == 2));
    assert_eq!(st.plan.listeners.keys().collect::<Vec<_>>(), ["http-8080"]);
}

#[test]
fn routes_attach_count_and_report_their_references() {
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway(
            "gw",
            json!([{"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": all_namespaces()},
                   {"name": "same", "protocol": "HTTP", "port": 81, "hostname": "same.example.com"}]),
        ),
        service("shop", "web"),
        route(
            "shop",
            "good",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        ),
        route(
            "shop",
            "missing",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "http"}],
            "rules": [{"backendRefs": [{"name": "gone", "port": 80}, {"name": "web", "namespace": "other", "port": 80}]}]}),
        ),
        route(
            "shop",
            "nowhere",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "nope"}]}),
        ),
        route(
            "shop",
            "elsewhere",
            json!({"parentRefs": [{"name": "unrelated"}]}),
        ),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    let gw = &st.gateways[&ObjectKey::new("infra", "gw")];
    // `good` attaches to `http` only (`same` takes routes of its own namespace); `missing`
    // attaches to `http` too, with unresolved references.
    let attached: Vec<(&str, usize)> = gw
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(attached, [("http", 2), ("same", 0)]);

    let parent = |name: &str| {
        st.routes[&ObjectKey::new("shop", name)][0]
            .conditions
            .clone()
    };
    assert_eq!(reason(&parent("good"), "Accepted"), (true, "Accepted"));
    assert_eq!(
        reason(&parent("good"), "ResolvedRefs"),
        (true, "ResolvedRefs")
    );
    assert_eq!(
        reason(&parent("missing"), "ResolvedRefs"),
        (false, "BackendNotFound")
    );
    let message = &parent("missing")[1].message;
    assert!(
        message.contains("shop/gone") && message.contains("ReferenceGrant"),
        "{message}"
    );
    assert_eq!(
        reason(&parent("nowhere"), "Accepted"),
        (false, "NoMatchingParent")
    );
    assert!(
        !st.routes.contains_key(&ObjectKey::new("shop", "elsewhere")),
        "not isobar's parent"
    );
    assert!(parent("good").iter().all(|c| c.observed_generation == 5));
}

#[test]
fn an_https_listener_needs_a_usable_certificate_it_may_reach() {
    let https = |cert_ns: &str| {
        json!([{"name": "https", "protocol": "HTTPS", "port": 443,
                "tls": {"certificateRefs": [{"name": "cert", "namespace": cert_ns}]}}])
    };
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway("gw", https("infra")),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    let l = &st.gateways[&ObjectKey::new("infra", "gw")].listeners[0];
    assert_eq!(
        reason(&l.conditions, "ResolvedRefs"),
        (false, "InvalidCertificateRef")
    );
    assert_eq!(reason(&l.conditions, "Programmed"), (false, "Invalid"));

    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway("gw", https("certs")),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    let l = &st.gateways[&ObjectKey::new("infra", "gw")].listeners[0];
    assert_eq!(
        reason(&l.conditions, "ResolvedRefs"),
        (false, "RefNotPermitted")
    );
}

#[test]
fn a_gateway_the_crd_rules_refuse_serves_nothing() {
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway(
            "gw",
            json!([{"name": "a", "protocol": "HTTP", "port": 80}, {"name": "a", "protocol": "HTTP", "port": 81}]),
        ),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    let gw = &st.gateways[&ObjectKey::new("infra", "gw")];
    assert_eq!(
        reason(&gw.conditions, "Accepted"),
        (false, "ListenersNotValid")
    );
    assert!(gw.listeners[0].conditions[0]
        .message
        .contains("Listener name must be unique"));
    assert!(st.plan.listeners.is_empty());
}

#[test]
fn a_listener_selecting_namespaces_by_label_takes_routes_from_those_only() {
    let namespace = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let to_gw = json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
                       "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]});
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway(
            "gw",
            json!([{"name": "http", "protocol": "HTTP", "port": 80,
                    "allowedRoutes": {"namespaces": {"from": "Selector",
                        "selector": {"matchLabels": {"team": "shop"}}}}}]),
        ),
        namespace("shop", json!({"team": "shop"})),
        namespace("blog", json!({"team": "blog"})),
        service("shop", "web"),
        service("blog", "web"),
        service("gone", "web"),
        route("shop", "r", to_gw.clone()),
        route("blog", "r", to_gw.clone()),
        // A namespace the store does not know: no selector matches it.
        route("gone", "r", to_gw),
    ]);
    let st = gateway_api_status(&s, &GatewayOptions::default());
    let accepted = |ns: &str| {
        reason(
            &st.routes[&ObjectKey::new(ns, "r")][0].conditions,
            "Accepted",
        )
    };
    assert_eq!(accepted("shop"), (true, "Accepted"));
    assert_eq!(accepted("blog"), (false, "NotAllowedByListeners"));
    assert_eq!(accepted("gone"), (false, "NotAllowedByListeners"));
    assert_eq!(
        st.gateways[&ObjectKey::new("infra", "gw")].listeners[0].attached_routes,
        1
    );
}

#[test]
fn a_route_set_aside_is_not_accepted_on_any_of_its_parents_and_says_why() {
    let s = snapshot(vec![
        class("isobar", DEFAULT_GATEWAY_CONTROLLER_NAME),
        gateway(
            "gw",
            json!([{"name": "http", "protocol": "HTTP", "port": 80}]),
        ),
        service("infra", "web"),
        route(
            "infra",
            "r",
            json!({"parentRefs": [{"name": "gw"}],
                   "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        ),
    ]);
    let full = gateway_api_status(&s, &GatewayOptions::default());
    let key = ObjectKey::new("infra", "r");
    let mut without = GatewayApiStatus::default();
    without.set_aside(&full, &key, "RejectedByEnvoy", "rejected by Envoy: bad");
    let parent = &without.routes[&key][0];
    assert!(parent.attached.is_empty());
    assert_eq!(
        reason(&parent.conditions, "Accepted"),
        (false, "RejectedByEnvoy")
    );
    assert_eq!(
        reason(&parent.conditions, "ResolvedRefs"),
        (true, "ResolvedRefs")
    );
    assert_eq!(parent.conditions[0].observed_generation, 5);
    assert_eq!(parent.conditions[0].message, "rejected by Envoy: bad");
}
