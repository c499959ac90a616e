#![cfg(feature = "e2e")]
//! Gateway API on the real API server (the pinned standard CRDs) and a real Envoy: isobar, with
//! exactly deploy/base's RBAC, accepts its GatewayClass, serves the Gateway's listener on its own
//! port, routes HTTPRoutes and follows their edits, honours ReferenceGrants as they are created and
//! deleted, and writes the spec's conditions (with observedGeneration) on the class, the Gateway,
//! its listener and the route — removing its route entry when the parentRef goes away; a listener
//! that selects route namespaces by label follows the labels as they change; an HTTPS listener uses a
//! certificate in another namespace only while a ReferenceGrant there allows it, at its port plus
//! `--gateway-privileged-port-offset` when the port is below 1024.

mod common;

use std::net::SocketAddr;

use isobar_harness::http::{send, RequestSpec, Trust};
use isobar_harness::kube_stack::{endpoint_slice, service};
use isobar_harness::pki::TestCa;
use isobar_harness::ports::free_port;
use isobar_harness::{wait_for_async, KubeStack};
use serde_json::{json, Value};

use common::kube::{
    apply, start_kube_stack_with_gateway_api, start_kube_stack_with_gateway_api_and, STATUS,
};
use common::CONVERGE;

const V1: &str = "gateway.networking.k8s.io/v1";
const CONTROLLER: &str = "isobar.dev/gateway-controller";

fn route(ks: &KubeStack, name: &str, host: &str, backend: Value) -> Value {
    json!({"apiVersion": V1, "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ks.namespace()},
           "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                    "rules": [{"backendRefs": [backend]}]}})
}

/// isobar's GatewayClass and Gateway `gw` in the stack's namespace with one listener.
async fn apply_gateway(ks: &KubeStack, listener: Value) {
    apply(
        ks,
        json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "isobar"},
               "spec": {"controllerName": CONTROLLER}}),
    )
    .await;
    apply(
        ks,
        json!({"apiVersion": V1, "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": ks.namespace()},
               "spec": {"gatewayClassName": "isobar", "listeners": [listener]}}),
    )
    .await;
}

