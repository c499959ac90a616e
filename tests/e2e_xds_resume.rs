#![cfg(feature = "e2e")]
//! What a real Envoy that already holds the configuration is sent, in the bytes it receives from
//! its `isobar` cluster (`cluster.isobar.upstream_cx_rx_bytes_total`: HTTP/2 frames, counted after
//! TLS decryption, so the handshake is not in it):
//!
//! * isobar killed (SIGKILL) and started again with the same inputs, certificates and port: the
//!   reconnecting Envoy receives at most 16 KiB at 200 Services (versions are content hashes, so
//!   what Envoy holds is current: nothing needs to travel) and keeps routing;
//! * two replicas with the same inputs are interchangeable: Envoy's bootstrap lists both, and when
//!   the one it is connected to is killed, Envoy switches to the other without one request of a
//!   keep-alive loop failing, and receives at most 16 KiB from it;
//! * one Endpoints object changed at 2,000 Services costs Envoy at most 8 KiB.
//!
//! Each runs in the xDS variant of the stack (`$ISOBAR_XDS_API`, SotW by default):
//! `ISOBAR_XDS_API=delta cargo test --features e2e --test e2e_xds_resume` runs them with delta ADS.
//! The measured bytes are printed either way, and named in every failure with the variant.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::isobar::Isobar;
use isobar_harness::load::{KeepAliveLoad, LoadLimits};
use isobar_harness::manifests::service_and_endpoints_yaml;
use isobar_harness::{wait_for_async, Stack};

use common::{envoy_stat, ingress_yaml, isobar_metric, Fixture, NS};

/// Bytes Envoy received from isobar over all its xDS connections (decrypted: HTTP/2 frames).
const RX: &str = "cluster.isobar.upstream_cx_rx_bytes_total";
/// xDS connections Envoy opened.
const CX_TOTAL: &str = "cluster.isobar.upstream_cx_total";
/// 1 while Envoy's ADS stream is up.
const CONNECTED: &str = "control_plane.connected_state";
/// What a reconnecting Envoy that holds the current configuration may be sent (HTTP/2 settings
/// and headers, and little else: ~100 bytes when nothing is resent).
const RESUME_BUDGET: u64 = 16 * 1024;
/// What one changed Endpoints object may cost Envoy.
const ENDPOINT_CHANGE_BUDGET: u64 = 8 * 1024;
/// Services of the restart and replica tests, and of the Endpoints change test.
const SERVICES: usize = 200;
const MANY_SERVICES: usize = 2000;
/// Services per manifest file.
const PER_FILE: usize = 100;
/// The Service whose Endpoints the change test edits; it has a file of its own.
const TARGET: usize = 0;
/// Envoy is quiet once the bytes it received stayed the same this long (with its stream up).
const QUIET: Duration = Duration::from_secs(2);
/// Deadline of every wait (routing to converge at 2,000 Services, Envoy to reconnect, quiet).
const DEADLINE: Duration = Duration::from_secs(90);
/// The two echo backends the Services alternate between.
const BACKENDS: [&str; 2] = ["a", "b"];
/// Requests of the keep-alive loop before the kill, and after the switch.
const LOAD_BEFORE: u64 = 200;
const LOAD_AFTER: u64 = 200;

fn service(i: usize) -> String {
    format!("svc-{i:04}")
}

fn host(i: usize) -> String {
    format!("{}.resume.test", service(i))
}

fn backend(i: usize) -> &'static str {
    BACKENDS[i % BACKENDS.len()]
}

/// Services whose routing is checked: the first, one in the middle and the last.
fn samples(n: usize) -> [usize; 3] {
    [0, n / 2, n - 1]
}

