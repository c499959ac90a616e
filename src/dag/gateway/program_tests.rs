//! Programs of small snapshots: which Envoy listeners exist, what each host routes, which clusters
//! and certificates they use.

use serde_json::{json, Value};

use super::*;
use crate::dag::PathMatch;
use crate::store::KubeObject;

const V1: &str = "gateway.networking.k8s.io/v1";

fn snapshot(objects: Vec<Value>) -> Snapshot {
    let mut s = Snapshot::default();
    for o in objects {
        s.insert(KubeObject::from_value(o.clone()).unwrap_or_else(|e| panic!("{e:?}: {o}")));
    }
    s
}

fn base(listeners: Value) -> Vec<Value> {
    vec![
        json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "isobar"},
               "spec": {"controllerName": "isobar.dev/gateway-controller"}}),
        json!({"apiVersion": V1, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "t"},
               "spec": {"gatewayClassName": "isobar", "listeners": listeners}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "t"},
               "spec": {"ports": [{"port": 80}]}}),
    ]
}

fn route(name: &str, spec: Value) -> Value {
    json!({"apiVersion": V1, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "t"}, "spec": spec})
}

fn tls_secret(name: &str, host: &str) -> Value {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "t"},
           "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": cert.pem(), "tls.key": key.serialize_pem()}})
}

#[test]
fn an_http_listener_routes_its_hosts_to_clusters_and_500s() {
    let mut objects = base(json!([{"name": "http", "protocol": "HTTP", "port": 8081}]));
    objects.push(route(
        "r",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["a.example.com"],
               "rules": [{"matches": [{"path": {"type": "Exact", "value": "/x"},
                                       "headers": [{"name": "Env", "value": "canary"}]}],
                          "filters": [{"type": "RequestHeaderModifier",
                                       "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}],
                                                                 "remove": ["x-b"]}}],
                          "backendRefs": [{"name": "web", "port": 80, "weight": 3},
                                          {"name": "gone", "port": 80}]}]}),
    ));
    let p = program(&snapshot(objects), &GatewayOptions::default());
    assert_eq!(p.listeners.keys().collect::<Vec<_>>(), ["http-8081"]);
    let l = &p.listeners["http-8081"];
    assert_eq!(
        (l.port, l.protocol, l.tls.is_empty()),
        (8081, Protocol::Http, true)
    );
    let routes = &l.hosts["a.example.com"];
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!(r.path, PathMatch::Exact("/x".to_string()));
    assert_eq!(r.headers[0].name, "env");
    assert_eq!(
        r.request_headers.set,
        [("x-a".to_string(), "1".to_string())]
    );
    assert_eq!(r.request_headers.remove, ["x-b"]);
    let GatewayAction::Forward(shares) = &r.action else {
        panic!("{:?}", r.action)
    };
    let cluster = shares[0].cluster.clone().expect("web resolves");
    assert!(p.clusters.contains_key(&cluster));
    assert_eq!(shares[0].weight, 3);
    assert_eq!(
        shares[1],
        Share {
            cluster: None,
            weight: 1
        }
    );
    assert_eq!(p.clusters.len(), 1);
}

#[test]
fn an_https_listener_serves_its_certificate_and_one_without_a_usable_one_is_left_out() {
    let mut objects = base(json!([
        {"name": "a", "protocol": "HTTPS", "port": 443, "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "a-cert"}]}},
        {"name": "b", "protocol": "HTTPS", "port": 9443, "hostname": "b.example.com",
         "tls": {"certificateRefs": [{"name": "missing"}]}}
    ]));
    objects.push(tls_secret("a-cert", "a.example.com"));
    objects.push(route(
        "r",
        json!({"parentRefs": [{"name": "gw"}],
               "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
    ));
    let p = program(&snapshot(objects), &GatewayOptions::default());
    assert_eq!(p.listeners.keys().collect::<Vec<_>>(), ["https-8443"]);
    let l = &p.listeners["https-8443"];
    assert_eq!(l.tls.len(), 1);
    assert_eq!(l.tls[0].server_name.as_deref(), Some("a.example.com"));
    assert!(p.secrets.contains_key(&l.tls[0].secret));
    assert_eq!(l.hosts.keys().collect::<Vec<_>>(), ["a.example.com"]);
}

#[test]
fn a_redirect_keeps_what_it_asks_for() {
    let mut objects = base(json!([{"name": "http", "protocol": "HTTP", "port": 8081}]));
    objects.push(route(
        "r",
        json!({"parentRefs": [{"name": "gw"}],
               "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
                   "scheme": "https", "hostname": "b.example.com", "statusCode": 301,
                   "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}}]}]}),
    ));
    let p = program(&snapshot(objects), &GatewayOptions::default());
    let r = &p.listeners["http-8081"].hosts["*"][0];
    assert_eq!(
        r.action,
        GatewayAction::Redirect(Redirect {
            scheme: Some("https".to_string()),
            hostname: Some("b.example.com".to_string()),
            port: None,
            path: Some(RedirectPath::Full("/new".to_string())),
            status_code: 301,
        })
    );
    assert!(p.clusters.is_empty());
}

#[test]
fn a_listener_on_a_reserved_port_serves_nothing() {
    let mut objects = base(json!([{"name": "http", "protocol": "HTTP", "port": 80}]));
    objects.push(route(
        "r",
        json!({"parentRefs": [{"name": "gw"}],
               "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
    ));
    let options = GatewayOptions {
        reserved_ports: BTreeMap::from([(8080, "the Ingress HTTP listener".to_string())]),
        ..GatewayOptions::default()
    };
    let p = program(&snapshot(objects), &options);
    assert!(p.listeners.is_empty());
    assert!(p.clusters.is_empty(), "{:?}", p.clusters);
}
