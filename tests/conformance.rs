#![cfg(feature = "e2e")]
//! The data-driven conformance suite: every directory under `conformance/cases/` is one case,
//! run through a fresh isobar + Envoy stack once per xDS protocol variant (state of the world, then
//! delta: a stack each) on one Envoy version (`$ISOBAR_ENVOY_VERSION`, default 1.40.0). See
//! `conformance/README.md` for the case format.
//!
//! A case fails when any expectation fails, when a request that passed once fails in one of the
//! rounds that follow convergence, when a `flip:` loses a request, or when isobar's `/debug/xds`
//! records a NACK.
//! With `$ISOBAR_CONFORMANCE_REPORT` set, one JSON line per case is appended to that file:
//! `{case, version, xds_api, pass, reason, note, seconds}` (`note`: e.g. a flip's request counts).
//! `$ISOBAR_CONFORMANCE_CASES` (comma list) limits the run to the named cases,
//! `$ISOBAR_CONFORMANCE_XDS_APIS` (`sotw,delta` by default) to the named variants.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use isobar_harness::echo::{
    websocket_echo, EchoBackend, WebSocketOutcome, ECHO_COUNT_PATH, ECHO_KEY_HEADER,
};
use isobar_harness::envoy::{default_envoy_version, UnknownFields};
use isobar_harness::http::{send, RequestSpec, Response, Trust};
use isobar_harness::isobar::XdsApi;
use isobar_harness::load::{KeepAliveLoad, LoadCounts, LoadLimits};
use isobar_harness::manifests::{service_and_endpoints_yaml, write_manifest};
use isobar_harness::pki::TestCa;
use isobar_harness::xds_client::{ads_first_response, XdsClientTls, LISTENER_TYPE};
use isobar_harness::{wait_for_async, Stack, StackOptions};
use serde::Deserialize;

/// Deadline for one request's expectations to hold (routing converges within it).
const CONVERGE: Duration = Duration::from_secs(20);
/// Bound on one request (longer than any timeout a case provokes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one xDS probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Once every request of a case has passed (converged), the whole list is sent this many more
/// times in a row and every attempt must pass: polling alone would let a request that fails only
/// some of the time (a wrong endpoint in the pool, a flapping push) through on a lucky attempt.
const STABLE_ROUNDS: u32 = 3;
/// Bound on a whole `flip:` (all flips), and on its request loop.
const FLIP_BUDGET: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The case format.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    description: String,
    /// `http` (default) or `xds-refusal`.
    #[serde(default)]
    kind: Option<String>,
    /// Requests, checked in order.
    #[serde(default)]
    requests: Vec<CaseRequest>,
    /// xDS probes (`kind: xds-refusal`).
    #[serde(default)]
    steps: Vec<XdsStep>,
    /// Why this case is skipped (recorded as a pass with this reason), if it is.
    #[serde(default)]
    skip: Option<String>,
    /// After the requests: flip a route between two Services under a keep-alive request loop.
    #[serde(default)]
    flip: Option<Flip>,
}