/// Polls until `GET /` with `Host: host` on `port` answers `status` (and, for 200, from `backend`).
async fn wait_answer(ks: &KubeStack, port: u16, host: &str, status: u16, backend: Option<&str>) {
    let req = RequestSpec::get(SocketAddr::from(([127, 0, 0, 1], port)), host, "/");
    let what = format!("{host} on port {port} to answer {status} from {backend:?}");
    wait_for_async(CONVERGE, &what, || async {
        Ok(send(&req)
            .await
            .ok()
            .filter(|r| {
                r.status == status && (backend.is_none() || r.backend().as_deref() == backend)
            })
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
}

/// Polls until the object satisfies `ok`; returns it.
async fn wait_object(
    ks: &KubeStack,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let what = format!("{kind} {name}'s status");
    let found = wait_for_async(STATUS, &what, || async {
        let o = ks
            .client()
            .get(V1, kind, namespace, name)
            .await?
            .unwrap_or_default();
        let good = ok(&o);
        *last.lock().unwrap() = o.clone();
        Ok(good.then_some(o))
    })
    .await;
    found.unwrap_or_else(|e| {
        panic!(
            "{e}\nlast seen: {:#}\n{}",
            last.lock().unwrap(),
            ks.log_tails(40)
        )
    })
}

fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn is(conditions: &Value, type_: &str, status: &str, reason: &str) -> bool {
    let c = condition(conditions, type_);
    c["status"] == status && c["reason"] == reason
}

/// isobar's entry in a route's `status.parents`.
fn our_parent(route: &Value) -> &Value {
    route["status"]["parents"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["controllerName"] == CONTROLLER))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn gateway_routes_follow_edits_and_grants_and_statuses_are_written() {
    let ks = start_kube_stack_with_gateway_api().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let port = free_port().expect("a free port");
    let ns = ks.namespace().to_string();
    apply_gateway(
        &ks,
        json!({"name": "web", "protocol": "HTTP", "port": port}),
    )
    .await;
    let host = ks.host("gw");
    apply(
        &ks,
        route(&ks, "app", &host, json!({"name": "a", "port": 80})),
    )
    .await;
    wait_answer(&ks, port, &host, 200, Some("a")).await;

    let class = wait_object(&ks, "GatewayClass", None, "isobar", |o| {
        is(&o["status"]["conditions"], "Accepted", "True", "Accepted")
    })
    .await;
    assert_eq!(
        condition(&class["status"]["conditions"], "Accepted")["observedGeneration"],
        class["metadata"]["generation"]
    );
    let gw = wait_object(&ks, "Gateway", Some(&ns), "gw", |o| {
        is(
            &o["status"]["conditions"],
            "Programmed",
            "True",
            "Programmed",
        ) && o["status"]["listeners"][0]["attachedRoutes"] == 1
    })
    .await;
    let listener = &gw["status"]["listeners"][0];
    assert_eq!(listener["name"], "web");
    assert_eq!(
        listener["supportedKinds"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    assert!(
        is(&listener["conditions"], "Accepted", "True", "Accepted")
            && is(
                &listener["conditions"],
                "ResolvedRefs",
                "True",
                "ResolvedRefs"
            ),
        "{gw:#}"
    );
    let r = wait_object(&ks, "HTTPRoute", Some(&ns), "app", |o| {
        is(&our_parent(o)["conditions"], "Accepted", "True", "Accepted")
    })
    .await;
    let generation = r["metadata"]["generation"].clone();
    assert_eq!(
        condition(&our_parent(&r)["conditions"], "ResolvedRefs")["observedGeneration"],
        generation
    );
    assert_eq!(
        our_parent(&r)["parentRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"})
    );

    // An edit reroutes, and the conditions follow the new generation.
    apply(
        &ks,
        route(&ks, "app", &host, json!({"name": "b", "port": 80})),
    )
    .await;
    wait_answer(&ks, port, &host, 200, Some("b")).await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "app", |o| {
        condition(&our_parent(o)["conditions"], "Accepted")["observedGeneration"]
            == o["metadata"]["generation"]
            && o["metadata"]["generation"] != generation
    })
    .await;

    // A Service in another namespace: refused until a ReferenceGrant there allows it, live.
    let other = format!("{ns}-shared");
    apply(
        &ks,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}),
    )
    .await;
    let shared = ks.start_echo("shared").expect("backend shared");
    let mut svc = service("shared");
    svc["metadata"]["namespace"] = json!(other);
    apply(&ks, svc).await;
    let mut slice = endpoint_slice(ks.slice_api_version(), "shared", "shared-1", shared.port());
    slice["metadata"]["namespace"] = json!(other);
    apply(&ks, slice).await;
    let cross = json!({"name": "shared", "namespace": other, "port": 80});
    let cross_host = ks.host("cross");
    apply(&ks, route(&ks, "cross", &cross_host, cross)).await;
    wait_answer(&ks, port, &cross_host, 500, None).await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "cross", |o| {
        is(
            &our_parent(o)["conditions"],
            "ResolvedRefs",
            "False",
            "RefNotPermitted",
        )
    })
    .await;
    let grant = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "routes", "namespace": other},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns}],
                 "to": [{"group": "", "kind": "Service"}]}});
    apply(&ks, grant).await;
    wait_answer(&ks, port, &cross_host, 200, Some("shared")).await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "cross", |o| {
        is(
            &our_parent(o)["conditions"],
            "ResolvedRefs",
            "True",
            "ResolvedRefs",
        )
    })
    .await;
    assert!(ks
        .client()
        .delete(
            "gateway.networking.k8s.io/v1beta1",
            "ReferenceGrant",
            Some(&other),
            "routes"
        )
        .await
        .expect("deleting the ReferenceGrant"));
    wait_answer(&ks, port, &cross_host, 500, None).await;

    // The route leaves isobar's Gateway: its entry goes, the listener counts one route fewer.
    let mut gone = route(&ks, "cross", &cross_host, json!({"name": "a", "port": 80}));
    gone["spec"]["parentRefs"] = json!([{"name": "not-isobars"}]);
    apply(&ks, gone).await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "cross", |o| {
        our_parent(o).is_null()
    })
    .await;
    wait_object(&ks, "Gateway", Some(&ns), "gw", |o| {
        o["status"]["listeners"][0]["attachedRoutes"] == 1
    })
    .await;
    wait_answer(&ks, port, &cross_host, 404, None).await;
}

