//! Shared pieces of the e2e tests: a per-test manifests directory with echo backends, the stack
//! on top of it, Ingress YAML, and requests that poll until routing converges.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod kube;
pub mod load;
pub mod xds;

use std::path::{Path, PathBuf};
use std::time::Duration;

use isobar_harness::echo::EchoBackend;
use isobar_harness::http::{send, RequestSpec, Response};
use isobar_harness::manifests::{service_and_endpoints_yaml, write_manifest};
use isobar_harness::{wait_for_async, Stack, StackOptions};

/// The namespace every fixture lives in.
pub const NS: &str = "default";
/// Deadline for routing to converge after a start or an edit (debounce + ADS push + Envoy apply).
pub const CONVERGE: Duration = Duration::from_secs(20);

pub fn isobar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobar"))
}

pub fn echo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobar-echo"))
}

/// A test's own manifests directory, and a separate one for backend logs (so logs never wake
/// isobar's directory watcher).
#[derive(Debug)]
pub struct Fixture {
    manifests: tempfile::TempDir,
    logs: tempfile::TempDir,
    backends: Vec<EchoBackend>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            manifests: tempfile::Builder::new()
                .prefix("isobar-e2e-manifests-")
                .tempdir()
                .expect("creating the manifests dir"),
            logs: tempfile::Builder::new()
                .prefix("isobar-e2e-logs-")
                .tempdir()
                .expect("creating the logs dir"),
            backends: Vec::new(),
        }
    }

    pub fn manifests_dir(&self) -> &Path {
        self.manifests.path()
    }

    /// Starts echo backend `name` and writes `svc-NAME.yaml`: Service `NAME` (port 80, named
    /// `http`) whose Endpoints point at the backend.
    pub fn backend(&mut self, name: &str) {
        let echo = EchoBackend::start(&echo_bin(), name, self.logs.path())
            .unwrap_or_else(|e| panic!("starting echo backend {name}: {e}"));
        self.write(
            &format!("svc-{name}.yaml"),
            &service_and_endpoints_yaml(NS, name, "http", 80, echo.port()),
        );
        self.backends.push(echo);
    }

    /// Starts echo backend `name` without writing a manifest, and returns its port (for
    /// Endpoints the test writes itself).
    pub fn echo(&mut self, name: &str) -> u16 {
        let echo = EchoBackend::start(&echo_bin(), name, self.logs.path())
            .unwrap_or_else(|e| panic!("starting echo backend {name}: {e}"));
        let port = echo.port();
        self.backends.push(echo);
        port
    }

    /// Writes (atomically replaces) a manifest file.
    pub fn write(&self, file: &str, yaml: &str) -> PathBuf {
        write_manifest(self.manifests.path(), file, yaml)
            .unwrap_or_else(|e| panic!("writing {file}: {e}"))
    }

    /// Removes a manifest file.
    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests.path().join(file))
            .unwrap_or_else(|e| panic!("removing {file}: {e}"));
    }

    /// isobar + Envoy (LIVE) serving this directory.
    pub async fn start_stack(&self) -> Stack {
        self.start_stack_with_isobar_args(&[]).await
    }

    /// Like [`Fixture::start_stack`], with further `isobar serve` arguments.
    pub async fn start_stack_with_isobar_args(&self, args: &[&str]) -> Stack {
        let mut opts = self.stack_options();
        opts.isobar_args = args.iter().map(|a| a.to_string()).collect();
        Stack::start(opts)
            .await
            .unwrap_or_else(|e| panic!("starting the stack: {e}"))
    }

    /// The options [`Fixture::start_stack`] uses, to adjust before [`Stack::start`].
    pub fn stack_options(&self) -> StackOptions {
        StackOptions::manifests(
            isobar_bin(),
            echo_bin(),
            self.manifests.path().to_path_buf(),
        )
    }
}

/// A valid Ingress `web` on `web.example.com` and an invalid one, `broken` (its backend port 70000
/// does not exist), over echo backend `web`: what the admin API and the operator page must show.
pub fn valid_and_broken() -> Fixture {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    f.write(
        "broken.yaml",
        &ingress_yaml(
            "broken",
            Some("broken.example.com"),
            &[("/", "Prefix", "web")],
        )
        .replace("number: 80", "number: 70000"),
    );
    f
}