/// Service `i` (port 80 named `http`), its Endpoints (127.0.0.1 at its backend's port) and an
/// Ingress routing `host(i)` to it.
fn service_yaml(i: usize, ports: &[u16; 2]) -> String {
    let name = service(i);
    format!(
        "{}---\n{}",
        service_and_endpoints_yaml(NS, &name, "http", 80, ports[i % ports.len()]),
        ingress_yaml(&name, Some(&host(i)), &[("/", "Prefix", &name)])
    )
}

/// `n` Services with Endpoints and Ingresses: [`TARGET`] in `svc-target.yaml`, the others in files
/// of [`PER_FILE`].
fn fixture(n: usize) -> (Fixture, [u16; 2]) {
    let mut f = Fixture::new();
    let ports = BACKENDS.map(|b| f.echo(b));
    f.write("svc-target.yaml", &service_yaml(TARGET, &ports));
    let others: Vec<usize> = (0..n).filter(|&i| i != TARGET).collect();
    for (k, chunk) in others.chunks(PER_FILE).enumerate() {
        let docs: Vec<String> = chunk.iter().map(|&i| service_yaml(i, &ports)).collect();
        f.write(&format!("bulk-{k:03}.yaml"), &docs.join("---\n"));
    }
    (f, ports)
}

async fn start(f: &Fixture, replicas: usize) -> Stack {
    let mut opts = f.stack_options();
    opts.isobar_replicas = replicas;
    Stack::start(opts)
        .await
        .unwrap_or_else(|e| panic!("starting the stack: {e}"))
}

/// Polls until `GET /` on each of `hosts` is answered by its Service's backend.
async fn wait_routed(stack: &Stack, services: &[usize]) {
    let api = stack.xds_api();
    for &i in services {
        let what = format!(
            "{} to be routed to backend {} ({api} ADS)",
            host(i),
            backend(i)
        );
        let last = Mutex::new(String::from("no attempt"));
        let routed = wait_for_async(DEADLINE, &what, || async {
            let r = send(&RequestSpec::get(stack.http_addr(), &host(i), "/")).await;
            Ok(match r {
                Ok(r) if r.status == 200 && r.backend().as_deref() == Some(backend(i)) => Some(()),
                Ok(r) => {
                    *last.lock().unwrap() = format!("status {} from {:?}", r.status, r.backend());
                    None
                }
                Err(e) => {
                    *last.lock().unwrap() = e.to_string();
                    None
                }
            })
        })
        .await;
        if let Err(e) = routed {
            panic!(
                "{e}; last answer: {}\n{}",
                last.lock().unwrap(),
                stack.log_tails(30)
            );
        }
    }
}

/// Polls until Envoy's ADS stream is up and the bytes it received from isobar stayed the same for
/// [`QUIET`]; returns that count.
async fn wait_quiet(stack: &Stack, when: &str) -> u64 {
    let what = format!(
        "Envoy's {RX} to stay the same for {QUIET:?} with its ADS stream up, {when} ({} ADS)",
        stack.xds_api()
    );
    let last: Mutex<Option<(u64, Instant)>> = Mutex::new(None);
    wait_for_async(DEADLINE, &what, || async {
        let connected = stack.envoy.stat(CONNECTED).await? == Some(1);
        let rx = stack.envoy.stat(RX).await?;
        let mut last = last.lock().unwrap();
        match (*last, rx) {
            (Some((before, since)), Some(now)) if connected && now == before => {
                return Ok((since.elapsed() >= QUIET).then_some(now));
            }
            (_, Some(now)) if connected => *last = Some((now, Instant::now())),
            _ => *last = None,
        }
        Ok(None)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)))
}

