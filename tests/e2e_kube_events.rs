#![cfg(feature = "e2e")]
//! Warning Events on Ingresses through a real kube-apiserver: isobar (running with exactly
//! deploy/base/rbac.yaml) tells an invalid Ingress's owner why with an events.k8s.io/v1 Event, once
//! per transition (becoming invalid, or another reason), never once per rebuild, and not when fixed.

mod common;

use isobar_harness::{wait_for_async, KubeStack};
use serde_json::{json, Value};

use common::kube::{apply, ingress, start_kube_stack, STATUS};
use common::wait_routed_to;

const TIMEOUT: &str = "projectcontour.io/request-timeout";

/// Ingress `name` for `host` → Service `a`, with a request-timeout annotation.
fn timed_ingress(name: &str, host: &str, timeout: &str) -> Value {
    let mut i = ingress(name, host, &[("/", "a")]);
    i["metadata"]["annotations"] = json!({ TIMEOUT: timeout });
    i
}

/// isobar's Events about Ingress `name`.
async fn events_of(ks: &KubeStack, name: &str) -> Vec<Value> {
    let path = format!(
        "/apis/events.k8s.io/v1/namespaces/{}/events",
        ks.namespace()
    );
    let list = ks
        .client()
        .get_json(&path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["regarding"]["kind"] == "Ingress"
                && e["regarding"]["name"] == name
                && e["reportingController"] == "isobar"
        })
        .cloned()
        .collect()
}

/// Polls until Ingress `name` has at least `n` of isobar's Events; returns them all.
async fn wait_events(ks: &KubeStack, name: &str, n: usize) -> Vec<Value> {
    let what = format!("{n} Event(s) on Ingress {name}");
    wait_for_async(STATUS, &what, || async {
        let events = events_of(ks, name).await;
        Ok((events.len() >= n).then_some(events))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)))
}

/// Returns once the status writer has completed a whole pass over statuses built after this call.
/// Passes run one at a time and each reads the latest statuses. The pass that publishes the first
/// barrier's Event saw everything applied before it, but may still be publishing other Events; the
/// second barrier is applied after that Event exists, so its Event comes from a later pass, which
/// starts only when that one has finished.
async fn writer_caught_up(ks: &KubeStack, label: &str) {
    for i in 0..2 {
        let name = format!("barrier-{label}-{i}");
        let host = ks.host(&name);
        apply(ks, timed_ingress(&name, &host, "forever")).await;
        wait_events(ks, &name, 1).await;
    }
}

#[tokio::test]
async fn an_invalid_ingress_gets_one_warning_per_transition() {
    let ks = start_kube_stack().await;
    let _a = ks.backend("a").await.expect("backend a");
    let host = ks.host("broken");
    apply(&ks, timed_ingress("broken", &host, "forever")).await;

    let events = wait_events(&ks, "broken", 1).await;
    let event = &events[0];
    assert_eq!(event["type"], "Warning", "{event}");
    assert_eq!(event["reason"], "Invalid", "{event}");
    let note = event["note"].as_str().unwrap_or_default();
    assert!(
        note.contains(TIMEOUT) && note.contains("\"forever\""),
        "note: {note}"
    );
    // Matched by uid, so `kubectl describe ingress broken` lists it.
    let stored = ks
        .get_ingress("broken")
        .await
        .expect("GET Ingress broken")
        .expect("Ingress broken");
    assert_eq!(
        event["regarding"]["uid"], stored["metadata"]["uid"],
        "{event}"
    );

    // Rebuilds (the barriers) that leave it invalid for the same reason: no repeat.
    writer_caught_up(&ks, "unchanged").await;
    let events = events_of(&ks, "broken").await;
    assert_eq!(events.len(), 1, "repeated: {events:?}");
    assert!(events[0]["series"].is_null(), "{events:?}");

    // Another reason: a second Warning, naming it.
    apply(&ks, timed_ingress("broken", &host, "never")).await;
    let events = wait_events(&ks, "broken", 2).await;
    assert!(
        events
            .iter()
            .any(|e| e["note"].as_str().is_some_and(|n| n.contains("\"never\""))),
        "{events:?}"
    );

    // Fixed: routed, and no Event for that.
    apply(&ks, timed_ingress("broken", &host, "5s")).await;
    wait_routed_to(&ks.stack, &host, "/", "a").await;
    writer_caught_up(&ks, "fixed").await;
    let events = events_of(&ks, "broken").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["type"] == "Warning"), "{events:?}");
}
