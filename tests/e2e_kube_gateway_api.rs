#![cfg(feature = "e2e")]
//! Gateway API's pinned standard CRDs on the real test API server: they install unmodified (which
//! needs `ci/provision-kube.sh`'s third fix: `""` is not null), the spec's defaults apply, and the
//! objects isobar's Gateway API tests need are accepted — among them a ReferenceGrant to the core
//! group (`group: ""`), which an API server without the fix refuses.

use isobar_harness::kube::{
    gateway_api_bundle, install_gateway_api_crds, KubeCluster, KubeClusterOptions,
    GATEWAY_API_VERSION,
};
use serde_json::{json, Value};

const GROUP_VERSION: &str = "gateway.networking.k8s.io/v1";
const NAMESPACE: &str = "gateway-api-crds";

#[test]
fn the_pinned_bundle_is_the_standard_channel_of_its_release() {
    let docs = gateway_api_bundle().expect("the bundle in deploy/gateway-api");
    let mut crds: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| {
            assert_eq!(
                d["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"],
                GATEWAY_API_VERSION
            );
            assert_eq!(
                d["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
                "standard"
            );
            d["metadata"]["name"].as_str().unwrap_or_default()
        })
        .collect();
    crds.sort_unstable();
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
    ] {
        let name = format!("{kind}.gateway.networking.k8s.io");
        assert!(
            crds.contains(&name.as_str()),
            "{name} missing from {crds:?}"
        );
    }
}

#[tokio::test]
async fn gateway_api_crds_install_and_their_defaults_apply_on_the_test_api_server() {
    let cluster = KubeCluster::from_env_or_start(KubeClusterOptions::default())
        .await
        .expect("an API server (see KUBE.md; ci/provision-kube.sh builds one)");
    let admin = cluster.client();
    install_gateway_api_crds(admin)
        .await
        .expect("installing the Gateway API CRDs");
    // A second install finds them there and changes nothing.
    install_gateway_api_crds(admin)
        .await
        .expect("installing the Gateway API CRDs again");
    admin
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .await
        .expect("namespace");

    let create = |object: Value| async move {
        admin
            .apply(&object)
            .await
            .unwrap_or_else(|e| panic!("the API server refused {object}: {e}"))
    };
    let class = create(json!({
        "apiVersion": GROUP_VERSION, "kind": "GatewayClass",
        "metadata": {"name": "crd-check"},
        "spec": {"controllerName": "isobar.dev/gateway-controller"},
    }))
    .await;
    assert_eq!(
        class["status"]["conditions"][0]["reason"], "Pending",
        "the CRD's default status: {class}"
    );
    let gateway = create(json!({
        "apiVersion": GROUP_VERSION, "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": NAMESPACE},
        "spec": {"gatewayClassName": "crd-check",
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }))
    .await;
    assert_eq!(
        gateway["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"], "Same",
        "allowedRoutes defaulted: {gateway}"
    );
    let route = create(json!({
        "apiVersion": GROUP_VERSION, "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }))
    .await;
    let parent = &route["spec"]["parentRefs"][0];
    assert_eq!(
        (&parent["group"], &parent["kind"]),
        (&json!("gateway.networking.k8s.io"), &json!("Gateway")),
        "{route}"
    );
    let rule = &route["spec"]["rules"][0];
    assert_eq!(
        rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}]),
        "{route}"
    );
    let backend = &rule["backendRefs"][0];
    assert_eq!(
        (&backend["group"], &backend["kind"], &backend["weight"]),
        (&json!(""), &json!("Service"), &json!(1)),
        "the core group as \"\" — refused without the third fix: {route}"
    );
    let grant = create(json!({
        "apiVersion": GROUP_VERSION, "kind": "ReferenceGrant",
        "metadata": {"name": "routes-to-services", "namespace": NAMESPACE},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "other"}],
                 "to": [{"group": "", "kind": "Service"}]},
    }))
    .await;
    assert_eq!(grant["spec"]["to"][0]["group"], "", "{grant}");
}
