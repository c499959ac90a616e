#![cfg(feature = "e2e")]
//! Contour routing features through a real Envoy: IngressRoute weighted services, WebSocket
//! upgrades (IngressRoute `enableWebsockets`, Ingress `websocket-routes`) and `prefixRewrite`.

mod common;
#[path = "common/features.rs"]
mod features;

use std::collections::BTreeMap;
use std::time::Duration;

use isobar_harness::echo::{websocket_echo, WebSocketOutcome};
use isobar_harness::http::{send, RequestSpec};
use isobar_harness::wait_for_async;

use common::{ingress_yaml, Fixture, CONVERGE};
use features::{
    assert_no_nacks, config_dump_excerpt, ingress_route_yaml, wait_echo, wait_response,
    with_annotations, xds_summary,
};

/// Requests sent to measure a weighted split (bounded).
const SPLIT_SAMPLES: usize = 200;

#[tokio::test]
async fn ingressroute_weights_split_traffic_between_services() {
    let mut f = Fixture::new();
    f.backend("heavy");
    f.backend("light");
    f.write(
        "split.yaml",
        &ingress_route_yaml(
            "split",
            "  virtualhost:
    fqdn: split.example.com
  routes:
  - match: /
    services:
    - name: heavy
      port: 80
      weight: 80
    - name: light
      port: 80
      weight: 20
",
        ),
    );
    f.write(
        "all.yaml",
        &ingress_route_yaml(
            "all",
            "  virtualhost:
    fqdn: all.example.com
  routes:
  - match: /
    services:
    - name: heavy
      port: 80
      weight: 100
    - name: light
      port: 80
      weight: 0
",
        ),
    );
    let stack = f.start_stack().await;
    let split = RequestSpec::get(stack.http_addr(), "split.example.com", "/w");
    wait_response(&stack, "split.example.com to be routed", &split, |r| {
        r.status == 200 && r.backend().is_some()
    })
    .await;
    wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "all.example.com", "/"),
        "heavy",
    )
    .await;

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..SPLIT_SAMPLES {
        let r = send(&split).await.expect("a request through Envoy");
        assert_eq!(r.status, 200, "{}", r.text());
        *counts
            .entry(r.backend().unwrap_or_else(|| "<none>".into()))
            .or_default() += 1;
    }
    let heavy = counts.get("heavy").copied().unwrap_or(0);
    let light = counts.get("light").copied().unwrap_or(0);
    println!("weights 80/20 over {SPLIT_SAMPLES} requests: {counts:?}");
    assert_eq!(heavy + light, SPLIT_SAMPLES, "{counts:?}");
    assert!(light > 0, "the 20% service got nothing: {counts:?}");
    // 80% of 200 is 160 with a standard deviation of ~5.7; 130..=190 is more than 5 sigma.
    let share = heavy as f64 / SPLIT_SAMPLES as f64;
    assert!(
        (0.65..=0.95).contains(&share),
        "the 80% service got {:.1}%: {counts:?}\n{}",
        share * 100.0,
        config_dump_excerpt(&stack, "weighted_clusters").await
    );

    // 100/0: everything to `heavy`.
    let all = RequestSpec::get(stack.http_addr(), "all.example.com", "/");
    let mut all_counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..50 {
        let r = send(&all).await.expect("a request through Envoy");
        *all_counts
            .entry(
                r.backend()
                    .unwrap_or_else(|| format!("status {}", r.status)),
            )
            .or_default() += 1;
    }
    println!("weights 100/0 over 50 requests: {all_counts:?}");
    assert_eq!(
        all_counts,
        BTreeMap::from([("heavy".to_string(), 50)]),
        "weight 0 still got traffic"
    );
    assert_no_nacks(&stack).await;
}

/// Polls until a WebSocket request to `path` is upgraded; returns the echo.
async fn wait_upgraded(stack: &isobar_harness::Stack, host: &str, path: &str) -> WebSocketOutcome {
    let what = format!("a websocket on {host}{path} to be upgraded");
    let last = std::sync::Mutex::new(String::new());
    let result = wait_for_async(CONVERGE, &what, || async {
        match websocket_echo(
            stack.http_addr(),
            host,
            path,
            "hello over envoy",
            Duration::from_secs(5),
        )
        .await
        {
            Ok(o @ WebSocketOutcome::Upgraded { .. }) => Ok(Some(o)),
            other => {
                *last.lock().unwrap() = format!("{other:?}");
                Ok(None)
            }
        }
    })
    .await;
    result.unwrap_or_else(|e| {
        panic!(
            "{e}\nlast: {}\n{}",
            last.lock().unwrap(),
            stack.log_tails(30)
        )
    })
}

