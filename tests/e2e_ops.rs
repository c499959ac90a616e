#![cfg(feature = "e2e")]
//! isobar's operations surface with real Envoy: `/debug/*` answers only on the debug address (apart
//! from `/healthz`, `/readyz` and `/metrics`), and `/readyz` says 503 until the first configuration is
//! in the xDS cache, then 200 — from which moment an Envoy that connects gets every route.

mod common;

use std::path::Path;
use std::time::Duration;

use isobar_harness::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions};
use isobar_harness::http::{send, RequestSpec, Response};
use isobar_harness::isobar::{
    certgen, write_bootstrap, BootstrapArgs, Isobar, IsobarOptions, IsobarSource,
};
use isobar_harness::ports::free_port;
use isobar_harness::wait_for_async;

use common::{ingress_yaml, isobar_bin, wait_envoy_acked_listeners, Fixture, CONVERGE, NS};

async fn get_at(addr: std::net::SocketAddr, path: &str) -> Response {
    send(&RequestSpec::get(addr, &addr.to_string(), path))
        .await
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

#[tokio::test]
async fn debug_endpoints_answer_on_the_debug_address_only() {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    let stack = f.start_stack().await;
    // Served with live data: Envoy's stream is there.
    wait_envoy_acked_listeners(&stack).await;

    let (main, debug) = (stack.isobar.http_addr(), stack.isobar.debug_addr());
    assert_ne!(main, debug);
    for path in [
        "/debug/xds",
        "/debug/status",
        "/debug/dag",
        "/",
        "/api/v1/snapshot",
        "/dag.svg",
    ] {
        let on_main = get_at(main, path).await;
        assert_eq!(
            on_main.status,
            404,
            "{path} on the metrics address: {}",
            on_main.text()
        );
        let on_debug = get_at(debug, path).await;
        assert_eq!(
            on_debug.status,
            200,
            "{path} on the debug address: {}",
            on_debug.text()
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&get_at(debug, "/debug/status").await.text())
            .expect("/debug/status is JSON");
    assert_eq!(status["objects"][0]["name"], "web", "{status}");
    assert_eq!(status["objects"][0]["namespace"], NS, "{status}");

    for path in ["/healthz", "/readyz", "/metrics"] {
        let on_main = get_at(main, path).await;
        assert_eq!(
            on_main.status,
            200,
            "{path} on the metrics address: {}",
            on_main.text()
        );
        let on_debug = get_at(debug, path).await;
        assert_eq!(
            on_debug.status,
            404,
            "{path} on the debug address: {}",
            on_debug.text()
        );
    }
    // NACKs are counted per resource type; this Envoy rejected nothing.
    let metrics = get_at(main, "/metrics").await.text();
    for kind in ["listener", "route", "cluster", "endpoint", "secret"] {
        let line = format!("isobar_xds_nacks_total{{type=\"{kind}\"}} 0");
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
}

/// Copies the YAML files of `from` into `to` (created).
fn copy_manifests(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test]
async fn readyz_is_503_until_the_first_configuration_then_envoy_gets_it_all() {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    // isobar serves a directory that does not exist yet (a git-sync checkout to come, say).
    let live = f.manifests_dir().join("live");
    let work = tempfile::Builder::new()
        .prefix("isobar-e2e-ops-")
        .tempdir()
        .unwrap();
    let certs = certgen(&isobar_bin(), &work.path().join("certs")).unwrap();
    let envoy_http_port = free_port().unwrap();
    let isobar = Isobar::start(IsobarOptions {
        bin: isobar_bin(),
        source: IsobarSource::Manifests(live.clone()),
        certs: Some(certs.clone()),
        xds_port: free_port().unwrap(),
        http_port: free_port().unwrap(),
        debug_port: free_port().unwrap(),
        envoy_http_port,
        envoy_https_port: free_port().unwrap(),
        work_dir: work.path().to_path_buf(),
        extra_args: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("starting isobar: {e}"));

    // Alive (Isobar::start waited for /healthz) but not ready: nothing was built.
    let before = isobar.request("/readyz").await.unwrap();
    assert_eq!(before.status, 503, "{}", before.text());
    assert!(
        before.text().contains("no configuration"),
        "{}",
        before.text()
    );
    assert_eq!(isobar.request("/healthz").await.unwrap().status, 200);
    let xds: serde_json::Value =
        serde_json::from_str(&isobar.get("/debug/xds").await.unwrap()).unwrap();
    assert_eq!(xds["generation"], 0, "{xds}");

    // The directory appears, whole, in one rename.
    let staging = f.manifests_dir().join(".staging");
    copy_manifests(f.manifests_dir(), &staging);
    std::fs::rename(&staging, &live).unwrap();
    isobar
        .wait_ready(CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", isobar.log_tail(30)));
    let xds: serde_json::Value =
        serde_json::from_str(&isobar.get("/debug/xds").await.unwrap()).unwrap();
    assert_eq!(xds["cache"]["lds"]["resources"], 1, "{xds}");

    // Ready means complete: an Envoy connecting now routes at once.
    let bootstrap = work.path().join("envoy-bootstrap.json");
    write_bootstrap(
        &isobar_bin(),
        &bootstrap,
        &BootstrapArgs::mtls(isobar.xds_addr().port(), &certs),
    )
    .unwrap();
    let version = default_envoy_version();
    let envoy_bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("Envoy: {e}"));
    let envoy = Envoy::start(EnvoyOptions::new(
        envoy_bin,
        bootstrap,
        work.path().join("envoy"),
    ))
    .await
    .unwrap_or_else(|e| panic!("starting Envoy: {e}"));
    envoy
        .wait_live(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", envoy.log_tail(30), isobar.log_tail(30)));
    let envoy_http = std::net::SocketAddr::from(([127, 0, 0, 1], envoy_http_port));
    wait_for_async(CONVERGE, "web.example.com routed to web", || async {
        let r = send(&RequestSpec::get(envoy_http, "web.example.com", "/")).await;
        Ok(r.ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.backend())
            .filter(|b| b == "web"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", envoy.log_tail(30), isobar.log_tail(30)));
}
