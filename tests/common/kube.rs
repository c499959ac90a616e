//! Shared pieces of the Kubernetes e2e tests: a [`KubeStack`] with this repository's `deploy/base`,
//! Ingress objects, isobar's counters, and reading isobar's whole log.

use std::path::PathBuf;
use std::time::Duration;

use isobar_harness::{KubeStack, KubeStackOptions, Stack};
use serde_json::{json, Value};

use super::{echo_bin, isobar_bin, metric, metric_sum};

/// The address isobar writes into Ingress status (a name that resolves nowhere).
pub const LB_HOSTNAME: &str = "lb.isobar.test";
/// Deadline for a status write to show in the API (debounce + leader + batch + PATCH).
pub const STATUS: Duration = Duration::from_secs(30);

/// `status.loadBalancer.ingress` as isobar must write it.
pub fn lb_ingress() -> Value {
    json!([{"hostname": LB_HOSTNAME}])
}

/// The kustomize base whose `namespace.yaml`, `crds.yaml` and `rbac.yaml` the kube stack applies.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base"))
}

/// API server + isobar (with exactly deploy/base's RBAC) + Envoy.
pub async fn start_kube_stack() -> KubeStack {
    start(false, Vec::new()).await
}

/// [`start_kube_stack`] with the pinned Gateway API CRDs installed first.
pub async fn start_kube_stack_with_gateway_api() -> KubeStack {
    start(true, Vec::new()).await
}

/// [`start_kube_stack_with_gateway_api`] with further `isobar serve` arguments.
pub async fn start_kube_stack_with_gateway_api_and(isobar_args: Vec<String>) -> KubeStack {
    start(true, isobar_args).await
}

async fn start(gateway_api: bool, isobar_args: Vec<String>) -> KubeStack {
    KubeStack::start(KubeStackOptions {
        isobar_bin: isobar_bin(),
        echo_bin: echo_bin(),
        deploy_dir: deploy_dir(),
        ingress_status_address: LB_HOSTNAME.to_string(),
        isobar_args,
        gateway_api,
    })
    .await
    .unwrap_or_else(|e| panic!("starting the kube stack: {e}"))
}

/// An Ingress with one rule for `host`: each `(path, service)` is a `Prefix` path to the
/// service's port 80.
pub fn ingress(name: &str, host: &str, paths: &[(&str, &str)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, service)| {
            json!({
                "path": path,
                "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}},
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {"rules": [{"host": host, "http": {"paths": paths}}]},
    })
}

/// Applies an object, panicking with the error.
pub async fn apply(ks: &KubeStack, object: Value) -> Value {
    let what = format!("{} {}", object["kind"], object["metadata"]["name"]);
    ks.apply(object)
        .await
        .unwrap_or_else(|e| panic!("applying {what}: {e}"))
}

/// isobar's counters that tell what a change cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    pub rebuilds: f64,
    pub endpoint_refreshes: f64,
    pub status_writes: f64,
    pub nacks: f64,
}

pub async fn counters_of(isobar: &isobar_harness::isobar::Isobar) -> Counters {
    let text = isobar
        .metrics()
        .await
        .unwrap_or_else(|e| panic!("isobar /metrics: {e}"));
    let get = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    // Labelled by resource type: the sum is every NACK.
    let nacks = metric_sum(&text, "isobar_xds_nacks_total")
        .unwrap_or_else(|| panic!("no isobar_xds_nacks_total in:\n{text}"));
    Counters {
        rebuilds: get("isobar_rebuilds_total"),
        endpoint_refreshes: get("isobar_endpoint_refreshes_total"),
        status_writes: get("isobar_status_writes_total"),
        nacks,
    }
}

pub async fn counters(stack: &Stack) -> Counters {
    counters_of(&stack.isobar).await
}

/// Everything the current isobar process has logged (stdout and stderr).
pub fn isobar_log(stack: &Stack) -> String {
    let p = stack.isobar.process();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    format!("{}{}", read(p.stdout_path()), read(p.stderr_path()))
}

/// The objects of `/debug/status`.
pub async fn debug_objects(stack: &Stack) -> Vec<Value> {
    super::debug_status(stack).await["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