/// `flip:` — manifests using `${flip}` are rewritten `times` times, alternating between the two
/// services (starting with the second; `${flip}` is the first before), each flip polled until `host`
/// is routed to it, while a keep-alive loop requests `host`. Any non-200 answer, any exchange
/// without one, or a non-zero `http.ingress_http.no_cluster` in Envoy fails the case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flip {
    host: String,
    /// Load the Gateway listener on `${port:NAME}` instead of isobar's Ingress HTTP listener.
    #[serde(default)]
    gateway_port: Option<String>,
    /// Two Services (the echo backend of each has the same name).
    services: [String; 2],
    times: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    #[serde(default = "get")]
    method: String,
    /// `http` (default) or `https`.
    #[serde(default)]
    scheme: Option<String>,
    host: String,
    /// Connect to the Gateway listener on `${port:NAME}` instead of isobar's Ingress listener of
    /// the scheme.
    #[serde(default)]
    gateway_port: Option<String>,
    /// HTTPS SNI; defaults to the host without its port.
    #[serde(default)]
    sni: Option<String>,
    path: String,
    /// Header values may contain `${unique}`, replaced by a fresh token per attempt.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `any` (default) or `ca`: verify against the case's CA.
    #[serde(default)]
    trust: Option<String>,
    /// Open a WebSocket instead of a plain request (`expect.status` 101 = upgraded).
    #[serde(default)]
    websocket: bool,
    /// After the expectations first hold, send this many more times; all must pass.
    #[serde(default)]
    repeat: Option<u32>,
    expect: Expect,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: Option<u16>,
    /// The status must not be this (e.g. 101 for a WebSocket that must not be upgraded).
    status_not: Option<u16>,
    backend: Option<String>,
    backend_path: Option<String>,
    backend_host: Option<String>,
    /// Whether the backend saw TLS.
    backend_tls: Option<bool>,
    #[serde(default)]
    backend_headers: BTreeMap<String, String>,
    /// Header values the response must carry (`null`: the header must be absent).
    #[serde(default)]
    response_headers: BTreeMap<String, Option<String>>,
    /// DNS SANs of the certificate the client was shown.
    certificate_dns: Option<Vec<String>>,
    /// The `location` header starts with this.
    location_prefix: Option<String>,
    /// Attempts the backend counted for this request's `x-echo-key` (read through Envoy at
    /// `/__echo/count` on the same host, over plain HTTP).
    attempts: Option<u64>,
    /// The client fails to connect or handshake (e.g. no certificate for the SNI).
    #[serde(default)]
    refused: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct XdsStep {
    /// `right-cert`, `other-ca`, `no-cert` or `plaintext`.
    client: String,
    /// `listeners` or `refused`.
    expect: String,
}

// ---------------------------------------------------------------------------------------------
// Per-case environment: echo backends, the CA, manifests with placeholders substituted.

struct CaseEnv {
    ca: TestCa,
    manifests: tempfile::TempDir,
    logs: tempfile::TempDir,
    backends: BTreeMap<String, EchoBackend>,
    /// `${port:NAME}`: a free port per name, for Gateway listeners.
    ports: BTreeMap<String, u16>,
    /// What `${flip}` stands for now (a `flip:` case's current Service).
    flip_to: Option<String>,
    /// Manifests using `${flip}`, unsubstituted, by file name: rewritten on every flip.
    flip_files: Vec<(String, String)>,
}

fn isobar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobar"))
}

fn echo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobar-echo"))
}

fn tmp(prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))
}

impl CaseEnv {
    fn new(name: &str) -> Result<CaseEnv, String> {
        Ok(CaseEnv {
            ca: TestCa::new(&format!("conformance {name} CA")).map_err(|e| e.to_string())?,
            manifests: tmp("isobar-conformance-manifests-")?,
            logs: tmp("isobar-conformance-logs-")?,
            backends: BTreeMap::new(),
            ports: BTreeMap::new(),
            flip_to: None,
            flip_files: Vec::new(),
        })
    }

    /// The port of plain echo backend `name`, started on first use.
    fn backend_port(&mut self, name: &str) -> Result<u16, String> {
        if !self.backends.contains_key(name) {
            let echo = EchoBackend::start(&echo_bin(), name, self.logs.path())
                .map_err(|e| format!("starting echo backend {name}: {e}"))?;
            self.backends.insert(name.to_string(), echo);
        }
        Ok(self.backends[name].port())
    }

