#![cfg(feature = "e2e")]
//! Make-before-break against a real Envoy: a host's Ingress flips between two Services over and over
//! while a keep-alive client keeps requesting it, and not one request fails — the new cluster is warm
//! before the route uses it, and the old one goes only after the route stopped using it.

mod common;

use std::time::Instant;

use isobar_harness::load::{KeepAliveLoad, LoadLimits};

use common::{ingress_yaml, wait_routed_to, Fixture};

const HOST: &str = "flip.example.com";
/// How many times the Ingress switches Service.
const FLIPS: usize = 100;

#[tokio::test]
async fn flipping_a_host_between_services_loses_no_request() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    let ingress = |to: &str| ingress_yaml("flip", Some(HOST), &[("/", "Prefix", to)]);
    f.write("flip.yaml", &ingress("a"));
    let stack = f.start_stack().await;
    wait_routed_to(&stack, HOST, "/", "a").await;

    let load = KeepAliveLoad::start(stack.http_addr(), HOST, LoadLimits::default());
    let started = Instant::now();
    for i in 0..FLIPS {
        let to = if i % 2 == 0 { "b" } else { "a" };
        f.write("flip.yaml", &ingress(to));
        // Each flip is live before the next (polled, with a deadline).
        wait_routed_to(&stack, HOST, "/", to).await;
    }
    let flipping = started.elapsed();
    let counts = load.stop().await;

    let no_cluster = stack
        .envoy
        .stat("http.ingress_http.no_cluster")
        .await
        .unwrap_or_else(|e| panic!("Envoy stat: {e}"))
        .unwrap_or(0);
    eprintln!(
        "{FLIPS} flips in {flipping:?}: {}; Envoy no_cluster {no_cluster}",
        counts.summary()
    );
    assert!(
        counts.by("a") > 0 && counts.by("b") > 0,
        "the loop should have seen both backends: {counts:?}"
    );
    assert_eq!(
        counts.failures(),
        0,
        "failed requests: {:?}, errors (first 5): {:?}",
        counts.failed,
        &counts.errors[..counts.errors.len().min(5)]
    );
    assert_eq!(no_cluster, 0, "http.ingress_http.no_cluster");
}
