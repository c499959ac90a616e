#![cfg(feature = "e2e")]
//! IngressRoutes (contour.heptio.com/v1beta1) through a real kube-apiserver: a root routes its
//! fqdn, delegation hands a path to another IngressRoute, and isobar writes
//! `status.currentStatus` (valid, orphaned) to the API.

mod common;

use isobar_harness::{wait_for_async, KubeStack};
use serde_json::{json, Value};

use common::kube::{apply, start_kube_stack, STATUS};
use common::wait_routed_to;

fn ingress_route(name: &str, fqdn: Option<&str>, routes: Value) -> Value {
    let mut spec = json!({"routes": routes});
    if let Some(fqdn) = fqdn {
        spec["virtualhost"] = json!({"fqdn": fqdn});
    }
    json!({
        "apiVersion": "contour.heptio.com/v1beta1",
        "kind": "IngressRoute",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Polls until IngressRoute `name` has `status.currentStatus == want` and returns its status.
async fn wait_current_status(ks: &KubeStack, name: &str, want: &str) -> Value {
    let what = format!("IngressRoute {name} status.currentStatus to be {want}");
    wait_for_async(STATUS, &what, || async {
        let route = ks
            .client()
            .get(
                "contour.heptio.com/v1beta1",
                "IngressRoute",
                Some(ks.namespace()),
                name,
            )
            .await?;
        Ok(route
            .map(|r| r["status"].clone())
            .filter(|s| s["currentStatus"] == want))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)))
}

#[tokio::test]
async fn ingress_routes_route_delegate_and_get_their_status() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let host = ks.host("site");
    apply(
        &ks,
        ingress_route(
            "root",
            Some(&host),
            json!([
                {"match": "/", "services": [{"name": "a", "port": 80}]},
                {"match": "/blog", "delegate": {"name": "blog"}},
            ]),
        ),
    )
    .await;
    apply(
        &ks,
        ingress_route(
            "blog",
            None,
            json!([{"match": "/blog", "services": [{"name": "b", "port": 80}]}]),
        ),
    )
    .await;
    // Not a root and nobody delegates to it.
    apply(
        &ks,
        ingress_route(
            "stray",
            None,
            json!([{"match": "/", "services": [{"name": "a", "port": 80}]}]),
        ),
    )
    .await;

    wait_routed_to(&ks.stack, &host, "/x", "a").await;
    wait_routed_to(&ks.stack, &host, "/blog/post", "b").await;
    wait_current_status(&ks, "root", "valid").await;
    wait_current_status(&ks, "blog", "valid").await;
    let stray = wait_current_status(&ks, "stray", "orphaned").await;
    assert!(
        stray["description"].as_str().is_some_and(|d| !d.is_empty()),
        "an orphaned IngressRoute needs a description: {stray}"
    );
}
