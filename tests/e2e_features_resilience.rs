#![cfg(feature = "e2e")]
//! Retries and request timeouts through a real Envoy, observed at the backend: IngressRoute
//! `retryPolicy` / `timeoutPolicy` and the Ingress annotations `retry-on`, `num-retries`,
//! `request-timeout`.

mod common;
#[path = "common/features.rs"]
mod features;

use std::time::Instant;

use isobar_harness::echo::{
    ECHO_COUNT_PATH, ECHO_DELAY_MS_HEADER, ECHO_FAIL_TIMES_HEADER, ECHO_KEY_HEADER,
};
use isobar_harness::http::{send, RequestSpec, Response};
use isobar_harness::Stack;

use common::{ingress_yaml, Fixture};
use features::{
    assert_no_nacks, config_dump_excerpt, config_dump_section, ingress_route_yaml, wait_echo,
    with_annotations, SLOW,
};

/// Sends one request whose first `fail_times` attempts (counted by the backend under `key`)
/// get 503; returns the response and how many attempts the backend saw.
async fn flaky_request(
    stack: &Stack,
    host: &str,
    path: &str,
    key: &str,
    fail_times: u32,
) -> (Response, String) {
    let mut req = RequestSpec::get(stack.http_addr(), host, path)
        .header(ECHO_KEY_HEADER, key)
        .header(ECHO_FAIL_TIMES_HEADER, &fail_times.to_string());
    req.timeout = SLOW;
    let r = send(&req)
        .await
        .unwrap_or_else(|e| panic!("{host}{path}: {e}\n{}", stack.log_tails(20)));
    // The count endpoint goes through Envoy on a route without retries, so it is exact.
    let count = RequestSpec::get(
        stack.http_addr(),
        host,
        &format!("{ECHO_COUNT_PATH}?key={key}"),
    );
    let attempts = send(&count)
        .await
        .unwrap_or_else(|e| panic!("reading the attempt count: {e}"))
        .text();
    (r, attempts)
}

/// The routes of the retry tests: `/retry` retries 5xx twice, `/` does not retry.
async fn check_retries(stack: &Stack, host: &str) {
    wait_echo(
        stack,
        &RequestSpec::get(stack.http_addr(), host, "/retry"),
        "flaky",
    )
    .await;
    wait_echo(
        stack,
        &RequestSpec::get(stack.http_addr(), host, "/"),
        "flaky",
    )
    .await;

    let (r, attempts) = flaky_request(stack, host, "/retry", "with-retries", 2).await;
    assert_eq!(
        (r.status, attempts.as_str()),
        (200, "3"),
        "two 503s then 200, with 2 retries: the client should see 200 after 3 attempts ({})\n{}",
        r.text(),
        config_dump_excerpt(stack, "retry_policy").await
    );
    assert_eq!(r.backend().as_deref(), Some("flaky"));

    let (r, attempts) = flaky_request(stack, host, "/", "without-retries", 2).await;
    assert_eq!(
        (r.status, attempts.as_str()),
        (503, "1"),
        "no retry policy: the first 503 should reach the client after 1 attempt ({})",
        r.text()
    );
}

