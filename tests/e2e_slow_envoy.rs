#![cfg(feature = "e2e")]
//! A slow Envoy gets the latest configuration, not a queue of stale ones: each ADS stream has at most
//! one response per type awaiting Envoy's answer, and the next is built from the latest snapshot when
//! the answer comes. Envoy is stopped (SIGSTOP: it reads and answers nothing) while its host's
//! Ingress flips between two Services many times, each flip built by isobar; once it continues, it
//! applies a handful of updates, not one per flip, and routes to where the last flip points.

mod common;

use isobar_harness::wait_for_async;

use common::{envoy_stat, ingress_yaml, isobar_metric, wait_routed_to, Fixture, CONVERGE};

const HOST: &str = "flip.example.com";
/// Flips made while Envoy is stopped (odd: the last one points elsewhere than the start).
const FLIPS: usize = 21;
/// Route updates Envoy may apply for all of them: the one in flight when it stopped, and the latest.
const MAX_ROUTE_UPDATES: u64 = 2;

#[tokio::test]
async fn a_stopped_envoy_gets_the_latest_configuration_not_every_one_it_missed() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    let ingress = |to: &str| ingress_yaml("flip", Some(HOST), &[("/", "Prefix", to)]);
    f.write("flip.yaml", &ingress("a"));
    let stack = f.start_stack().await;
    wait_routed_to(&stack, HOST, "/", "a").await;
    const ROUTE_UPDATES: &str = "http.ingress_http.rds.ingress_http.update_success";
    const RESPONSES: &str = "isobar_xds_responses_total";
    const REBUILDS: &str = "isobar_rebuilds_total";
    let routes_before = envoy_stat(&stack, ROUTE_UPDATES).await;
    let responses_before = isobar_metric(&stack.isobar, RESPONSES).await;

    stack.envoy.process().pause();
    let mut last = "a";
    for i in 0..FLIPS {
        let rebuilds = isobar_metric(&stack.isobar, REBUILDS).await;
        last = if i % 2 == 0 { "b" } else { "a" };
        f.write("flip.yaml", &ingress(last));
        // isobar built this flip (polled): the snapshot Envoy would have been sent changed.
        wait_for_async(CONVERGE, "isobar to rebuild after the flip", || async {
            Ok((isobar_metric(&stack.isobar, REBUILDS).await > rebuilds).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
    }
    let responses_while_stopped = isobar_metric(&stack.isobar, RESPONSES).await - responses_before;
    stack.envoy.process().resume();
    wait_routed_to(&stack, HOST, "/", last).await;

    let route_updates = envoy_stat(&stack, ROUTE_UPDATES).await - routes_before;
    let responses = isobar_metric(&stack.isobar, RESPONSES).await - responses_before;
    eprintln!(
        "{FLIPS} flips while Envoy was stopped ({} ADS): isobar sent {responses_while_stopped} \
         responses meanwhile and {responses} in all; Envoy applied {route_updates} route updates",
        stack.xds_api()
    );
    assert!(
        responses_while_stopped <= 2.0,
        "at most one response per type in flight (the first flip's clusters go first): \
         {responses_while_stopped} sent to a stopped Envoy for {FLIPS} flips"
    );
    assert!(
        route_updates <= MAX_ROUTE_UPDATES,
        "{route_updates} route updates for {FLIPS} flips: stale snapshots were queued"
    );
}