#[tokio::test]
async fn a_listener_selecting_namespaces_by_label_follows_the_labels_live() {
    let ks = start_kube_stack_with_gateway_api().await;
    let _a = ks.backend("a").await.expect("backend a");
    let port = free_port().expect("a free port");
    let ns = ks.namespace().to_string();
    apply_gateway(
        &ks,
        json!({"name": "web", "protocol": "HTTP", "port": port,
               "allowedRoutes": {"namespaces": {"from": "Selector",
                   "selector": {"matchLabels": {"isobar-e2e": "selected"}}}}}),
    )
    .await;
    let host = ks.host("selected");
    apply(
        &ks,
        route(&ks, "app", &host, json!({"name": "a", "port": 80})),
    )
    .await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "app", |o| {
        is(
            &our_parent(o)["conditions"],
            "Accepted",
            "False",
            "NotAllowedByListeners",
        )
    })
    .await;
    wait_answer(&ks, port, &host, 404, None).await;
    // Labelling the route's namespace lets it in.
    ks.client()
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &ns,
            None,
            &json!({"metadata": {"labels": {"isobar-e2e": "selected"}}}),
        )
        .await
        .expect("labelling the namespace");
    wait_answer(&ks, port, &host, 200, Some("a")).await;
    wait_object(&ks, "HTTPRoute", Some(&ns), "app", |o| {
        is(&our_parent(o)["conditions"], "Accepted", "True", "Accepted")
    })
    .await;
}

/// Gateway `gw` once its first listener's `ResolvedRefs` has `status` and `reason`.
async fn wait_listener_refs(ks: &KubeStack, status: &str, reason: &str) -> Value {
    wait_object(ks, "Gateway", Some(ks.namespace()), "gw", |o| {
        is(
            &o["status"]["listeners"][0]["conditions"],
            "ResolvedRefs",
            status,
            reason,
        )
    })
    .await
}

#[tokio::test]
async fn an_https_listener_uses_a_certificate_in_another_namespace_only_through_a_grant() {
    // The listener says port 443, which Envoy (not root) binds at 443 + the offset: a free port.
    let port = free_port().expect("a free port");
    let offset = port - 443;
    let ks = start_kube_stack_with_gateway_api_and(vec![format!(
        "--gateway-privileged-port-offset={offset}"
    )])
    .await;
    let _a = ks.backend("a").await.expect("backend a");
    let ns = ks.namespace().to_string();
    let host = ks.host("secure");
    // The certificate lives in another namespace, as a shared wildcard certificate often does.
    let certs = format!("{ns}-certs");
    apply(
        &ks,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": certs}}),
    )
    .await;
    let ca = TestCa::new("e2e kube gateway CA").expect("a CA");
    let (cert, key) = ca.issue_server(&[host.as_str()]).expect("a certificate");
    apply(
        &ks,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "secure-tls", "namespace": certs},
               "stringData": {"tls.crt": cert, "tls.key": key}}),
    )
    .await;
    apply_gateway(
        &ks,
        json!({"name": "tls", "protocol": "HTTPS", "port": 443, "hostname": host,
               "tls": {"certificateRefs": [{"name": "secure-tls", "namespace": certs}]}}),
    )
    .await;
    apply(
        &ks,
        route(&ks, "app", &host, json!({"name": "a", "port": 80})),
    )
    .await;
    let gw = wait_listener_refs(&ks, "False", "RefNotPermitted").await;
    assert!(
        is(
            &gw["status"]["listeners"][0]["conditions"],
            "Programmed",
            "False",
            "Invalid"
        ),
        "{gw:#}"
    );

    // A ReferenceGrant in the certificate's namespace lets the Gateway use it: served over TLS.
    let grant = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "gateways", "namespace": certs},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": ns}],
                 "to": [{"group": "", "kind": "Secret", "name": "secure-tls"}]}});
    apply(&ks, grant).await;
    wait_listener_refs(&ks, "True", "ResolvedRefs").await;
    let mut req = RequestSpec::get(SocketAddr::from(([127, 0, 0, 1], port)), &host, "/").https();
    req.trust = Trust::CaPem(ca.cert_pem().into_bytes());
    let what = format!("{host} over TLS on port {port} to answer from a");
    let r = wait_for_async(CONVERGE, &what, || async {
        Ok(send(&req)
            .await
            .ok()
            .filter(|r| r.status == 200 && r.backend().as_deref() == Some("a")))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
    let names = r
        .peer_certificate_names()
        .expect("the certificate parses")
        .expect("a certificate was presented");
    assert_eq!(names.dns_names, [host]);

    // Revoked: the listener says so again.
    assert!(ks
        .client()
        .delete(
            "gateway.networking.k8s.io/v1beta1",
            "ReferenceGrant",
            Some(&certs),
            "gateways"
        )
        .await
        .expect("deleting the ReferenceGrant"));
    wait_listener_refs(&ks, "False", "RefNotPermitted").await;
}