/// Polls until Envoy opened another xDS connection than the `cx_before` it had, and its ADS stream
/// is up.
async fn wait_reconnected(stack: &Stack, cx_before: u64) {
    let what = format!(
        "Envoy to open a new xDS connection ({CX_TOTAL} > {cx_before}) with its ADS stream up ({} ADS)",
        stack.xds_api()
    );
    wait_for_async(DEADLINE, &what, || async {
        let cx = stack.envoy.stat(CX_TOTAL).await?.unwrap_or(0);
        let connected = stack.envoy.stat(CONNECTED).await? == Some(1);
        Ok((cx > cx_before && connected).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
}

/// Polls until isobar's `/readyz` answers 200 (its first configuration is built).
async fn wait_ready(stack: &Stack, isobar: &Isobar) {
    isobar
        .wait_ready(DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{} ADS: {e}\n{}", stack.xds_api(), isobar.log_tail(30)));
}

#[tokio::test]
async fn a_restarted_isobar_sends_a_reconnecting_envoy_almost_nothing() {
    let (f, _ports) = fixture(SERVICES);
    let mut stack = start(&f, 1).await;
    let api = stack.xds_api();
    wait_routed(&stack, &samples(SERVICES)).await;
    let before = wait_quiet(&stack, "after the first configuration").await;
    let cx_before = envoy_stat(&stack, CX_TOTAL).await;

    stack
        .restart_isobar()
        .await
        .unwrap_or_else(|e| panic!("restarting isobar: {e}"));
    wait_ready(&stack, &stack.isobar).await;
    wait_reconnected(&stack, cx_before).await;
    let after = wait_quiet(&stack, "after isobar's restart").await;
    let received = after - before;
    let responses = isobar_metric(&stack.isobar, "isobar_xds_responses_total").await;
    println!(
        "restart at {SERVICES} Services ({api} ADS): Envoy received {received} bytes on the new \
         connection (budget {RESUME_BUDGET}); the restarted isobar sent {responses} xDS responses"
    );
    wait_routed(&stack, &samples(SERVICES)).await;
    assert!(
        received <= RESUME_BUDGET,
        "{api} ADS: after isobar restarted on unchanged inputs, Envoy received {received} bytes \
         from it (budget {RESUME_BUDGET}; {responses} xDS responses): it was sent the configuration \
         it already held"
    );
}

/// Which of the stack's isobar processes Envoy's stream is on: 0 for [`Stack::isobar`], 1 for the
/// first replica. Polls until exactly one has a stream.
async fn connected_replica(stack: &Stack) -> usize {
    let what = format!(
        "exactly one isobar replica to hold Envoy's ADS stream (isobar_xds_streams; {} ADS)",
        stack.xds_api()
    );
    wait_for_async(DEADLINE, &what, || async {
        let mut holding = Vec::new();
        for (n, isobar) in [&stack.isobar, &stack.replicas[0]].into_iter().enumerate() {
            if isobar_metric(isobar, "isobar_xds_streams").await >= 1.0 {
                holding.push(n);
            }
        }
        Ok((holding.len() == 1).then(|| holding[0]))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)))
}

#[tokio::test]
async fn two_replicas_with_the_same_inputs_are_interchangeable() {
    let (f, _ports) = fixture(SERVICES);
    let stack = start(&f, 2).await;
    let api = stack.xds_api();
    assert_eq!(stack.replicas.len(), 1);
    wait_routed(&stack, &samples(SERVICES)).await;
    let first = connected_replica(&stack).await;
    let before = wait_quiet(&stack, "with one replica serving").await;
    let cx_before = envoy_stat(&stack, CX_TOTAL).await;
    let replicas = [&stack.isobar, &stack.replicas[0]];
    let (killed, other) = (replicas[first], replicas[1 - first]);
    let other_responses_before = isobar_metric(other, "isobar_xds_responses_total").await;

    let loaded = 1;
    let load = KeepAliveLoad::start(
        stack.http_addr(),
        &host(loaded),
        LoadLimits {
            max_time: DEADLINE * 3,
            ..LoadLimits::default()
        },
    );
    wait_for_async(DEADLINE, "the request loop to run", || async {
        Ok((load.exchanges() >= LOAD_BEFORE).then_some(()))
    })
    .await
    .expect("request loop");

    killed
        .process()
        .kill_now()
        .unwrap_or_else(|e| panic!("killing isobar replica {first}: {e}"));
    wait_reconnected(&stack, cx_before).await;
    let what = format!(
        "replica {} to hold Envoy's ADS stream (isobar_xds_streams; {api} ADS)",
        1 - first
    );
    wait_for_async(DEADLINE, &what, || async {
        Ok((isobar_metric(other, "isobar_xds_streams").await >= 1.0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
    let after = wait_quiet(&stack, "after the switch to the other replica").await;
    let at_switch = load.exchanges();
    wait_for_async(DEADLINE, "the request loop to run on", || async {
        Ok((load.exchanges() >= at_switch + LOAD_AFTER).then_some(()))
    })
    .await
    .expect("request loop");
    let counts = load.stop().await;
    let received = after - before;
    let responses =
        isobar_metric(other, "isobar_xds_responses_total").await - other_responses_before;
    println!(
        "replica switch at {SERVICES} Services ({api} ADS): Envoy received {received} bytes from \
         the other replica (budget {RESUME_BUDGET}; it sent {responses} xDS responses); {}",
        counts.summary()
    );

    let mut failures = Vec::new();
    if counts.failures() > 0 || counts.by(backend(loaded)) == 0 {
        failures.push(format!(
            "requests failed around the switch: {} (first errors: {:?})",
            counts.summary(),
            &counts.errors[..counts.errors.len().min(3)]
        ));
    }
    if received > RESUME_BUDGET {
        failures.push(format!(
            "Envoy received {received} bytes from the other replica (budget {RESUME_BUDGET}; \
             {responses} xDS responses): it was sent the configuration it already held"
        ));
    }
    assert!(
        failures.is_empty(),
        "{api} ADS, replica switch at {SERVICES} Services:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn one_endpoints_change_at_2000_services_costs_envoy_little() {
    let (f, ports) = fixture(MANY_SERVICES);
    let stack = start(&f, 1).await;
    let api = stack.xds_api();
    wait_routed(&stack, &samples(MANY_SERVICES)).await;
    // isobar names stats with `_` for the `/` of cluster names (`alt_stat_name`).
    let membership = format!("cluster.{NS}_{}_80.membership_total", service(TARGET));
    assert_eq!(
        envoy_stat(&stack, &membership).await,
        1,
        "{api} ADS: {membership}"
    );
    let before = wait_quiet(&stack, "after the first configuration").await;
    let responses_before = isobar_metric(&stack.isobar, "isobar_xds_responses_total").await;

    // A second address in the target's Endpoints (nothing listens there: only Envoy's view of the
    // cluster matters).
    let one = "  - ip: \"127.0.0.1\"\n";
    let edited =
        service_yaml(TARGET, &ports).replacen(one, &format!("{one}  - ip: \"127.0.0.2\"\n"), 1);
    assert!(edited.contains("127.0.0.2"), "{edited}");
    f.write("svc-target.yaml", &edited);
    let what = format!("Envoy's {membership} to be 2 ({api} ADS)");
    wait_for_async(DEADLINE, &what, || async {
        Ok((stack.envoy.stat(&membership).await? == Some(2)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
    let after = wait_quiet(&stack, "after the Endpoints change").await;
    let received = after - before;
    let responses =
        isobar_metric(&stack.isobar, "isobar_xds_responses_total").await - responses_before;
    println!(
        "one Endpoints change at {MANY_SERVICES} Services ({api} ADS): Envoy received {received} \
         bytes (budget {ENDPOINT_CHANGE_BUDGET}; {responses} xDS responses)"
    );
    assert!(
        received <= ENDPOINT_CHANGE_BUDGET,
        "{api} ADS: one changed Endpoints object at {MANY_SERVICES} Services cost Envoy {received} \
         bytes (budget {ENDPOINT_CHANGE_BUDGET}; {responses} xDS responses): more than the one \
         changed ClusterLoadAssignment was sent"
    );
}
