//! Helpers for the Contour-feature e2e tests (`tests/e2e_features_*.rs`): IngressRoute and
//! annotated Ingress YAML, TLS echo backends, polling for a response that satisfies a predicate,
//! and the "Envoy rejected nothing" check every test ends with.
//!
//! Included with `#[path = "common/features.rs"] mod features;` next to `mod common;`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use isobar_harness::echo::EchoBackend;
use isobar_harness::http::{send, RequestSpec, Response};
use isobar_harness::manifests::service_and_endpoints_yaml;
use isobar_harness::pki::TestCa;
use isobar_harness::{wait_for_async, Stack};

use crate::common::{debug_status, debug_xds, echo_bin, Fixture, CONVERGE, NS};

/// Adds `metadata.annotations` to a manifest written by `common::ingress_yaml` (whose metadata
/// ends with `namespace: default`).
pub fn with_annotations(yaml: &str, annotations: &[(&str, &str)]) -> String {
    let anchor = format!("  namespace: {NS}\n");
    assert!(yaml.contains(&anchor), "no metadata.namespace in {yaml}");
    let mut block = anchor.clone();
    block.push_str("  annotations:\n");
    for (k, v) in annotations {
        block.push_str(&format!("    {k:?}: {v:?}\n"));
    }
    yaml.replacen(&anchor, &block, 1)
}

/// An IngressRoute `name` in the test namespace with the given `spec` (YAML, indented by two
/// spaces, i.e. the lines under `spec:`).
pub fn ingress_route_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n{spec}"
    )
}

/// A TLS echo backend `name` serving a certificate for `hosts` from `ca`, and `svc-NAME.yaml`
/// (Service `NAME`, port 443 named `https`, Endpoints at the backend). Keep the returned values
/// alive for the test's duration.
pub fn tls_backend(
    f: &Fixture,
    ca: &TestCa,
    name: &str,
    hosts: &[&str],
) -> (EchoBackend, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("isobar-e2e-tls-backend-")
        .tempdir()
        .expect("creating the TLS backend's dir");
    let (cert, key) = ca
        .issue_server(hosts)
        .expect("issuing the backend certificate");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert).expect("writing the backend certificate");
    std::fs::write(&key_path, key).expect("writing the backend key");
    let echo = EchoBackend::start_with_tls(
        &echo_bin(),
        name,
        &dir.path().join("logs"),
        Some((cert_path.as_path(), key_path.as_path())),
    )
    .unwrap_or_else(|e| panic!("starting TLS echo backend {name}: {e}"));
    f.write(
        &format!("svc-{name}.yaml"),
        &service_and_endpoints_yaml(NS, name, "https", 443, echo.port()),
    );
    (echo, dir)
}

/// A request to Envoy's HTTPS listener (SNI = `host`, any certificate accepted and recorded).
pub fn https_request(stack: &Stack, host: &str, path: &str) -> RequestSpec {
    RequestSpec::get(stack.https_addr(), host, path).https()
}

/// Polls (fresh connection each time) until `req` gets a response `accept` likes; returns it.
/// On timeout, panics with the last outcome, isobar's NACK record and the logs.
pub async fn wait_response(
    stack: &Stack,
    what: &str,
    req: &RequestSpec,
    accept: impl Fn(&Response) -> bool,
) -> Response {
    let last = std::sync::Mutex::new(String::from("no attempt"));
    let result = wait_for_async(CONVERGE, what, || async {
        match send(req).await {
            Ok(r) if accept(&r) => Ok(Some(r)),
            Ok(r) => {
                *last.lock().unwrap() = format!("status {} body {}", r.status, r.text());
                Ok(None)
            }
            Err(e) => {
                *last.lock().unwrap() = e.to_string();
                Ok(None)
            }
        }
    })
    .await;
    match result {
        Ok(r) => r,
        Err(e) => {
            let last = last.lock().unwrap().clone();
            panic!(
                "{e}\nlast outcome: {last}\n{}\n{}",
                xds_summary(stack).await,
                stack.log_tails(30)
            )
        }
    }
}

/// Polls until `req` is answered by echo backend `backend` with status 200.
pub async fn wait_echo(stack: &Stack, req: &RequestSpec, backend: &str) -> Response {
    let what = format!(
        "{} {}{} to be answered by {backend}",
        req.method, req.host, req.path
    );
    wait_response(stack, &what, req, |r| {
        r.status == 200 && r.backend().as_deref() == Some(backend)
    })
    .await
}

