#![cfg(feature = "e2e")]
//! Graceful shutdown with Envoy connected: on SIGTERM the leading isobar gives its Lease up and
//! exits successfully within 5 s although Envoy's ADS stream is open; Envoy keeps serving its last
//! configuration (not one request fails) and reconnects to the next isobar on the same xDS port,
//! which takes the Lease at once (not after the lease duration) and routes new Ingresses.

mod common;

use std::time::{Duration, Instant};

use isobar_harness::{wait_for_async, KubeStack};

use common::kube::{apply, ingress, isobar_log, lb_ingress, start_kube_stack, STATUS};
use common::load::{Load, LoadBounds};
use common::wait_routed_to;

/// What a graceful shutdown may take, from SIGTERM to the process being reaped.
const SHUTDOWN: Duration = Duration::from_secs(5);
/// How long the test waits for the exit at all (longer than [`SHUTDOWN`], to report the time).
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
/// The next isobar must hold the free Lease well before the 15 s lease duration.
const TAKEOVER: Duration = Duration::from_secs(5);
/// Envoy's stat: 1 while its ADS stream is up.
const CONNECTED: &str = "control_plane.connected_state";
/// Bounds of the background request loop.
const LOAD: LoadBounds = LoadBounds {
    period: Duration::from_millis(5),
    max_time: Duration::from_secs(60),
    max_requests: 8000,
};
/// Requests sent before SIGTERM, and at least after the next isobar routes.
const LOAD_BEFORE: usize = 100;
const LOAD_AFTER: usize = 200;

/// isobar's Lease identity ends in `-PID`.
fn held_by(holder: &Option<String>, pid: u32) -> bool {
    holder
        .as_deref()
        .is_some_and(|h| h.ends_with(&format!("-{pid}")))
}

/// Polls until Envoy's [`CONNECTED`] stat is `want`.
async fn wait_connected(ks: &KubeStack, want: u64, timeout: Duration) {
    let what = format!("Envoy's {CONNECTED} to be {want}");
    wait_for_async(timeout, &what, || async {
        Ok((ks.stack.envoy.stat(CONNECTED).await? == Some(want)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
}

/// Polls until the Lease is held by process `pid`; returns how long that took.
async fn wait_lease_held_by(ks: &KubeStack, pid: u32, timeout: Duration) -> Duration {
    let started = Instant::now();
    wait_for_async(
        timeout,
        &format!("isobar {pid} to hold the Lease"),
        || async { Ok(held_by(&ks.lease_holder().await?, pid).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
    started.elapsed()
}

#[tokio::test]
async fn sigterm_releases_the_lease_and_exits_fast_while_envoy_keeps_serving() {
    let mut ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/", "a").await;
    wait_connected(&ks, 1, Duration::from_secs(30)).await;
    let first = ks.stack.isobar.process().pid();
    wait_lease_held_by(&ks, first, Duration::from_secs(30)).await;
    let envoy_pid = ks.stack.envoy.pid();

    let load = Load::start(ks.stack.http_addr(), host.clone(), "a", LOAD);
    load.wait_sent(LOAD_BEFORE, Duration::from_secs(10), "the load to flow")
        .await
        .expect("load loop");

    // SIGTERM with Envoy's ADS stream open: a graceful exit, timed from the signal.
    let before_signal = load.sent();
    ks.stack.isobar.process().terminate();
    let signalled = Instant::now();
    let status = wait_for_async(EXIT_DEADLINE, "isobar to exit after SIGTERM", || async {
        Ok(ks.stack.isobar.process().try_status())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
    let exited_after = signalled.elapsed();
    // Read right after the exit: the Lease was given up before it, not left to expire.
    let holder_after_exit = ks.lease_holder().await.expect("reading the Lease");
    println!("isobar exited {exited_after:?} after SIGTERM ({status}); Lease holder then: {holder_after_exit:?}");
    assert!(
        status.success(),
        "isobar exited with {status} after SIGTERM\n{}",
        ks.log_tails(40)
    );
    assert!(
        exited_after <= SHUTDOWN,
        "isobar took {exited_after:?} (> {SHUTDOWN:?}) to exit after SIGTERM with Envoy connected\n{}",
        ks.log_tails(40)
    );
    // The open ADS stream ended by itself: nothing had to be aborted at the end of the grace period.
    assert!(
        !isobar_log(&ks.stack).contains("graceful shutdown took too long"),
        "isobar's xDS server did not drain with Envoy connected: its tasks were aborted\n{}",
        ks.log_tails(40)
    );
    assert!(
        !held_by(&holder_after_exit, first),
        "the exited isobar still holds the Lease ({holder_after_exit:?}): it was not released\n{}",
        ks.log_tails(40)
    );

    // With no control plane, Envoy notices the stream is gone and keeps serving what it has.
    wait_connected(&ks, 0, Duration::from_secs(10)).await;
    let at_disconnect = load.sent();
    load.wait_sent(
        at_disconnect + LOAD_BEFORE,
        Duration::from_secs(10),
        "requests while no isobar runs",
    )
    .await
    .expect("load loop");
    let without_isobar = load.sent() - before_signal;

    // The next isobar on the same xDS port: Envoy reconnects, the free Lease is taken at once.
    let restarting = Instant::now();
    ks.stack
        .restart_isobar()
        .await
        .unwrap_or_else(|e| panic!("starting the next isobar: {e}"));
    let second = ks.stack.isobar.process().pid();
    let took_lease = wait_lease_held_by(&ks, second, TAKEOVER).await;
    wait_connected(&ks, 1, Duration::from_secs(30)).await;
    let reconnected = restarting.elapsed();

    // It routes (and, as leader, writes the status of) an Ingress created now.
    let new_host = ks.host("after");
    apply(&ks, ingress("after", &new_host, &[("/", "b")])).await;
    wait_routed_to(&ks.stack, &new_host, "/", "b").await;
    ks.wait_ingress_lb("after", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
    let routed_after = load.sent();
    load.wait_sent(
        routed_after + LOAD_AFTER,
        LOAD.max_time,
        "requests after the next isobar routes",
    )
    .await
    .expect("load loop");

    let report = load.finish().await;
    println!(
        "{} requests sent ({without_isobar} from SIGTERM until the next isobar started), {} failed; next isobar held the Lease {took_lease:?} after start, Envoy reconnected {reconnected:?} after start",
        report.sent, report.failed
    );
    report.assert_none_failed("across the shutdown", &ks.log_tails(40));
    assert!(ks.stack.envoy.is_running(), "{}", ks.log_tails(30));
    assert_eq!(ks.stack.envoy.pid(), envoy_pid, "Envoy was restarted");
}