    /// The port of TLS echo backend `name` with a certificate for `hosts` from the case CA.
    fn tls_backend_port(&mut self, name: &str, hosts: &[&str]) -> Result<u16, String> {
        if !self.backends.contains_key(name) {
            let (cert, key) = self.ca.issue_server(hosts).map_err(|e| e.to_string())?;
            let dir = self.logs.path().join(format!("tls-{name}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
            std::fs::write(&c, cert).map_err(|e| e.to_string())?;
            std::fs::write(&k, key).map_err(|e| e.to_string())?;
            let echo = EchoBackend::start_with_tls(
                &echo_bin(),
                name,
                &dir.join("logs"),
                Some((c.as_path(), k.as_path())),
            )
            .map_err(|e| format!("starting TLS echo backend {name}: {e}"))?;
            self.backends.insert(name.to_string(), echo);
        }
        Ok(self.backends[name].port())
    }

    /// A `kubernetes.io/tls` Secret `[ns/]name` for `hosts`, issued by the case CA.
    fn tls_secret(&self, name: &str, hosts: &[&str]) -> Result<String, String> {
        let (ns, name) = name.split_once('/').unwrap_or(("default", name));
        let (cert, key) = self.ca.issue_server(hosts).map_err(|e| e.to_string())?;
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        Ok(format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(&cert),
            indent(&key)
        ))
    }

    /// Replaces every `${kind:args}` placeholder in `text`.
    fn substitute(&mut self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unterminated placeholder in {:?}", &rest[start..]))?;
            let inner = &rest[start + 2..start + end];
            out.push_str(&self.expand(inner)?);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn expand(&mut self, placeholder: &str) -> Result<String, String> {
        let (kind, args) = placeholder.split_once(':').unwrap_or((placeholder, ""));
        let hosts = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
        match kind {
            // Endpoints port of plain echo backend NAME.
            "backend" => Ok(self.backend_port(args)?.to_string()),
            // A whole Service (port 80 named http) + Endpoints document for backend NAME,
            // `[ns/]name`.
            "service" => {
                let (ns, name) = args.split_once('/').unwrap_or(("default", args));
                let port = self.backend_port(name)?;
                Ok(service_and_endpoints_yaml(ns, name, "http", 80, port))
            }
            // A whole TLS Secret document: `${tls:[ns/]name:host1,host2}`.
            "tls" => {
                let (name, h) = args
                    .split_once(':')
                    .ok_or_else(|| format!("${{tls:NAME:HOSTS}} expected, got {placeholder}"))?;
                let h = hosts(h);
                self.tls_secret(name, &h.iter().map(String::as_str).collect::<Vec<_>>())
            }
            // Endpoints port of a TLS echo backend: `${tls-backend:name:host1,host2}`.
            "tls-backend" => {
                let (name, h) = args.split_once(':').ok_or_else(|| {
                    format!("${{tls-backend:NAME:HOSTS}} expected, got {placeholder}")
                })?;
                let h = hosts(h);
                let refs: Vec<&str> = h.iter().map(String::as_str).collect();
                Ok(self.tls_backend_port(name, &refs)?.to_string())
            }
            // A free loopback port for a Gateway listener, the same for every use of NAME.
            "port" => {
                if !self.ports.contains_key(args) {
                    let port = isobar_harness::ports::free_port().map_err(|e| e.to_string())?;
                    self.ports.insert(args.to_string(), port);
                }
                Ok(self.ports[args].to_string())
            }
            // The current Service of the case's `flip:`.
            "flip" => self
                .flip_to
                .clone()
                .ok_or_else(|| "${flip} needs a flip: section in case.yaml".to_string()),
            other => Err(format!(
                "unknown placeholder kind {other:?} in ${{{placeholder}}}"
            )),
        }
    }

    /// Copies `case_dir/manifests/*.yaml` into the manifests dir with placeholders substituted.
    fn write_manifests(&mut self, case_dir: &Path) -> Result<(), String> {
        let dir = case_dir.join("manifests");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => return Ok(()),
        };
        files.sort();
        for file in files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if text.contains("${flip}") {
                self.flip_files.push((name.clone(), text.clone()));
            }
            let text = self.substitute(&text)?;
            write_manifest(self.manifests.path(), &name, &text).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Rewrites the manifests that use `${flip}` with `${flip}` = `to`.
    fn flip(&mut self, to: &str) -> Result<(), String> {
        self.flip_to = Some(to.to_string());
        for (name, text) in self.flip_files.clone() {
            let text = self.substitute(&text)?;
            write_manifest(self.manifests.path(), &name, &text).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Checking requests.

/// A token no other attempt of this process gets (echo backends live for one case, so the
/// process-wide counter is enough; adding a clock reading to it, as before, let two attempts
/// collide and share an `x-echo-key` count).
fn unique_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    format!("k{}-{c}", std::process::id())
}

fn build_spec(
    stack: &Stack,
    env: &CaseEnv,
    r: &CaseRequest,
) -> Result<(RequestSpec, String), String> {
    let https = match r.scheme.as_deref().unwrap_or("http") {
        "http" => false,
        "https" => true,
        other => return Err(format!("unknown scheme {other:?}")),
    };
    let addr = match &r.gateway_port {
        Some(name) => {
            let port = env.ports.get(name).ok_or_else(|| {
                format!("gateway_port {name:?}: no ${{port:{name}}} in the manifests")
            })?;
            std::net::SocketAddr::from(([127, 0, 0, 1], *port))
        }
        None if https => stack.https_addr(),
        None => stack.http_addr(),
    };
    let mut spec = RequestSpec::get(addr, &r.host, &r.path);
    if https {
        spec = spec.https();
    }
    spec.method = r.method.clone();
    spec.sni = r.sni.clone();
    spec.timeout = REQUEST_TIMEOUT;
    let token = unique_token();
    for (k, v) in &r.headers {
        spec = spec.header(k, &v.replace("${unique}", &token));
    }
    spec.trust = match r.trust.as_deref().unwrap_or("any") {
        "any" => Trust::Any,
        "ca" => Trust::CaPem(env.ca.cert_pem().into_bytes()),
        other => return Err(format!("unknown trust {other:?}")),
    };
    Ok((spec, token))
}

/// One attempt: `Ok(())` when every expectation holds, `Err(what differed)` otherwise.
async fn attempt(stack: &Stack, env: &CaseEnv, r: &CaseRequest) -> Result<(), String> {
    let (spec, _) = build_spec(stack, env, r)?;
    let e = &r.expect;
    if r.websocket {
        let out = websocket_echo(
            spec.connect,
            &r.host,
            &r.path,
            "conformance",
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(|e| format!("websocket: {e}"))?;
        return match (out, e.status) {
            (WebSocketOutcome::Upgraded { reply, backend }, Some(101)) => {
                if reply != "conformance" {
                    return Err(format!("websocket echo {reply:?}"));
                }
                if let Some(b) = &e.backend {
                    if backend.as_deref() != Some(b) {
                        return Err(format!("websocket backend {backend:?}, expected {b}"));
                    }
                }
                Ok(())
            }
            (WebSocketOutcome::Upgraded { .. }, Some(s)) => {
                Err(format!("upgraded (101), expected {s}"))
            }
            (WebSocketOutcome::Upgraded { .. }, None) => Err("upgraded (101)".into()),
            (WebSocketOutcome::Refused { status, .. }, Some(s)) if status == s => Ok(()),
            (WebSocketOutcome::Refused { status, .. }, None)
                if e.status_not.is_some_and(|n| n != status) =>
            {
                Ok(())
            }
            (WebSocketOutcome::Refused { status, body, .. }, _) => {
                Err(format!("not upgraded: status {status} body {body}"))
            }
        };
    }
    let resp = match send(&spec).await {
        Ok(resp) if e.refused => {
            return Err(format!("expected a refusal, got status {}", resp.status))
        }
        Ok(resp) => resp,
        Err(_) if e.refused => return Ok(()),
        Err(err) => return Err(err.to_string()),
    };
    check_response(stack, &spec, e, &resp).await
}

async fn check_response(
    stack: &Stack,
    spec: &RequestSpec,
    e: &Expect,
    resp: &Response,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    let body = resp.json();
    let short = || {
        let t = resp.text();
        t.chars().take(300).collect::<String>()
    };
    if let Some(s) = e.status {
        if resp.status != s {
            diffs.push(format!("status {} (expected {s})", resp.status));
        }
    }
    if e.status_not == Some(resp.status) {
        diffs.push(format!("status {}", resp.status));
    }
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut check_field = |what: &str, got: Option<String>, want: &Option<String>| {
        if let Some(w) = want {
            if got.as_deref() != Some(w.as_str()) {
                diffs.push(format!("{what} {got:?} (expected {w:?})"));
            }
        }
    };
    check_field("backend", field("backend"), &e.backend);
    check_field("backend path", field("path"), &e.backend_path);
    check_field("backend host", field("host"), &e.backend_host);
    if let Some(t) = e.backend_tls {
        if body.get("tls").and_then(|v| v.as_bool()) != Some(t) {
            diffs.push(format!("backend tls {} (expected {t})", body["tls"]));
        }
    }
    for (k, v) in &e.backend_headers {
        let got = body["headers"]
            .get(k.to_ascii_lowercase())
            .and_then(|x| x.as_str());
        if got != Some(v.as_str()) {
            diffs.push(format!("backend header {k} {got:?} (expected {v:?})"));
        }
    }
    for (k, v) in &e.response_headers {
        let got = resp.header(k);
        if got != v.as_deref() {
            diffs.push(format!("response header {k} {got:?} (expected {v:?})"));
        }
    }
    if let Some(p) = &e.location_prefix {
        match resp.header("location") {
            Some(l) if l.starts_with(p.as_str()) => {}
            other => diffs.push(format!("location {other:?} (expected prefix {p:?})")),
        }
    }
    if let Some(want) = &e.certificate_dns {
        match resp.peer_certificate_names() {
            Ok(Some(names)) if &names.dns_names == want => {}
            Ok(Some(names)) => diffs.push(format!(
                "certificate DNS names {:?} (expected {want:?})",
                names.dns_names
            )),
            Ok(None) => diffs.push("no peer certificate".into()),
            Err(err) => diffs.push(format!("peer certificate: {err}")),
        }
    }
    if let Some(n) = e.attempts {
        let key = spec
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ECHO_KEY_HEADER))
            .map(|(_, v)| v.clone())
            .ok_or("expect.attempts needs an x-echo-key header")?;
        let count = RequestSpec::get(
            stack.http_addr(),
            &spec.host,
            &format!("{ECHO_COUNT_PATH}?key={key}"),
        );
        match send(&count).await {
            Ok(c) if c.text().trim() == n.to_string() => {}
            Ok(c) => diffs.push(format!(
                "backend attempts {} (expected {n})",
                c.text().trim()
            )),
            Err(err) => diffs.push(format!("reading the attempt count: {err}")),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; body: {}", diffs.join(", "), short()))
    }
}

/// "request N (METHOD scheme://hostpath)", for failure messages.
fn describe(i: usize, r: &CaseRequest) -> String {
    format!(
        "request {} ({} {}://{}{})",
        i + 1,
        r.method,
        r.scheme.as_deref().unwrap_or("http"),
        r.host,
        r.path
    )
}

/// Polls request `i` until it passes (routing converges), then sends it `repeat` more times.
async fn check_request(
    stack: &Stack,
    env: &CaseEnv,
    i: usize,
    r: &CaseRequest,
) -> Result<(), String> {
    let what = describe(i, r);
    let last = Mutex::new(String::from("no attempt"));
    let polled = wait_for_async(CONVERGE, &what, || async {
        match attempt(stack, env, r).await {
            Ok(()) => Ok(Some(())),
            Err(e) => {
                *last.lock().unwrap() = e;
                Ok(None)
            }
        }
    })
    .await;
    if polled.is_err() {
        return Err(format!(
            "{what}: not within {CONVERGE:?}: {}",
            last.lock().unwrap()
        ));
    }
    for n in 1..=r.repeat.unwrap_or(0) {
        attempt(stack, env, r)
            .await
            .map_err(|e| format!("{what}: repeat {n}: {e}"))?;
    }
    Ok(())
}

/// After convergence: [`STABLE_ROUNDS`] consecutive rounds of all `requests`, each attempt sent
/// once (no polling) and required to pass.
async fn check_stable(
    stack: &Stack,
    env: &CaseEnv,
    requests: &[CaseRequest],
) -> Result<(), String> {
    for round in 1..=STABLE_ROUNDS {
        for (i, r) in requests.iter().enumerate() {
            attempt(stack, env, r).await.map_err(|e| {
                format!(
                    "{}: failed in round {round} of {STABLE_ROUNDS} after the case had converged (intermittent): {e}",
                    describe(i, r)
                )
            })?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Flipping a route under load.

/// Polls `GET /` on `host` at `addr` until `backend` answers it.
async fn wait_routed_to(
    addr: std::net::SocketAddr,
    host: &str,
    backend: &str,
) -> Result<(), String> {
    let what = format!("{host} to be routed to {backend}");
    let last = Mutex::new(String::from("no attempt"));
    let polled = wait_for_async(CONVERGE, &what, || async {
        let mut spec = RequestSpec::get(addr, host, "/");
        spec.timeout = REQUEST_TIMEOUT;
        match send(&spec).await {
            Ok(r) if r.backend().as_deref() == Some(backend) => Ok(Some(())),
            Ok(r) => {
                *last.lock().unwrap() = format!("status {} from {:?}", r.status, r.backend());
                Ok(None)
            }
            Err(e) => {
                *last.lock().unwrap() = e.to_string();
                Ok(None)
            }
        }
    })
    .await;
    polled.map_err(|_| format!("{what}: not within {CONVERGE:?}: {}", last.lock().unwrap()))
}

/// Runs a case's `flip:` and returns the loop's counts as a note for the report.
async fn check_flip(stack: &Stack, env: &mut CaseEnv, flip: &Flip) -> Result<String, String> {
    let [first, second] = &flip.services;
    // The listener under load, and the HTTP connection manager's stats prefix (its name).
    let (addr, listener) = match &flip.gateway_port {
        Some(name) => {
            let port = env
                .ports
                .get(name)
                .ok_or_else(|| format!("flip gateway_port {name:?}: no ${{port:{name}}}"))?;
            (
                std::net::SocketAddr::from(([127, 0, 0, 1], *port)),
                format!("http-{port}"),
            )
        }
        None => (stack.http_addr(), "ingress_http".to_string()),
    };
    wait_routed_to(addr, &flip.host, first).await?;
    let limits = LoadLimits {
        max_time: FLIP_BUDGET,
        ..LoadLimits::default()
    };
    let load = KeepAliveLoad::start(addr, &flip.host, limits);
    let started = Instant::now();
    let mut flipped = Ok(());
    for i in 0..flip.times {
        let to = if i % 2 == 0 { second } else { first };
        flipped = match env.flip(to) {
            Ok(()) => wait_routed_to(addr, &flip.host, to).await,
            Err(e) => Err(e),
        }
        .map_err(|e| format!("flip {} of {}: {e}", i + 1, flip.times));
        if flipped.is_ok() && started.elapsed() > FLIP_BUDGET {
            flipped = Err(format!(
                "flip {} of {}: over the {FLIP_BUDGET:?} budget",
                i + 1,
                flip.times
            ));
        }
        if flipped.is_err() {
            break;
        }
    }
    let took = started.elapsed();
    let counts = load.stop().await;
    let no_cluster = stack
        .envoy
        .stat(&format!("http.{listener}.no_cluster"))
        .await
        .map_err(|e| format!("Envoy stat: {e}"));
    let note = format!(
        "{} flips in {:.1} s; {}; Envoy no_cluster {}",
        flip.times,
        took.as_secs_f64(),
        counts.summary(),
        match &no_cluster {
            Ok(Some(n)) => n.to_string(),
            Ok(None) => "absent".into(),
            Err(e) => e.clone(),
        }
    );
    flipped.map_err(|e| format!("{e}; {note}"))?;
    flip_verdict(&counts, first, second, no_cluster).map_err(|e| format!("{e}; {note}"))?;
    Ok(note)
}

fn flip_verdict(
    counts: &LoadCounts,
    first: &str,
    second: &str,
    no_cluster: Result<Option<u64>, String>,
) -> Result<(), String> {
    if counts.failures() > 0 {
        return Err(format!(
            "{} request(s) failed under the flips (first errors: {:?})",
            counts.failures(),
            &counts.errors[..counts.errors.len().min(3)]
        ));
    }
    if counts.by(first) == 0 || counts.by(second) == 0 {
        return Err(format!(
            "the request loop did not see both {first} and {second}"
        ));
    }
    match no_cluster? {
        Some(0) => Ok(()),
        Some(n) => Err(format!("Envoy counted http.ingress_http.no_cluster = {n}")),
        None => Err("Envoy has no http.ingress_http.no_cluster stat".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// xDS refusal probes.

async fn check_xds_step(stack: &Stack, i: usize, step: &XdsStep) -> Result<(), String> {
    let certs = stack.certs();
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let ca = read(&certs.ca_cert)?;
    let tls = match step.client.as_str() {
        "right-cert" => Some(XdsClientTls {
            ca_pem: Some(ca),
            client_cert_pem: Some(read(&certs.envoy_cert)?),
            client_key_pem: Some(read(&certs.envoy_key)?),
            server_name: "isobar".into(),
        }),
        "other-ca" => {
            let other = TestCa::new("not isobar's CA").map_err(|e| e.to_string())?;
            let (cert, key) = other.issue_client("envoy").map_err(|e| e.to_string())?;
            Some(XdsClientTls {
                ca_pem: Some(ca),
                client_cert_pem: Some(cert.into_bytes()),
                client_key_pem: Some(key.into_bytes()),
                server_name: "isobar".into(),
            })
        }
        "no-cert" => Some(XdsClientTls {
            ca_pem: Some(ca),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: "isobar".into(),
        }),
        "plaintext" => None,
        other => return Err(format!("step {}: unknown client {other:?}", i + 1)),
    };
    let what = format!("step {} ({} → {})", i + 1, step.client, step.expect);
    let result =
        ads_first_response(stack.isobar.xds_addr(), tls, LISTENER_TYPE, PROBE_TIMEOUT).await;
    match (step.expect.as_str(), result) {
        ("refused", Err(_)) => Ok(()),
        ("refused", Ok(r)) => Err(format!(
            "{what}: got a response with {} resources",
            r.resources.len()
        )),
        ("listeners", Ok(r)) if !r.resources.is_empty() && r.type_url == LISTENER_TYPE => Ok(()),
        ("listeners", Ok(r)) => Err(format!("{what}: no listeners in {r:?}")),
        ("listeners", Err(e)) => Err(format!("{what}: {e}")),
        (other, _) => Err(format!("{what}: unknown expectation {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.

async fn nack_check(stack: &Stack) -> Result<(), String> {
    let body = stack
        .isobar
        .get("/debug/xds")
        .await
        .map_err(|e| format!("GET /debug/xds: {e}"))?;
    let j: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("/debug/xds is not JSON ({e})"))?;
    match j["nacks"].as_u64() {
        Some(0) => Ok(()),
        Some(n) => Err(format!(
            "Envoy NACKed {n} time(s): last_nack {}",
            j["last_nack"]
        )),
        None => Err(format!("no nacks count in /debug/xds: {body}")),
    }
}

/// The running Envoy reports `version` (so the matrix really tests each version) and refuses
/// unknown fields (so a case's updates would be NACKed if isobar sent any).
async fn envoy_is(stack: &Stack, version: &str) -> Result<(), String> {
    let info = stack
        .envoy
        .admin_get("/server_info")
        .await
        .map_err(|e| format!("Envoy /server_info: {e}"))?;
    let j: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
    let reported = j["version"].as_str().unwrap_or_default();
    if !reported.contains(&format!("/{version}/")) {
        return Err(format!(
            "Envoy reports version {reported:?}, expected {version}"
        ));
    }
    match j["command_line_options"]["reject_unknown_dynamic_fields"].as_bool() {
        Some(true) => Ok(()),
        other => Err(format!(
            "Envoy's reject_unknown_dynamic_fields is {other:?}, expected true"
        )),
    }
}

/// The running Envoy's bootstrap asks for `api`'s ADS (so the matrix really tests each variant).
async fn envoy_speaks(stack: &Stack, api: XdsApi) -> Result<(), String> {
    let want = match api {
        XdsApi::Sotw => "GRPC",
        XdsApi::Delta => "DELTA_GRPC",
    };
    let dump = stack
        .envoy
        .config_dump()
        .await
        .map_err(|e| format!("Envoy /config_dump: {e}"))?;
    let api_type = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".BootstrapConfigDump"))
        })
        .map(|c| c["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"].clone())
        .unwrap_or_default();
    if api_type == want {
        Ok(())
    } else {
        Err(format!(
            "Envoy's bootstrap has ads_config.api_type {api_type}, expected {want}"
        ))
    }
}

/// How a case that did not fail ended.
enum Passed {
    /// Every expectation held; with a note for the report (e.g. a flip's counts), if any.
    Ran(Option<String>),
    /// Skipped, for this reason.
    Skipped(String),
}

async fn run_case(dir: &Path, version: &str, api: XdsApi) -> Result<Passed, String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(dir.join("case.yaml"))
        .map_err(|e| format!("reading case.yaml: {e}"))?;
    let case: Case =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("parsing case.yaml: {e}"))?;
    if let Some(why) = case.skip {
        return Ok(Passed::Skipped(why));
    }
    let _ = &case.description;
    let mut env = CaseEnv::new(&name)?;
    env.flip_to = case.flip.as_ref().map(|f| f.services[0].clone());
    env.write_manifests(dir)?;
    let mut opts =
        StackOptions::manifests(isobar_bin(), echo_bin(), env.manifests.path().to_path_buf());
    opts.envoy_version = Some(version.to_string());
    opts.xds_api = Some(api);
    // Stricter than deployed (`--ignore-unknown-dynamic-fields`): a field this Envoy version does
    // not know, in anything isobar sends, makes it NACK, and the case fail.
    opts.envoy_unknown_fields = UnknownFields::Reject;
    let stack = Stack::start(opts)
        .await
        .map_err(|e| format!("starting the stack: {e}"))?;
    let outcome = async {
        envoy_is(&stack, version).await?;
        envoy_speaks(&stack, api).await?;
        let mut note = None;
        match case.kind.as_deref().unwrap_or("http") {
            "http" => {
                for (i, r) in case.requests.iter().enumerate() {
                    check_request(&stack, &env, i, r).await?;
                }
                check_stable(&stack, &env, &case.requests).await?;
                if let Some(flip) = &case.flip {
                    note = Some(check_flip(&stack, &mut env, flip).await?);
                }
            }
            "xds-refusal" => {
                for (i, s) in case.steps.iter().enumerate() {
                    check_xds_step(&stack, i, s).await?;
                }
            }
            other => return Err(format!("unknown case kind {other:?}")),
        }
        nack_check(&stack).await.map(|()| note)
    }
    .await;
    match outcome {
        Ok(note) => Ok(Passed::Ran(note)),
        Err(e) => {
            // The NACK record explains most routing failures.
            let nack = nack_check(&stack).await.err().unwrap_or_default();
            Err(if nack.is_empty() || e.contains("NACK") {
                e
            } else {
                format!("{e}; {nack}")
            })
        }
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases")
}

/// The xDS variants to run every case in: `$ISOBAR_CONFORMANCE_XDS_APIS` (comma list), by default
/// both. An unknown name fails the suite.
fn xds_apis() -> Vec<XdsApi> {
    match std::env::var("ISOBAR_CONFORMANCE_XDS_APIS") {
        Ok(list) if !list.trim().is_empty() => {
            let apis: Vec<XdsApi> = list
                .split(',')
                .map(|a| {
                    a.trim().parse().unwrap_or_else(|_| {
                        panic!(
                            "ISOBAR_CONFORMANCE_XDS_APIS={list:?}: {a:?} is neither sotw nor delta"
                        )
                    })
                })
                .collect();
            apis
        }
        _ => XdsApi::ALL.to_vec(),
    }
}

fn discover() -> Vec<PathBuf> {
    let only: Option<Vec<String>> = std::env::var("ISOBAR_CONFORMANCE_CASES")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|c| c.trim().to_string()).collect());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("reading conformance/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.yaml").is_file())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            only.as_ref().is_none_or(|o| o.contains(&n))
        })
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cases_pass_on_this_envoy() {
    let version = default_envoy_version();
    let cases = discover();
    assert!(
        !cases.is_empty(),
        "no cases under {}",
        cases_dir().display()
    );
    let mut report = std::env::var_os("ISOBAR_CONFORMANCE_REPORT")
        .filter(|p| !p.is_empty())
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .unwrap_or_else(|e| panic!("opening {}: {e}", PathBuf::from(&p).display()))
        });
    let apis = xds_apis();
    let mut failed = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // A separate stack per variant: a case passes or fails in each on its own.
        for &api in &apis {
            let started = Instant::now();
            let result = run_case(dir, &version, api).await;
            let seconds = started.elapsed().as_secs_f64();
            let (pass, reason, note) = match result {
                Ok(Passed::Ran(note)) => (true, String::new(), note.unwrap_or_default()),
                Ok(Passed::Skipped(skip)) => (true, format!("skipped: {skip}"), String::new()),
                Err(e) => (false, format!("{api} ADS: {e}"), String::new()),
            };
            println!(
                "conformance {name} on Envoy {version} ({api} ADS): {} ({seconds:.1} s){}",
                if pass { "pass" } else { "FAIL" },
                [&reason, &note]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!(": {s}"))
                    .collect::<String>()
            );
            if let Some(f) = report.as_mut() {
                let line = serde_json::json!({
                    "case": name,
                    "version": version,
                    "xds_api": api.as_flag(),
                    "pass": pass,
                    "reason": reason,
                    "note": note,
                    "seconds": (seconds * 10.0).round() / 10.0,
                });
                writeln!(f, "{line}").expect("writing the conformance report");
            }
            if !pass {
                failed.push(format!("{name}: {reason}"));
            }
        }
    }
    let runs = cases.len() * apis.len();
    let apis: Vec<&str> = apis.iter().map(|a| a.as_flag()).collect();
    assert!(
        failed.is_empty(),
        "{} of {runs} conformance runs ({} cases × {}) failed on Envoy {version}:\n{}",
        failed.len(),
        cases.len(),
        apis.join(", "),
        failed.join("\n")
    );
}
