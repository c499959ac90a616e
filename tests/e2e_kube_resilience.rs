#![cfg(feature = "e2e")]
//! Resilience: Envoy keeps serving the last configuration while kube-apiserver is down or isobar
//! restarts, and the pipeline converges on changes made afterwards. Not a single request fails.

mod common;

use std::time::{Duration, Instant};

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::{wait_for_async, KubeStack};

use common::kube::{apply, ingress, isobar_log, lb_ingress, start_kube_stack};
use common::load::{Load, LoadBounds};
use common::{debug_xds, get, wait_routed_to};

/// Deadline for isobar to converge after an outage: kube-rs watchers retry with an exponential
/// backoff (up to tens of seconds) and the API server takes ~6 s to start.
const AFTER_OUTAGE: Duration = Duration::from_secs(90);
/// Bounds of the background request loop.
const LOAD: LoadBounds = LoadBounds {
    period: Duration::from_millis(5),
    max_time: Duration::from_secs(30),
    max_requests: 6000,
};
/// Requests the loop sends before isobar is killed, and at least after.
const LOAD_BEFORE_RESTART: usize = 200;
const LOAD_AFTER_RESTART: usize = 1500;

#[tokio::test]
async fn envoy_serves_through_an_apiserver_outage_and_later_changes_apply() {
    let mut ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/", "a").await;
    let log_before = isobar_log(&ks.stack).len();

    ks.cluster.stop_apiserver().unwrap_or_else(|e| {
        panic!("this test stops and restarts kube-apiserver, which needs the harness's own local cluster (unset ISOBAR_E2E_KUBECONFIG): {e}")
    });

    // While the API server is down, every request is served as before, until isobar has
    // noticed the outage (a failed watch in its log) and for at least 3 s more.
    let down_since = Instant::now();
    let mut served = 0usize;
    let mut noticed: Option<Instant> = None;
    while noticed.is_none_or(|t| t.elapsed() < Duration::from_secs(3)) {
        assert!(
            down_since.elapsed() < Duration::from_secs(60),
            "isobar never logged a failed watch in 60 s without an API server\n{}",
            ks.log_tails(30)
        );
        let r = get(&ks.stack, &host, "/").await;
        assert_eq!(
            (r.status, r.backend().as_deref()),
            (200, Some("a")),
            "request {served} while kube-apiserver is down: {}\n{}",
            r.text(),
            ks.log_tails(30)
        );
        served += 1;
        if noticed.is_none() && isobar_log(&ks.stack)[log_before..].contains("watch failed") {
            noticed = Some(Instant::now());
        }
    }
    ks.stack
        .isobar
        .process()
        .ensure_running()
        .expect("isobar survives the outage");
    println!(
        "{served} requests served during {:?} without an API server",
        down_since.elapsed()
    );

    ks.cluster
        .start_apiserver()
        .await
        .unwrap_or_else(|e| panic!("restarting kube-apiserver: {e}"));
    let restarted = Instant::now();

    // Changes made after the restart are applied: a new host, and an edit of the old one.
    let new_host = ks.host("after");
    apply(&ks, ingress("after", &new_host, &[("/", "b")])).await;
    apply(&ks, ingress("app", &host, &[("/", "b")])).await;
    for h in [&new_host, &host] {
        wait_for_async(AFTER_OUTAGE, &format!("{h} to be routed to b"), || async {
            let r = send(&RequestSpec::get(ks.stack.http_addr(), h, "/")).await;
            Ok(r.ok()
                .and_then(|r| r.backend())
                .filter(|b| b == "b")
                .map(|_| ()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
    }
    println!(
        "converged {:?} after the API server restart",
        restarted.elapsed()
    );
    ks.wait_ingress_lb("after", &lb_ingress(), AFTER_OUTAGE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)));
}

/// Polls until the current isobar's `/debug/xds` shows an Envoy stream that has ACKed the
/// version of every type it was sent.
async fn wait_envoy_acked(ks: &KubeStack) -> serde_json::Value {
    wait_for_async(
        Duration::from_secs(60),
        "an Envoy stream with every sent version ACKed",
        || async {
            let xds = debug_xds(&ks.stack).await;
            let streams = xds["streams"].as_array().cloned().unwrap_or_default();
            let acked = streams.iter().any(|s| {
                let types = s["types"].as_object();
                types.is_some_and(|t| {
                    t.len() >= 4
                        && t.values().all(|v| {
                            let sent = v["sent_version"].as_str().unwrap_or_default();
                            !sent.is_empty() && v["acked_version"] == sent
                        })
                })
            });
            Ok(acked.then_some(xds))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(40)))
}

#[tokio::test]
async fn isobar_restart_under_load_fails_no_request() {
    let mut ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let _b = ks.backend("b").await.expect("backend b");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/", "a").await;
    wait_envoy_acked(&ks).await;
    let envoy_pid = ks.stack.envoy.pid();

    let load = Load::start(ks.stack.http_addr(), host.clone(), "a", LOAD);
    load.wait_sent(
        LOAD_BEFORE_RESTART,
        Duration::from_secs(10),
        "the load to flow",
    )
    .await
    .expect("load loop");

    let before_restart = load.sent();
    let restart_started = Instant::now();
    ks.stack
        .restart_isobar()
        .await
        .unwrap_or_else(|e| panic!("restarting isobar: {e}"));
    // The new process has the Envoy stream back, with everything ACKed.
    let xds = wait_envoy_acked(&ks).await;
    let reconnected = restart_started.elapsed();
    let during_restart = load.sent() - before_restart;

    // And it converges: a change made after the restart is applied.
    let new_host = ks.host("after");
    apply(&ks, ingress("after", &new_host, &[("/", "b")])).await;
    wait_routed_to(&ks.stack, &new_host, "/", "b").await;
    let converged = restart_started.elapsed();
    // Keep the load on the new isobar's configuration for a while too.
    load.wait_sent(
        before_restart + LOAD_AFTER_RESTART,
        LOAD.max_time,
        "the load loop to send its requests",
    )
    .await
    .expect("load loop");

    let report = load.finish().await;
    println!(
        "isobar restart under load: {} requests sent ({during_restart} between the kill and the new stream's ACKs), {} failed; reconnected+ACKed after {reconnected:?}, converged after {converged:?}",
        report.sent, report.failed
    );
    report.assert_none_failed(
        "across the isobar restart",
        &format!("isobar /debug/xds: {xds}\n{}", ks.log_tails(40)),
    );
    assert!(
        during_restart > 0,
        "no request was sent while isobar restarted"
    );
    assert!(ks.stack.envoy.is_running(), "{}", ks.log_tails(30));
    assert_eq!(ks.stack.envoy.pid(), envoy_pid, "Envoy was restarted");
}