#[tokio::test]
async fn ingressroute_retry_policy_retries_5xx_at_the_backend() {
    let mut f = Fixture::new();
    f.backend("flaky");
    f.write(
        "retry.yaml",
        &ingress_route_yaml(
            "retry",
            "  virtualhost:
    fqdn: retry.example.com
  routes:
  - match: /retry
    retryPolicy:
      count: 2
    services:
    - name: flaky
      port: 80
  - match: /
    services:
    - name: flaky
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    check_retries(&stack, "retry.example.com").await;
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingress_retry_annotations_retry_5xx_at_the_backend() {
    let mut f = Fixture::new();
    f.backend("flaky");
    f.write(
        "retry.yaml",
        &with_annotations(
            &ingress_yaml(
                "retry",
                Some("retrying.example.com"),
                &[("/retry", "Prefix", "flaky")],
            ),
            &[
                ("projectcontour.io/retry-on", "5xx"),
                ("projectcontour.io/num-retries", "2"),
            ],
        ),
    );
    f.write(
        "plain.yaml",
        &ingress_yaml(
            "plain",
            Some("retrying.example.com"),
            &[("/", "Prefix", "flaky")],
        ),
    );
    let stack = f.start_stack().await;
    check_retries(&stack, "retrying.example.com").await;
    assert_no_nacks(&stack).await;
}

/// A request the backend answers after `delay_ms`; returns the status and how long it took.
async fn delayed(
    stack: &Stack,
    host: &str,
    path: &str,
    delay_ms: u64,
) -> (u16, std::time::Duration, String) {
    let mut req = RequestSpec::get(stack.http_addr(), host, path)
        .header(ECHO_DELAY_MS_HEADER, &delay_ms.to_string());
    req.timeout = SLOW;
    let started = Instant::now();
    let r = send(&req)
        .await
        .unwrap_or_else(|e| panic!("{host}{path}: {e}\n{}", stack.log_tails(20)));
    (r.status, started.elapsed(), r.text())
}

/// The `timeout` of the route for `path_prefix` on virtual host `host` in Envoy's dynamic route
/// configurations (`None` if the route has none, i.e. Envoy's 15 s default applies). Panics if
/// there is no such route: a missing route is a loud failure, not an absent timeout.
async fn envoy_route_timeout(stack: &Stack, host: &str, path_prefix: &str) -> Option<String> {
    let configs = config_dump_section(stack, "dynamic_route_configs").await;
    let routes: Vec<&serde_json::Value> = configs
        .iter()
        .flat_map(|c| {
            c["route_config"]["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|v| {
            v["domains"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d == host))
        })
        .flat_map(|v| v["routes"].as_array().into_iter().flatten())
        .filter(|r| {
            let m = &r["match"];
            m["prefix"] == path_prefix || m["path_separated_prefix"] == path_prefix
        })
        .collect();
    match routes.as_slice() {
        [route] => route["route"]["timeout"].as_str().map(str::to_string),
        _ => panic!(
            "expected one route {path_prefix} on {host} in Envoy's route configurations, found {routes:?}"
        ),
    }
}

/// `/short` times out after 1 s, `/forever` never.
async fn check_timeouts(stack: &Stack, host: &str) {
    wait_echo(
        stack,
        &RequestSpec::get(stack.http_addr(), host, "/short"),
        "slow",
    )
    .await;
    wait_echo(
        stack,
        &RequestSpec::get(stack.http_addr(), host, "/forever"),
        "slow",
    )
    .await;

    let (status, took, body) = delayed(stack, host, "/short", 3000).await;
    assert_eq!(
        status,
        504,
        "a 1s request timeout with a 3s backend: {body} after {took:?}\n{}",
        config_dump_excerpt(stack, "\"timeout\"").await
    );
    assert!(
        took < std::time::Duration::from_millis(2900),
        "the 504 came after {took:?}, not after ~1s"
    );

    // "infinity" is Envoy's timeout 0 (disabled). A slow request can't show it quickly: anything
    // under Envoy's 15 s default passes without the feature. The route's own timeout can: 0s
    // here, where a route without one would fall back to the 15 s default.
    assert_eq!(
        envoy_route_timeout(stack, host, "/forever")
            .await
            .as_deref(),
        Some("0s"),
        "the infinity route should have Envoy's route timeout disabled"
    );
    assert_eq!(
        envoy_route_timeout(stack, host, "/short").await.as_deref(),
        Some("1s")
    );
}

#[tokio::test]
async fn ingressroute_timeout_policy_bounds_the_request() {
    let mut f = Fixture::new();
    f.backend("slow");
    f.write(
        "timeout.yaml",
        &ingress_route_yaml(
            "timeout",
            "  virtualhost:
    fqdn: timeout.example.com
  routes:
  - match: /short
    timeoutPolicy:
      request: 1s
    services:
    - name: slow
      port: 80
  - match: /forever
    timeoutPolicy:
      request: infinity
    services:
    - name: slow
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    check_timeouts(&stack, "timeout.example.com").await;
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingress_request_timeout_annotation_bounds_the_request() {
    let mut f = Fixture::new();
    f.backend("slow");
    f.write(
        "short.yaml",
        &with_annotations(
            &ingress_yaml(
                "short",
                Some("timing.example.com"),
                &[("/short", "Prefix", "slow")],
            ),
            &[("contour.heptio.com/request-timeout", "1s")],
        ),
    );
    f.write(
        "forever.yaml",
        &with_annotations(
            &ingress_yaml(
                "forever",
                Some("timing.example.com"),
                &[("/forever", "Prefix", "slow")],
            ),
            &[("projectcontour.io/request-timeout", "infinity")],
        ),
    );
    let stack = f.start_stack().await;
    check_timeouts(&stack, "timing.example.com").await;
    assert_no_nacks(&stack).await;
}
