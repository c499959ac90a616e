//! Generated Gateway API objects for the property tests' worlds: GatewayClasses (isobar's or not),
//! Gateways with HTTP and HTTPS listeners (shared ports, host names, certificates usable or not,
//! routes allowed from the same or all namespaces), HTTPRoutes (parentRefs with and without
//! sectionName, host names, path and header matches, weighted backends that resolve or not,
//! redirects, header changes), ReferenceGrants and labelled Namespaces (for listeners that select
//! route namespaces), with creation times that tie and differ.

use proptest::prelude::*;
use serde_json::{json, Value};

const V1: &str = "gateway.networking.k8s.io/v1";
const NAMESPACES: [&str; 2] = ["a", "b"];
const HOSTS: [Option<&str>; 4] = [
    None,
    Some("x.example.com"),
    Some("y.example.com"),
    Some("*.example.com"),
];

fn timestamp() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("2024-01-01T00:00:00Z"),
        Some("2024-01-02T00:00:00Z"),
    ])
}

fn metadata(ns: Option<&str>, name: &str, created: Option<&str>) -> Value {
    let mut m = json!({"name": name, "generation": 1});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    if let Some(t) = created {
        m["creationTimestamp"] = json!(t);
    }
    m
}

fn listener() -> impl Strategy<Value = Value> {
    (
        0..4usize,
        prop::sample::select(HOSTS.to_vec()),
        prop::sample::select(vec!["cert", "other", "missing"]),
        prop::option::of(prop::sample::select(NAMESPACES.to_vec())),
        0..3u8,
    )
        .prop_map(|(shape, host, cert, cert_ns, from)| {
            let (name, protocol, port) = match shape {
                0 => ("http", "HTTP", 8081),
                1 => ("web", "HTTP", 8082),
                2 => ("https", "HTTPS", 9443),
                // Another protocol on an HTTP port: conflicts.
                _ => ("odd", "HTTPS", 8081),
            };
            let mut l = json!({"name": name, "protocol": protocol, "port": port});
            if let Some(h) = host {
                l["hostname"] = json!(h);
            }
            if protocol == "HTTPS" {
                let mut r = json!({"name": cert});
                if let Some(ns) = cert_ns {
                    r["namespace"] = json!(ns);
                }
                l["tls"] = json!({"certificateRefs": [r]});
            }
            match from {
                1 => l["allowedRoutes"] = json!({"namespaces": {"from": "All"}}),
                2 => {
                    l["allowedRoutes"] = json!({"namespaces": {"from": "Selector",
                        "selector": {"matchLabels": {"team": "a"}}}})
                }
                _ => {}
            }
            l
        })
}

fn gateway() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        prop::sample::select(vec!["g1", "g2"]),
        prop::sample::select(vec!["isobar", "isobar", "other"]),
        prop::collection::vec(listener(), 1..3),
        timestamp(),
    )
        .prop_map(|(ns, name, class, listeners, created)| {
            // Listener names must be unique within a Gateway (CEL): keep the first of each.
            let mut seen = std::collections::BTreeSet::new();
            let listeners: Vec<Value> = listeners
                .into_iter()
                .filter(|l| seen.insert(l["name"].as_str().unwrap_or_default().to_string()))
                .collect();
            json!({"apiVersion": V1, "kind": "Gateway",
                   "metadata": metadata(Some(ns), name, created),
                   "spec": {"gatewayClassName": class, "listeners": listeners}})
        })
}

