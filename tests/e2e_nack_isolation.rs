#![cfg(feature = "e2e")]
//! When Envoy rejects a configuration anyway (a rule isobar lacks; here the test-only fault hook lets
//! an out-of-range timeout through), isobar finds the object whose contribution was rejected, serves
//! everything else, and names the offender; other objects' changes keep reaching Envoy; fixing the
//! object clears it.

mod common;

use isobar::admin::v1::{self, admin_client::AdminClient};
use isobar_harness::{wait_for_async, Stack};

use common::{debug_status, ingress_yaml, metric_sum, wait_routed_to, Fixture, CONVERGE};

/// The fault hook's annotation (compiled in with the `fault-hooks` feature, which `e2e` enables).
const FAULT: &str = "isobar.test/fault-unchecked-request-timeout-seconds";
/// 10^12 s: beyond what Envoy accepts for a duration, so it NACKs the route configuration.
const OUT_OF_RANGE: &str = "1000000000000";

/// An Ingress for `host` → `service`, with the fault hook's timeout when `bad`.
fn ingress(name: &str, host: &str, service: &str, bad: bool) -> String {
    let yaml = ingress_yaml(name, Some(host), &[("/", "Prefix", service)]);
    if bad {
        yaml.replacen(
            "metadata:\n",
            &format!("metadata:\n  annotations:\n    {FAULT}: \"{OUT_OF_RANGE}\"\n"),
            1,
        )
    } else {
        yaml
    }
}

/// The status isobar reports for Ingress `name`, once `accept` says it is the expected one.
async fn wait_ingress_status(
    stack: &Stack,
    name: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let what = format!("the status of Ingress {name}");
    wait_for_async(CONVERGE, &what, || async {
        let s = debug_status(stack).await;
        let objects = s["objects"].as_array().cloned().unwrap_or_default();
        Ok(objects
            .into_iter()
            .find(|o| o["name"] == name && o["kind"] == "Ingress")
            .filter(&accept))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(40)))
}

async fn route_nacks(stack: &Stack) -> f64 {
    let text = stack.isobar.get("/metrics").await.expect("GET /metrics");
    let line = text
        .lines()
        .find(|l| l.starts_with("isobar_xds_nacks_total{type=\"route\"}"))
        .unwrap_or_else(|| panic!("no route NACK series in /metrics:\n{text}"));
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn a_rejected_object_is_set_aside_named_and_the_others_keep_flowing() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    f.write(
        "good.yaml",
        &ingress("good", "good.example.com", "a", false),
    );
    let stack = f.start_stack().await;
    wait_routed_to(&stack, "good.example.com", "/", "a").await;
    assert_eq!(route_nacks(&stack).await, 0.0);

    // One bad object among three that arrive together: the bisection must find it.
    f.write(
        "batch.yaml",
        &[
            ingress("first", "first.example.com", "a", false),
            ingress("bad", "bad.example.com", "b", true),
            ingress("third", "third.example.com", "b", false),
        ]
        .join("---\n"),
    );
    let bad = wait_ingress_status(&stack, "bad", |o| {
        o["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("rejected by Envoy: "))
    })
    .await;
    assert_eq!(bad["status"], "invalid", "{bad}");
    assert!(
        bad["description"]
            .as_str()
            .unwrap_or_default()
            .contains("out-of-range"),
        "Envoy's own message is shown: {bad}"
    );
    // Its neighbours in the same change are served, and so is everything else.
    wait_routed_to(&stack, "first.example.com", "/", "a").await;
    wait_routed_to(&stack, "third.example.com", "/", "b").await;
    wait_routed_to(&stack, "good.example.com", "/", "a").await;
    assert!(
        route_nacks(&stack).await >= 1.0,
        "the NACK is counted by type"
    );
    // The admin API keeps it in the NACK history, in Envoy's words.
    let mut admin = AdminClient::connect(format!("http://{}", stack.isobar.debug_addr()))
        .await
        .expect("the admin API");
    let snapshot = admin
        .get_snapshot(v1::GetSnapshotRequest {})
        .await
        .expect("GetSnapshot")
        .into_inner();
    let nack = snapshot.nack_history.last().expect("a NACK in the history");
    assert_eq!(nack.r#type, "route", "{nack:?}");
    assert!(nack.message.contains("out-of-range"), "{nack:?}");
    assert!(nack.at > 0 && !nack.node_id.is_empty(), "{nack:?}");

    // Later changes of other objects keep reaching Envoy.
    f.write(
        "later.yaml",
        &ingress("later", "later.example.com", "b", false),
    );
    wait_routed_to(&stack, "later.example.com", "/", "b").await;
    let first = wait_ingress_status(&stack, "first", |_| true).await;
    assert_eq!(first["status"], "valid", "{first}");

    // Fixing the object clears it and it is served.
    f.write(
        "batch.yaml",
        &[
            ingress("first", "first.example.com", "a", false),
            ingress("bad", "bad.example.com", "b", false),
            ingress("third", "third.example.com", "b", false),
        ]
        .join("---\n"),
    );
    wait_routed_to(&stack, "bad.example.com", "/", "b").await;
    let fixed = wait_ingress_status(&stack, "bad", |o| o["status"] == "valid").await;
    assert_eq!(fixed["status"], "valid");
    let text = stack.isobar.get("/metrics").await.expect("GET /metrics");
    assert!(metric_sum(&text, "isobar_xds_nacks_total").unwrap_or_default() >= 1.0);
}