/// How Envoy refuses a WebSocket upgrade on a route that doesn't allow one: `403` with an empty
/// body, from Envoy itself (no echo backend saw the request). Anything else — an upgrade, a 404
/// because the route is missing, a 503 because the cluster is, the backend answering a downgraded
/// request — is not this refusal.
fn envoy_refused_upgrade() -> WebSocketOutcome {
    WebSocketOutcome::Refused {
        status: 403,
        body: String::new(),
        backend: None,
    }
}

async fn websocket_outcome(
    stack: &isobar_harness::Stack,
    host: &str,
    path: &str,
) -> WebSocketOutcome {
    websocket_echo(
        stack.http_addr(),
        host,
        path,
        "hello over envoy",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("websocket {host}{path}: {e}\n{}", stack.log_tails(20)))
}

/// On `host`, a WebSocket on `/ws` is upgraded and reaches the "chat" backend, while one on
/// `/plain` (which routes to the same backend over plain HTTP) is refused by Envoy itself, as
/// `why_refused` says; and Envoy rejected no update.
async fn assert_only_ws_upgrades(stack: &isobar_harness::Stack, host: &str, why_refused: &str) {
    // Plain HTTP on the other route works, so a refused upgrade below is not "not configured yet".
    wait_echo(
        stack,
        &RequestSpec::get(stack.http_addr(), host, "/plain"),
        "chat",
    )
    .await;

    let upgraded = wait_upgraded(stack, host, "/ws").await;
    assert_eq!(
        upgraded,
        WebSocketOutcome::Upgraded {
            reply: "hello over envoy".into(),
            backend: Some("chat".into())
        }
    );
    let refused = websocket_outcome(stack, host, "/plain").await;
    assert_eq!(
        refused,
        envoy_refused_upgrade(),
        "{why_refused}: Envoy itself must refuse the upgrade\n{}",
        config_dump_excerpt(stack, "upgrade_configs").await
    );
    assert_no_nacks(stack).await;
}

#[tokio::test]
async fn ingressroute_enable_websockets_upgrades_only_that_route() {
    let mut f = Fixture::new();
    f.backend("chat");
    f.write(
        "ws.yaml",
        &ingress_route_yaml(
            "ws",
            "  virtualhost:
    fqdn: ws.example.com
  routes:
  - match: /ws
    enableWebsockets: true
    services:
    - name: chat
      port: 80
  - match: /
    services:
    - name: chat
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    assert_only_ws_upgrades(&stack, "ws.example.com", "/plain has no enableWebsockets").await;
}

#[tokio::test]
async fn ingress_websocket_routes_annotation_upgrades_listed_paths() {
    let mut f = Fixture::new();
    f.backend("chat");
    f.write(
        "ws.yaml",
        &with_annotations(
            &ingress_yaml(
                "ws",
                Some("wsing.example.com"),
                &[("/ws", "Prefix", "chat"), ("/", "Prefix", "chat")],
            ),
            &[("projectcontour.io/websocket-routes", "/ws")],
        ),
    );
    let stack = f.start_stack().await;
    assert_only_ws_upgrades(
        &stack,
        "wsing.example.com",
        "/plain is not in websocket-routes",
    )
    .await;
}

#[tokio::test]
async fn ingressroute_prefix_rewrite_replaces_the_matched_prefix() {
    let mut f = Fixture::new();
    f.backend("api");
    f.backend("site");
    f.write(
        "rewrite.yaml",
        &ingress_route_yaml(
            "rewrite",
            "  virtualhost:
    fqdn: rewrite.example.com
  routes:
  - match: /api
    prefixRewrite: /
    services:
    - name: api
      port: 80
  - match: /
    services:
    - name: site
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    let req = |path: &str| RequestSpec::get(stack.http_addr(), "rewrite.example.com", path);
    wait_echo(&stack, &req("/api"), "api").await;

    let mut seen = Vec::new();
    for (path, expected) in [
        ("/api", "/"),
        ("/api/v1", "/v1"),
        ("/api/v1/users", "/v1/users"),
        ("/other", "/other"),
    ] {
        let r = send(&req(path)).await.expect("a request through Envoy");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        seen.push((
            path,
            expected,
            r.json()["path"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(_, expected, got)| expected != got)
        .collect();
    assert!(
        wrong.is_empty(),
        "the backend saw the wrong paths (request, expected, seen): {wrong:?}\n{}\n{}",
        config_dump_excerpt(&stack, "prefix_rewrite").await,
        xds_summary(&stack).await
    );
    assert_no_nacks(&stack).await;
}