fn backend() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["s1", "s2", "s3", "gone"]),
        prop::sample::select(vec![80, 9000]),
        prop::option::of(0..3i32),
        prop::option::of(prop::sample::select(NAMESPACES.to_vec())),
    )
        .prop_map(|(name, port, weight, ns)| {
            let mut b = json!({"name": name, "port": port});
            if let Some(w) = weight {
                b["weight"] = json!(w);
            }
            if let Some(ns) = ns {
                b["namespace"] = json!(ns);
            }
            b
        })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Exact", "PathPrefix"]),
        prop::sample::select(vec!["/", "/api", "/api/v1", "/api/"]),
        prop::option::of(prop::sample::select(vec!["canary", "stable"])),
        prop::collection::vec(backend(), 0..3),
        0..4u8,
    )
        .prop_map(|(kind, path, header, backends, filter)| {
            let mut m = json!({"path": {"type": kind, "value": path}});
            if let Some(h) = header {
                m["headers"] = json!([{"name": "env", "value": h}]);
            }
            let mut r = json!({"matches": [m], "backendRefs": backends});
            match filter {
                0 => {
                    r["filters"] = json!([{"type": "RequestRedirect",
                        "requestRedirect": {"scheme": "https", "statusCode": 301}}]);
                    r["backendRefs"] = json!([]);
                }
                1 => {
                    r["filters"] = json!([{"type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-env", "value": "t"}]}}]);
                }
                _ => {}
            }
            r
        })
}

fn parent_ref() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["g1", "g2"]),
        prop::option::weighted(0.3, prop::sample::select(NAMESPACES.to_vec())),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec!["http", "web", "https", "nope"]),
        ),
    )
        .prop_map(|(name, ns, section)| {
            let mut p = json!({"name": name});
            if let Some(ns) = ns {
                p["namespace"] = json!(ns);
            }
            if let Some(s) = section {
                p["sectionName"] = json!(s);
            }
            p
        })
}

fn http_route() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        prop::sample::select(vec!["h1", "h2", "h3"]),
        prop::collection::vec(parent_ref(), 1..3),
        prop::collection::vec(prop::sample::select(HOSTS[1..].to_vec()), 0..2),
        prop::collection::vec(rule(), 1..3),
        timestamp(),
    )
        .prop_map(|(ns, name, parents, hosts, rules, created)| {
            let hosts: Vec<&str> = hosts.into_iter().flatten().collect();
            let mut spec = json!({"parentRefs": parents, "rules": rules});
            if !hosts.is_empty() {
                spec["hostnames"] = json!(hosts);
            }
            json!({"apiVersion": V1, "kind": "HTTPRoute",
                   "metadata": metadata(Some(ns), name, created), "spec": spec})
        })
}

/// A ReferenceGrant in `a`: Services there to routes of `b`, or Secrets there to Gateways of `b`.
fn grant() -> impl Strategy<Value = Value> {
    any::<bool>().prop_map(|services| {
        let (name, from, to) = if services {
            ("routes", "HTTPRoute", "Service")
        } else {
            ("gateways", "Gateway", "Secret")
        };
        json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
               "metadata": metadata(Some("a"), name, None),
               "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": from, "namespace": "b"}],
                        "to": [{"group": "", "kind": to}]}})
    })
}

/// Gateway API objects for a world (none, often).
pub(super) fn gateway_objects() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => (
            prop::bool::weighted(0.9),
            prop::collection::vec(gateway(), 1..4),
            prop::collection::vec(http_route(), 0..5),
            prop::collection::vec(grant(), 0..2),
            prop::sample::select(vec![None, Some("a"), Some("b")]),
        )
            .prop_map(|(class, gateways, routes, grants, team)| {
                let mut out = Vec::new();
                // Namespaces `a` and `b`, one of them perhaps labelled `team: a`.
                for ns in NAMESPACES {
                    let labels = if team == Some(ns) { json!({"team": "a"}) } else { json!({}) };
                    out.push(json!({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": ns, "labels": labels}}));
                }
                if class {
                    out.push(json!({"apiVersion": V1, "kind": "GatewayClass",
                        "metadata": metadata(None, "isobar", None),
                        "spec": {"controllerName": crate::dag::gateway::status::DEFAULT_GATEWAY_CONTROLLER_NAME}}));
                }
                out.push(json!({"apiVersion": V1, "kind": "GatewayClass",
                    "metadata": metadata(None, "other", None),
                    "spec": {"controllerName": "example.com/other"}}));
                out.extend(gateways);
                out.extend(routes);
                out.extend(grants);
                out
            }),
    ]
}
