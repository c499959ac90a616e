#![cfg(feature = "e2e")]
//! Certificate rotation of the secure split deployment with a real Envoy, without dropping a
//! request: Envoy is bootstrapped with `--resources-dir` (its client certificate and CA are
//! file-based SDS resources), isobar re-reads its files every 200 ms. New leaves from the same CA,
//! then a CA rollover through a bundle; after each step isobar is restarted so Envoy must open a new
//! mTLS xDS connection with what is on disk now, and configuration must still flow.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isobar::tls::certgen::{generate_ca, issue_leaf, write_atomically, Ca, CertgenOptions, Leaf};
use isobar_harness::http::{send, RequestSpec};
use isobar_harness::xds_client::{ads_first_response, XdsClientTls, LISTENER_TYPE};
use isobar_harness::{wait_for_async, Stack, StackOptions};
use time::OffsetDateTime;

use common::{
    echo_bin, ingress_yaml, isobar_bin, wait_envoy_acked_listeners, wait_routed_to, Fixture,
    CONVERGE,
};

/// The host the background load requests.
const LOAD_HOST: &str = "web.example.com";
/// Bound on the background load: it stops after this long or this many requests.
const LOAD_MAX_TIME: Duration = Duration::from_secs(240);
const LOAD_MAX_REQUESTS: u64 = 100_000;
/// Pause between two background requests (pacing, not synchronisation).
const LOAD_PACE: Duration = Duration::from_millis(10);
/// Requests each step must see after its change before the next one starts.
const MIN_PER_STEP: u64 = 20;

/// Requests per step: (step, ok, failed), when each step started, and the first failures.
#[derive(Debug, Default)]
struct Tally {
    steps: Vec<(String, u64, u64)>,
    started: Vec<Instant>,
    failures: Vec<String>,
}

struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Sends `GET /` with `Host: web.example.com` through Envoy until stopped (or bounded), each
    /// answered by backend `web` with 200 counting as ok.
    fn start(stack: &Stack) -> Load {
        let tally = Arc::new(Mutex::new(Tally {
            steps: vec![("baseline".to_string(), 0, 0)],
            started: vec![Instant::now()],
            failures: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let addr = stack.http_addr();
        let (t, s) = (tally.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut sent = 0u64;
            let mut pace = tokio::time::interval(LOAD_PACE);
            while !s.load(Ordering::SeqCst)
                && start.elapsed() < LOAD_MAX_TIME
                && sent < LOAD_MAX_REQUESTS
            {
                pace.tick().await;
                let mut spec = RequestSpec::get(addr, LOAD_HOST, "/");
                spec.timeout = Duration::from_secs(5);
                let result = send(&spec).await;
                sent += 1;
                let failure = match &result {
                    Ok(r) if r.status == 200 && r.backend().as_deref() == Some("web") => None,
                    Ok(r) => Some(format!("status {}: {}", r.status, r.text())),
                    Err(e) => Some(e.to_string()),
                };
                let mut tally = t.lock().unwrap();
                let elapsed = start.elapsed();
                let step = tally.steps.last_mut().expect("a step");
                match failure {
                    None => step.1 += 1,
                    Some(why) => {
                        step.2 += 1;
                        let label = step.0.clone();
                        if tally.failures.len() < 20 {
                            tally
                                .failures
                                .push(format!("[{label} at {elapsed:?}] {why}"));
                        }
                    }
                }
            }
        });
        Load { tally, stop, task }
    }

    /// Starts counting requests under a new step.
    fn step(&self, name: &str) {
        let mut tally = self.tally.lock().unwrap();
        tally.steps.push((name.to_string(), 0, 0));
        tally.started.push(Instant::now());
    }

    /// Waits until the current step has seen [`MIN_PER_STEP`] requests.
    async fn wait_some(&self) {
        wait_for_async(
            CONVERGE,
            "background requests in the current step",
            || async {
                let t = self.tally.lock().unwrap();
                let (_, ok, failed) = t.steps.last().expect("a step");
                Ok((ok + failed >= MIN_PER_STEP).then_some(()))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: is the load loop running? {:?}", self.tally));
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the load task panicked");
        Arc::try_unwrap(self.tally)
            .expect("the load task is done")
            .into_inner()
            .unwrap()
    }
}

/// Normalised hex serial: lower case, no colons, no leading zeros (Envoy prints BN_bn2hex, isobar
/// the DER bytes).
fn norm(serial: &str) -> String {
    let s: String = serial
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    s.trim_start_matches('0').to_string()
}

/// Serials of every certificate in a PEM document.
fn serials(pem: &str) -> Vec<String> {
    isobar::tls::pem::expiries("test PEM", pem.as_bytes())
        .expect("parsing a PEM the test wrote")
        .into_iter()
        .map(|e| norm(&e.serial))
        .collect()
}

fn serial(pem: &str) -> String {
    serials(pem).remove(0)
}

/// `isobar_certificate_expiry_seconds` serials by `cert` label (`serving` or `ca`), sorted.
async fn isobar_serials(stack: &Stack, cert: &str) -> Vec<String> {
    let text = stack.isobar.metrics().await.unwrap_or_default();
    let prefix = format!("isobar_certificate_expiry_seconds{{cert=\"{cert}\",serial=\"");
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(norm)
        .collect();
    out.sort();
    out
}

async fn wait_isobar_serials(stack: &Stack, cert: &str, mut want: Vec<String>) {
    want.sort();
    let what = format!("isobar /metrics {cert} serials {want:?}");
    wait_for_async(CONVERGE, &what, || async {
        Ok((isobar_serials(stack, cert).await == want).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.isobar.log_tail(30)));
}

/// Envoy's `/certs`: (client certificate serials, CA serials), each sorted.
async fn envoy_serials(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let body = stack.envoy.admin_get("/certs").await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut chain = Vec::new();
    let mut ca = Vec::new();
    for ctx in json["certificates"].as_array().into_iter().flatten() {
        for (key, out) in [("cert_chain", &mut chain), ("ca_cert", &mut ca)] {
            for c in ctx[key].as_array().into_iter().flatten() {
                if let Some(s) = c["serial_number"].as_str() {
                    out.push(norm(s));
                }
            }
        }
    }
    chain.sort();
    ca.sort();
    (chain, ca)
}

async fn wait_envoy_serials(stack: &Stack, mut chain: Vec<String>, mut ca: Vec<String>) {
    chain.sort();
    ca.sort();
    let what = format!("Envoy /certs: client certificate {chain:?}, CA {ca:?}");
    let converged = wait_for_async(CONVERGE, &what, || async {
        Ok((envoy_serials(stack).await == (chain.clone(), ca.clone())).then_some(()))
    })
    .await;
    if let Err(e) = converged {
        let now = stack.envoy.admin_get("/certs").await.unwrap_or_default();
        panic!("{e}\nEnvoy /certs now: {now}\n{}", stack.log_tails(30));
    }
}

/// Restarts isobar and waits until Envoy's new ADS stream has ACKed the listeners, with no TLS
/// handshake refused by the new process.
async fn restart_and_wait_reconnect(stack: &mut Stack) {
    stack
        .restart_isobar()
        .await
        .unwrap_or_else(|e| panic!("restarting isobar: {e}"));
    let xds = wait_envoy_acked_listeners(stack).await;
    assert_eq!(xds["nacks"], 0, "{xds}");
    assert_eq!(xds["tls_handshake_failures"], 0, "{xds}");
}

fn write_file(path: &std::path::Path, content: &str, mode: u32) {
    write_atomically(path, content.as_bytes(), mode)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Issues isobar's and Envoy's leaves from `ca` and moves them into place (key, then
/// certificate); returns (isobar serial, envoy serial).
fn rotate_leaves(stack: &Stack, ca: &Ca) -> (String, String) {
    let options = CertgenOptions::default();
    let now = OffsetDateTime::now_utc();
    let certs = stack.certs().clone();
    let (isobar_cert, isobar_key) =
        issue_leaf(ca, Leaf::Isobar, &options, now).expect("issuing isobar's leaf");
    let (envoy_cert, envoy_key) =
        issue_leaf(ca, Leaf::Envoy, &options, now).expect("issuing Envoy's leaf");
    write_file(&certs.isobar_key, &isobar_key, 0o600);
    write_file(&certs.isobar_cert, &isobar_cert, 0o644);
    write_file(&certs.envoy_key, &envoy_key, 0o600);
    write_file(&certs.envoy_cert, &envoy_cert, 0o644);
    (serial(&isobar_cert), serial(&envoy_cert))
}

#[tokio::test]
async fn leaf_and_ca_rotation_keep_envoy_serving_and_receiving_config() {
    let started = Instant::now();
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some(LOAD_HOST), &[("/", "Prefix", "web")]),
    );
    let mut opts =
        StackOptions::manifests(isobar_bin(), echo_bin(), f.manifests_dir().to_path_buf());
    opts.isobar_args = vec!["--tls-reload-interval".into(), "200ms".into()];
    opts.envoy_sds_files = true;
    let mut stack = Stack::start(opts)
        .await
        .unwrap_or_else(|e| panic!("starting the stack: {e}"));
    wait_routed_to(&stack, LOAD_HOST, "/", "web").await;

    let certs = stack.certs().clone();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("reading a cert file");
    let ca1 = Ca {
        cert: read(&certs.ca_cert),
        key: read(&certs.ca_key),
    };
    let ca1_serial = serial(&ca1.cert);
    // Envoy really uses the SDS files, and both sides start from certgen's set.
    wait_isobar_serials(&stack, "serving", vec![serial(&read(&certs.isobar_cert))]).await;
    wait_isobar_serials(&stack, "ca", vec![ca1_serial.clone()]).await;
    wait_envoy_serials(
        &stack,
        vec![serial(&read(&certs.envoy_cert))],
        vec![ca1_serial.clone()],
    )
    .await;

    let load = Load::start(&stack);
    load.wait_some().await;

    // (a) New leaves from the same CA.
    load.step("a: new leaves, same CA");
    let (isobar_serial, envoy_serial) = rotate_leaves(&stack, &ca1);
    wait_isobar_serials(&stack, "serving", vec![isobar_serial]).await;
    wait_envoy_serials(&stack, vec![envoy_serial], vec![ca1_serial.clone()]).await;
    load.wait_some().await;
    load.step("a: isobar restarted");
    restart_and_wait_reconnect(&mut stack).await;
    f.write(
        "rot-a.yaml",
        &ingress_yaml(
            "rot-a",
            Some("rot-a.example.com"),
            &[("/", "Prefix", "web")],
        ),
    );
    wait_routed_to(&stack, "rot-a.example.com", "/", "web").await;
    load.wait_some().await;

    // (b) CA rollover: trust both, move the leaves to the new CA, then drop the old CA.
    load.step("b1: CA bundle (old + new)");
    let ca2 = generate_ca(&CertgenOptions::default(), OffsetDateTime::now_utc())
        .expect("generating the new CA");
    let ca2_serial = serial(&ca2.cert);
    let bundle = format!("{}{}", ca1.cert, ca2.cert);
    write_file(&certs.ca_cert, &bundle, 0o644);
    let both = vec![ca1_serial.clone(), ca2_serial.clone()];
    wait_isobar_serials(&stack, "ca", both.clone()).await;
    let envoy_chain_now = envoy_serials(&stack).await.0;
    wait_envoy_serials(&stack, envoy_chain_now, both.clone()).await;
    load.wait_some().await;

    load.step("b2: leaves from the new CA");
    write_file(&certs.ca_key, &ca2.key, 0o600);
    let (isobar_serial, envoy_serial) = rotate_leaves(&stack, &ca2);
    wait_isobar_serials(&stack, "serving", vec![isobar_serial]).await;
    wait_envoy_serials(&stack, vec![envoy_serial.clone()], both.clone()).await;
    load.wait_some().await;
    load.step("b2: isobar restarted");
    restart_and_wait_reconnect(&mut stack).await;
    f.write(
        "rot-b.yaml",
        &ingress_yaml(
            "rot-b",
            Some("rot-b.example.com"),
            &[("/", "Prefix", "web")],
        ),
    );
    wait_routed_to(&stack, "rot-b.example.com", "/", "web").await;
    load.wait_some().await;

    load.step("b3: new CA only");
    write_file(&certs.ca_cert, &ca2.cert, 0o644);
    wait_isobar_serials(&stack, "ca", vec![ca2_serial.clone()]).await;
    wait_envoy_serials(&stack, vec![envoy_serial], vec![ca2_serial]).await;
    load.wait_some().await;
    load.step("b3: isobar restarted");
    restart_and_wait_reconnect(&mut stack).await;
    f.write(
        "rot-c.yaml",
        &ingress_yaml(
            "rot-c",
            Some("rot-c.example.com"),
            &[("/", "Prefix", "web")],
        ),
    );
    wait_routed_to(&stack, "rot-c.example.com", "/", "web").await;
    load.wait_some().await;

    // Control: isobar now trusts the new CA only. A client leaf from the old CA is refused, one
    // from the new CA gets listeners (so the rollover really happened, on both sides).
    let probe = |ca: &Ca| {
        let (cert, key) = issue_leaf(
            ca,
            Leaf::Envoy,
            &CertgenOptions::default(),
            OffsetDateTime::now_utc(),
        )
        .expect("issuing a probe leaf");
        XdsClientTls {
            ca_pem: Some(ca2.cert.clone().into_bytes()),
            client_cert_pem: Some(cert.into_bytes()),
            client_key_pem: Some(key.into_bytes()),
            server_name: "isobar".into(),
        }
    };
    let probe_timeout = Duration::from_secs(10);
    let xds = stack.isobar.xds_addr();
    let accepted = ads_first_response(xds, Some(probe(&ca2)), LISTENER_TYPE, probe_timeout).await;
    assert!(
        accepted.as_ref().is_ok_and(|r| !r.resources.is_empty()),
        "a new-CA client leaf got no listeners: {accepted:?}"
    );
    let refused = ads_first_response(xds, Some(probe(&ca1)), LISTENER_TYPE, probe_timeout).await;
    assert!(
        refused.is_err(),
        "isobar still accepts a client leaf from the removed CA: {refused:?}"
    );

    let tally = load.finish().await;
    let finished = Instant::now();
    let total_failed: u64 = tally.steps.iter().map(|s| s.2).sum();
    let total: u64 = tally.steps.iter().map(|s| s.1 + s.2).sum();
    let report = tally
        .steps
        .iter()
        .enumerate()
        .map(|(i, (step, ok, failed))| {
            let end = tally.started.get(i + 1).copied().unwrap_or(finished);
            let took = end.duration_since(tally.started[i]);
            format!("  {step}: {ok} ok, {failed} failed ({took:?})")
        })
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "rotation load ({total} requests, {:?} wall):\n{report}",
        started.elapsed()
    );
    assert!(
        tally.steps.iter().all(|s| s.1 + s.2 >= MIN_PER_STEP),
        "a step saw too few requests:\n{report}"
    );
    assert_eq!(
        total_failed,
        0,
        "requests failed during rotation:\n{report}\n{}\n{}",
        tally.failures.join("\n"),
        stack.log_tails(40)
    );
    assert!(stack.envoy.is_running(), "{}", stack.log_tails(30));
}