/// One path of an Ingress rule: `(path, pathType, service)`; the service's port 80.
pub type PathSpec<'a> = (&'a str, &'a str, &'a str);

/// An Ingress with one rule for `host` (`None`: every host) and the given paths.
pub fn ingress_yaml(name: &str, host: Option<&str>, paths: &[PathSpec]) -> String {
    ingress_with_tls_yaml(name, host, paths, None)
}

/// Like [`ingress_yaml`], with `tls: [{hosts: [host], secretName}]` when `tls_secret` is given.
pub fn ingress_with_tls_yaml(
    name: &str,
    host: Option<&str>,
    paths: &[PathSpec],
    tls_secret: Option<&str>,
) -> String {
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n"
    );
    if let (Some(secret), Some(host)) = (tls_secret, host) {
        y.push_str(&format!(
            "  tls:\n  - hosts:\n    - {host:?}\n    secretName: {secret}\n"
        ));
    }
    y.push_str("  rules:\n");
    match host {
        Some(h) => y.push_str(&format!("  - host: {h:?}\n    http:\n")),
        None => y.push_str("  - http:\n"),
    }
    y.push_str("      paths:\n");
    for (path, path_type, service) in paths {
        y.push_str(&format!(
            "      - path: {path:?}\n        pathType: {path_type}\n        backend:\n          service:\n            name: {service}\n            port:\n              number: 80\n"
        ));
    }
    y
}

/// A `kubernetes.io/tls` Secret with the PEMs in `stringData`.
pub fn tls_secret_yaml(name: &str, cert_pem: &str, key_pem: &str) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert_pem),
        indent(key_pem)
    )
}

/// `GET path` with `Host: host` through Envoy's HTTP listener.
pub async fn get(stack: &Stack, host: &str, path: &str) -> Response {
    send(&RequestSpec::get(stack.http_addr(), host, path))
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}\n{}", stack.log_tails(20)))
}

/// The echo backend answering `GET path` with `Host: host`, `None` for a non-echo answer.
async fn backend_of(stack: &Stack, host: &str, path: &str) -> Option<String> {
    send(&RequestSpec::get(stack.http_addr(), host, path))
        .await
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| r.backend())
}

/// Polls until `GET path` with `Host: host` is answered by echo backend `backend`.
pub async fn wait_routed_to(stack: &Stack, host: &str, path: &str, backend: &str) {
    let what = format!("{host}{path} to be routed to backend {backend}");
    let converged = wait_for_async(CONVERGE, &what, || async {
        Ok((backend_of(stack, host, path).await.as_deref() == Some(backend)).then_some(()))
    })
    .await;
    if let Err(e) = converged {
        panic!("{e}\n{}\n{}", last_nack(stack).await, stack.log_tails(30));
    }
}

/// isobar's record of the last configuration Envoy rejected, for failure messages.
pub async fn last_nack(stack: &Stack) -> String {
    match stack.isobar.get("/debug/xds").await {
        Ok(body) => {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            format!("isobar /debug/xds last_nack: {}", json["last_nack"])
        }
        Err(e) => format!("isobar /debug/xds: {e}"),
    }
}

