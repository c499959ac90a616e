#![cfg(feature = "e2e")]
//! Ingresses through a real kube-apiserver: isobar (running as ServiceAccount isobar-system/isobar
//! with exactly deploy/base/rbac.yaml) routes them on a real Envoy, follows edits and deletes, writes
//! their status, ignores other classes and reports invalid ones.

mod common;

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::wait_for_async;
use serde_json::{json, Value};

use common::kube::{apply, debug_objects, ingress, lb_ingress, start_kube_stack, STATUS};
use common::{get, wait_routed_to, wait_status, CONVERGE};

#[tokio::test]
async fn ingress_is_routed_and_gets_the_status_address() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;

    wait_routed_to(&ks.stack, &host, "/x", "a").await;
    // Envoy listens on a non-standard port: clients send it in Host.
    let with_port = format!("{host}:{}", ks.stack.ports().envoy_http);
    let r = get(&ks.stack, &with_port, "/x").await;
    assert_eq!(r.status, 200, "Host {with_port}: {}", r.text());
    assert_eq!(r.backend().as_deref(), Some("a"), "{}", r.text());
    let r = get(&ks.stack, &ks.host("other"), "/x").await;
    assert_eq!(r.status, 404, "unknown host: {}", r.text());

    ks.wait_ingress_lb("app", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)));
    let stored = ks.get_ingress("app").await.unwrap().expect("Ingress app");
    assert_eq!(
        stored["status"]["loadBalancer"]["ingress"][0]["hostname"], "lb.isobar.test",
        "{stored}"
    );
    assert!(
        stored["status"]["loadBalancer"]["ingress"][0]
            .get("ip")
            .is_none(),
        "a host name address must not be written as an ip: {stored}"
    );
}

#[tokio::test]
async fn ingress_edits_reroute_and_delete_unroutes() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/x", "a").await;

    // Another backend.
    apply(&ks, ingress("app", &host, &[("/", "b")])).await;
    wait_routed_to(&ks.stack, &host, "/x", "b").await;

    // Another path: only /v2 is routed now.
    apply(&ks, ingress("app", &host, &[("/v2", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/v2/x", "a").await;
    wait_status(&ks.stack, &host, "/x", 404).await;

    // Deleted: the host is gone.
    assert!(ks
        .delete("networking.k8s.io/v1", "Ingress", "app")
        .await
        .expect("deleting Ingress app"));
    wait_status(&ks.stack, &host, "/v2/x", 404).await;
}

#[tokio::test]
async fn ingresses_of_another_class_are_ignored() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let by_field = ks.host("by-field");
    let by_annotation = ks.host("by-annotation");
    let mut other_field = ingress("other-field", &by_field, &[("/", "a")]);
    other_field["spec"]["ingressClassName"] = json!("other");
    apply(&ks, other_field).await;
    let mut other_annotation = ingress("other-annotation", &by_annotation, &[("/", "a")]);
    other_annotation["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "other"});
    apply(&ks, other_annotation).await;

    // A barrier: an Ingress of isobar's class (contour), applied after the others. Once it is
    // routed and has its status, isobar has seen the earlier Ingresses too (one ordered watch).
    let ours = ks.host("ours");
    let mut barrier = ingress("ours", &ours, &[("/", "a")]);
    barrier["spec"]["ingressClassName"] = json!("contour");
    apply(&ks, barrier).await;
    wait_routed_to(&ks.stack, &ours, "/", "a").await;
    ks.wait_ingress_lb("ours", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)));

    for (name, host) in [
        ("other-field", &by_field),
        ("other-annotation", &by_annotation),
    ] {
        let r = get(&ks.stack, host, "/").await;
        assert_eq!(
            r.status,
            404,
            "Ingress {name} of class other is routed: {}",
            r.text()
        );
        let stored = ks.get_ingress(name).await.unwrap().expect(name);
        let lb = &stored["status"]["loadBalancer"];
        assert!(
            lb.get("ingress").is_none_or(Value::is_null),
            "isobar wrote a status to Ingress {name} of class other: {stored}"
        );
    }
}

#[tokio::test]
async fn invalid_ingress_is_reported_and_routes_once_fixed() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let good = ks.host("good");
    let broken = ks.host("broken");
    apply(&ks, ingress("good", &good, &[("/", "a")])).await;
    apply(&ks, ingress("broken", &broken, &[("/", "missing")])).await;

    let ns = ks.namespace().to_string();
    let entry = wait_for_async(CONVERGE, "Ingress broken in /debug/status", || async {
        Ok(debug_objects(&ks.stack)
            .await
            .into_iter()
            .find(|o| o["kind"] == "Ingress" && o["namespace"] == ns && o["name"] == "broken"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)));
    assert_eq!(entry["status"], "invalid", "{entry}");
    let reason = entry["description"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("{ns}/missing")) && reason.contains("not found"),
        "reason: {reason}"
    );

    wait_routed_to(&ks.stack, &good, "/", "a").await;
    let r = get(&ks.stack, &broken, "/").await;
    assert_ne!(r.status, 200, "the invalid Ingress is served: {}", r.text());
    for _ in 0..5 {
        let r = get(&ks.stack, &good, "/").await;
        assert_eq!(r.backend().as_deref(), Some("a"), "{}", r.text());
    }

    // Fixing it: the Service and its endpoints appear.
    let _missing = ks.backend("missing").await.expect("backend missing");
    wait_routed_to(&ks.stack, &broken, "/", "missing").await;
    let objects = debug_objects(&ks.stack).await;
    let fixed = objects
        .iter()
        .find(|o| o["kind"] == "Ingress" && o["namespace"] == ns && o["name"] == "broken")
        .unwrap_or_else(|| panic!("no Ingress broken in {objects:?}"));
    assert_eq!(fixed["status"], "valid", "{fixed}");
    let r = send(&RequestSpec::get(ks.stack.http_addr(), &good, "/"))
        .await
        .expect("GET good");
    assert_eq!(r.backend().as_deref(), Some("a"), "{}", r.text());
}