/// `/debug/xds`'s NACK count and last NACK, for failure messages.
pub async fn xds_summary(stack: &Stack) -> String {
    match stack.isobar.get("/debug/xds").await {
        Ok(body) => {
            let j: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            format!(
                "isobar /debug/xds: nacks {} last_nack {}",
                j["nacks"], j["last_nack"]
            )
        }
        Err(e) => format!("isobar /debug/xds: {e}"),
    }
}

/// Every test ends here: Envoy rejected no configuration isobar sent.
pub async fn assert_no_nacks(stack: &Stack) {
    let xds = debug_xds(stack).await;
    assert_eq!(
        xds["nacks"],
        0,
        "Envoy NACKed a configuration: last_nack {}\n{}",
        xds["last_nack"],
        stack.log_tails(30)
    );
}

/// The `/debug/status` entry of object `kind` `name` in the test namespace.
pub async fn object_status(stack: &Stack, kind: &str, name: &str) -> Option<serde_json::Value> {
    let status = debug_status(stack).await;
    status["objects"].as_array().and_then(|objects| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["namespace"] == NS && o["name"] == name)
            .cloned()
    })
}

/// Polls `/debug/status` until object `kind` `name` has status `status`; returns its entry.
pub async fn wait_object_status(
    stack: &Stack,
    kind: &str,
    name: &str,
    status: &str,
) -> serde_json::Value {
    let what = format!("{kind} {NS}/{name} to be {status} in /debug/status");
    wait_for_async(CONVERGE, &what, || async {
        Ok(object_status(stack, kind, name)
            .await
            .filter(|o| o["status"] == status))
    })
    .await
    .unwrap_or_else(|e| {
        panic!("{e}\n{}", stack.log_tails(30));
    })
}

/// Envoy's config dump, trimmed to the named section(s), for failure evidence.
pub async fn config_dump_excerpt(stack: &Stack, needle: &str) -> String {
    match stack.envoy.config_dump().await {
        Ok(dump) => {
            let text = serde_json::to_string(&dump).unwrap_or_default();
            match text.find(needle) {
                Some(i) => {
                    let start = text[..i]
                        .char_indices()
                        .rev()
                        .nth(400)
                        .map_or(0, |(j, _)| j);
                    let end = (i + 1200).min(text.len());
                    let end = (end..=text.len())
                        .find(|e| text.is_char_boundary(*e))
                        .unwrap_or(text.len());
                    format!("config_dump …{}…", &text[start..end])
                }
                None => format!("config_dump has no {needle:?}"),
            }
        }
        Err(e) => format!("config_dump: {e}"),
    }
}

/// The entries of one section of Envoy's config dump (`/config_dump?resource=SECTION`, e.g.
/// `dynamic_active_clusters` or `dynamic_route_configs`), so a check can look at one resource
/// instead of searching the whole dump (which also holds the bootstrap's static resources).
pub async fn config_dump_section(stack: &Stack, section: &str) -> Vec<serde_json::Value> {
    let path = format!("/config_dump?resource={section}");
    let body = stack
        .envoy
        .admin_get(&path)
        .await
        .unwrap_or_else(|e| panic!("Envoy {path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("Envoy {path} is not JSON ({e}): {body}"));
    json["configs"].as_array().cloned().unwrap_or_default()
}

/// The dynamic (xDS) cluster of Service `service` in the test namespace: the one whose name starts
/// with `NS/service/`. Panics if there is none or more than one.
pub async fn dynamic_cluster_of(stack: &Stack, service: &str) -> serde_json::Value {
    let prefix = format!("{NS}/{service}/");
    let clusters: Vec<serde_json::Value> = config_dump_section(stack, "dynamic_active_clusters")
        .await
        .into_iter()
        .map(|c| c["cluster"].clone())
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    match clusters.as_slice() {
        [one] => one.clone(),
        _ => panic!("expected one dynamic cluster named {prefix}…, found {clusters:?}"),
    }
}

/// A generous per-request timeout for requests that are expected to wait on a slow backend.
pub const SLOW: Duration = Duration::from_secs(15);
