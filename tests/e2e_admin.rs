#![cfg(feature = "e2e")]
//! The admin API with real Envoy: `isobar status` names the invalid object with its reason and the
//! connected Envoy with its version and sync state; `Watch` streams a new snapshot after a manifest
//! edit; `isobar diff --against` compares a directory with what the running isobar serves (Gateway
//! API objects' statuses included). The API
//! answers on the debug address only.

mod common;

use isobar::admin::v1::{self, admin_client::AdminClient};
use isobar_harness::envoy::default_envoy_version;
use isobar_harness::wait_for;
use std::process::{Command, Output};

use common::{ingress_yaml, isobar_bin, valid_and_broken, CONVERGE};

fn isobar(args: &[&str]) -> Output {
    Command::new(isobar_bin())
        .args(args)
        .output()
        .expect("running isobar")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn client(addr: std::net::SocketAddr) -> AdminClient<tonic::transport::Channel> {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("admin API at {addr}: {e}"))
}

#[tokio::test]
async fn status_shows_the_invalid_object_and_the_envoy_in_sync() {
    let f = valid_and_broken();
    let stack = f.start_stack().await;
    let debug = stack.isobar.debug_addr().to_string();

    // Envoy connected and ACKed everything: the table says so.
    let mut last = String::new();
    let synced = wait_for(CONVERGE, "an Envoy in sync", || {
        let out = isobar(&["status", "--debug-address", &debug]);
        last = text(&out);
        (last.contains("ENVOYS: 1") && last.contains("in sync")).then_some(())
    });
    assert!(
        synced.is_ok(),
        "no Envoy in sync:\n{last}\n{}",
        stack.log_tails(20)
    );
    let out = isobar(&["status", "--debug-address", &debug]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an invalid object: {}",
        text(&out)
    );
    eprintln!("$ isobar status\n{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "OBJECTS: 2 (1 not valid)", "{table}");
    assert!(
        lines[2].starts_with("invalid  Ingress  default/broken") && lines[2].contains("70000"),
        "the invalid object comes first, with its reason:\n{table}"
    );
    if std::env::var_os("ENVOY_BIN").is_none() {
        assert!(
            table.contains(&default_envoy_version()),
            "Envoy's version:\n{table}"
        );
    }

    let out = isobar(&["status", "--debug-address", &debug, "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status -o json: {e}\n{}", text(&out)));
    assert_eq!(json["objects"][0]["status"], "INVALID", "{json:#}");
    assert_eq!(json["objects"][0]["name"], "broken", "{json:#}");
    assert_eq!(json["envoys"][0]["inSync"], true, "{json:#}");

    // The admin API is not on the metrics address.
    let main = stack.isobar.http_addr();
    let refused = async {
        let mut c = AdminClient::connect(format!("http://{main}")).await.ok()?;
        c.get_snapshot(v1::GetSnapshotRequest {}).await.ok()
    }
    .await;
    assert!(refused.is_none(), "the admin API answered on {main}");

    // Nothing listening: exit 2 with a message that says what to check.
    let port = isobar_harness::ports::free_port().expect("a free port");
    let out = isobar(&["status", "--debug-address", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is `isobar serve` running"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn watch_streams_a_snapshot_after_a_manifest_edit() {
    let f = valid_and_broken();
    let stack = f.start_stack().await;
    let mut admin = client(stack.isobar.debug_addr()).await;
    let mut stream = admin
        .watch(v1::WatchRequest {})
        .await
        .expect("Watch")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("first snapshot")
        .expect("a snapshot");
    assert!(first.objects.iter().any(|o| o.name == "web"), "{first:?}");

    f.write(
        "new.yaml",
        &ingress_yaml("new", Some("new.example.com"), &[("/", "Prefix", "web")]),
    );
    let seen = tokio::time::timeout(CONVERGE, async {
        while let Some(s) = stream.message().await.expect("the stream stays up") {
            if s.virtual_hosts
                .iter()
                .any(|vh| vh.host == "new.example.com")
            {
                return Some(s);
            }
        }
        None
    })
    .await
    .expect("a snapshot with the new host before the deadline")
    .expect("the stream ended");
    let new = seen
        .objects
        .iter()
        .find(|o| o.name == "new")
        .expect("the new Ingress");
    assert_eq!(new.status, v1::Validity::Valid as i32);
    let route = &seen
        .virtual_hosts
        .iter()
        .find(|vh| vh.host == "new.example.com")
        .unwrap()
        .routes[0];
    let cluster = seen
        .clusters
        .iter()
        .find(|c| c.name == route.clusters[0].cluster)
        .expect("the route's cluster");
    assert_eq!(cluster.endpoints.len(), 1, "{cluster:?}");
    assert!(
        cluster.endpoints[0].starts_with("127.0.0.1:"),
        "{cluster:?}"
    );
}

#[tokio::test]
async fn diff_against_a_running_isobar_shows_only_what_an_edit_changes() {
    let f = valid_and_broken();
    // Gateway API objects too: their statuses compare alike on both sides.
    let port = isobar_harness::ports::free_port().expect("a free port");
    f.write(
        "gateway.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: isobar}}\nspec: {{controllerName: isobar.dev/gateway-controller}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
             spec: {{gatewayClassName: isobar, listeners: [{{name: web, protocol: HTTP, port: {port}}}]}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\n\
             spec: {{parentRefs: [{{name: gw}}], hostnames: [gw.example.com], rules: [{{backendRefs: [{{name: web, port: 80}}]}}]}}\n"
        ),
    );
    let stack = f.start_stack().await;
    let debug = stack.isobar.debug_addr().to_string();
    let ports = stack.ports();
    let (http, https) = (ports.envoy_http.to_string(), ports.envoy_https.to_string());
    let dir = f.manifests_dir().to_str().unwrap().to_string();
    let diff = |dir: &str| {
        isobar(&[
            "diff",
            "--against",
            &debug,
            "--envoy-service-http-address",
            "127.0.0.1",
            "--envoy-service-http-port",
            &http,
            "--envoy-service-https-address",
            "127.0.0.1",
            "--envoy-service-https-port",
            &https,
            dir,
        ])
    };
    // The directory isobar serves: no change (once the first build is in the cache).
    let mut last = String::new();
    let same = wait_for(CONVERGE, "no difference", || {
        let out = diff(&dir);
        last = text(&out);
        (out.status.code() == Some(0)).then_some(())
    });
    assert!(
        same.is_ok(),
        "the served directory differs from itself:\n{last}"
    );

    // An edited copy: the route changes, the served isobar is untouched.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("web.example.com", "www.example.com");
        std::fs::write(copy.path().join(name), text).unwrap();
    }
    let out = diff(copy.path().to_str().unwrap());
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("~ route ingress_http"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('-') && l.contains("web.example.com")),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('+') && l.contains("www.example.com")),
        "{report}"
    );
}