/// Polls until `GET path` with `Host: host` gets status `status`.
pub async fn wait_status(stack: &Stack, host: &str, path: &str, status: u16) {
    let what = format!("{host}{path} to answer {status}");
    wait_for_async(CONVERGE, &what, || async {
        let r = send(&RequestSpec::get(stack.http_addr(), host, path)).await;
        Ok(r.ok().filter(|r| r.status == status).map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
}

/// Envoy's stat `name`; absent is a failure (a misspelt name must not read as 0).
pub async fn envoy_stat(stack: &Stack, name: &str) -> u64 {
    stack
        .envoy
        .stat(name)
        .await
        .unwrap_or_else(|e| panic!("Envoy stat {name}: {e}"))
        .unwrap_or_else(|| panic!("Envoy has no stat {name}\n{}", stack.log_tails(20)))
}

/// An un-labelled sample of `isobar`'s `/metrics` (0 when absent).
pub async fn isobar_metric(isobar: &isobar_harness::isobar::Isobar, name: &str) -> f64 {
    let text = isobar
        .metrics()
        .await
        .unwrap_or_else(|e| panic!("isobar /metrics: {e}"));
    metric(&text, name).unwrap_or(0.0)
}

/// The value of an un-labelled sample in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of every series of the metric family `name` (`name 3` and `name{labels} 3` lines), e.g.
/// all resource types of `isobar_xds_nacks_total`.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => &labelled[labelled.find('}')? + 1..],
                None => rest,
            };
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// isobar's `/debug/xds` as JSON.
pub async fn debug_xds(stack: &Stack) -> serde_json::Value {
    let body = stack
        .isobar
        .get("/debug/xds")
        .await
        .unwrap_or_else(|e| panic!("GET /debug/xds: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/debug/xds is not JSON ({e}): {body}"))
}

/// isobar's `/debug/status` as JSON.
pub async fn debug_status(stack: &Stack) -> serde_json::Value {
    let body = stack
        .isobar
        .get("/debug/status")
        .await
        .unwrap_or_else(|e| panic!("GET /debug/status: {e}"));
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/debug/status is not JSON ({e}): {body}"))
}

/// Waits until isobar's `/debug/xds` shows Envoy's ADS stream with the listeners ACKed, and returns
/// that `/debug/xds` document.
pub async fn wait_envoy_acked_listeners(stack: &Stack) -> serde_json::Value {
    wait_for_async(
        CONVERGE,
        "Envoy's ADS stream with LDS ACKed in /debug/xds",
        || async {
            let x = debug_xds(stack).await;
            let acked = x["streams"].as_array().into_iter().flatten().any(|s| {
                s["node"] == "envoy"
                    && !s["types"][isobar_harness::xds_client::LISTENER_TYPE]["acked_version"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty()
            });
            Ok(acked.then_some(x))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(40)))
}

/// Waits until Envoy has ACKed what isobar's cache holds now: for every type the cache has
/// resources of, Envoy's ADS stream reports an ACKed version equal to the cache's version of that
/// type. Returns that `/debug/xds` document.
///
/// Call it after something shows the rebuild of interest happened (its status, an error count, a
/// route it adds): from then on the cache holds that rebuild's result or a later one, and once
/// this returns Envoy serves it — so a check that follows observes what isobar pushed, instead of
/// racing the push. (Envoy subscribes to every resource isobar offers here — all clusters, the
/// route configurations its listeners name, their secrets — so the version of what it was sent is
/// the cache's version of the whole type.)
pub async fn wait_envoy_acked_current(stack: &Stack) -> serde_json::Value {
    use isobar_harness::xds_client::{
        CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE,
    };
    let types = [
        ("cds", CLUSTER_TYPE),
        ("eds", ENDPOINT_TYPE),
        ("lds", LISTENER_TYPE),
        ("rds", ROUTE_TYPE),
        ("sds", SECRET_TYPE),
    ];
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    let acked = wait_for_async(
        CONVERGE,
        "Envoy to ACK the versions isobar's cache holds (/debug/xds)",
        || async {
            let x = debug_xds(stack).await;
            // Listeners always exist once isobar has built anything: without them (or with the
            // document's shape changed) the comparison below would hold vacuously.
            let built = x["cache"]["lds"]["resources"].as_u64().unwrap_or(0) > 0;
            let done = built
                && x["streams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["node"] == "envoy")
                    .any(|s| {
                        types.iter().all(|(short, type_url)| {
                            let cache = &x["cache"][short];
                            cache["resources"].as_u64().unwrap_or(0) == 0
                                || s["types"][type_url]["acked_version"] == cache["version"]
                        })
                    });
            *last.lock().unwrap() = x.clone();
            Ok(done.then_some(x))
        },
    )
    .await;
    acked.unwrap_or_else(|e| {
        panic!(
            "{e}\nlast /debug/xds: {}\n{}",
            last.lock().unwrap(),
            stack.log_tails(40)
        )
    })
}
