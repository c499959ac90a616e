#![cfg(feature = "e2e")]
//! What a change costs: an endpoints-only change (EndpointSlices) is followed by Envoy through an
//! EDS-only refresh, never a full rebuild; a status-only change rebuilds nothing at all.

mod common;

use std::collections::BTreeSet;

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::{wait_for_async, KubeStack};
use serde_json::json;

use common::kube::{apply, counters, ingress, lb_ingress, start_kube_stack, Counters, STATUS};
use common::{wait_routed_to, CONVERGE};

/// Polls until the answers for `host` come from exactly the backends in `want` (every one of
/// them seen, no other), over a window of consecutive requests.
async fn wait_backends(ks: &KubeStack, host: &str, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let what = format!("{host} to be served by exactly {want:?}");
    wait_for_async(CONVERGE, &what, || async {
        let mut seen = BTreeSet::new();
        for _ in 0..(8 * want.len()) {
            let r = send(&RequestSpec::get(ks.stack.http_addr(), host, "/")).await;
            match r.ok().filter(|r| r.status == 200).and_then(|r| r.backend()) {
                Some(b) => seen.insert(b),
                None => return Ok(None),
            };
        }
        Ok((seen == want).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)));
}

fn assert_no_rebuild(before: Counters, after: Counters, what: &str) {
    assert_eq!(
        after.rebuilds, before.rebuilds,
        "{what} caused a full rebuild: {before:?} -> {after:?}"
    );
    assert_eq!(after.nacks, before.nacks, "Envoy NACKed: {after:?}");
}

#[tokio::test]
async fn endpoint_changes_refresh_only_eds_and_status_changes_rebuild_nothing() {
    let ks = start_kube_stack().await;
    let a1 = ks.start_echo("a1").expect("echo a1");
    ks.apply_service("a").await.expect("Service a");
    ks.apply_slice("a", "a-1", a1.port())
        .await
        .expect("slice a-1");
    let host = ks.host("app");
    apply(&ks, ingress("app", &host, &[("/", "a")])).await;
    wait_routed_to(&ks.stack, &host, "/", "a1").await;
    // The status write comes after the rebuild that routed the Ingress: once it is there, the
    // routing changes have all been processed.
    ks.wait_ingress_lb("app", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ks.log_tails(30)));
    let start = counters(&ks.stack).await;

    // Scale up: a second backend in a second slice of the Service.
    let a2 = ks.start_echo("a2").expect("echo a2");
    ks.apply_slice("a", "a-2", a2.port())
        .await
        .expect("slice a-2");
    wait_backends(&ks, &host, &["a1", "a2"]).await;
    let scaled = counters(&ks.stack).await;
    assert_no_rebuild(start, scaled, "adding an EndpointSlice");
    assert!(
        scaled.endpoint_refreshes > start.endpoint_refreshes,
        "no EDS refresh for a new EndpointSlice: {start:?} -> {scaled:?}"
    );

    // Move the second endpoint to another port (another backend process).
    let a3 = ks.start_echo("a3").expect("echo a3");
    ks.apply_slice("a", "a-2", a3.port())
        .await
        .expect("slice a-2");
    wait_backends(&ks, &host, &["a1", "a3"]).await;
    let moved = counters(&ks.stack).await;
    assert_no_rebuild(scaled, moved, "moving an endpoint to another port");
    assert!(
        moved.endpoint_refreshes > scaled.endpoint_refreshes,
        "no EDS refresh for a changed EndpointSlice: {scaled:?} -> {moved:?}"
    );

    // Scale down: the slice goes away.
    assert!(ks
        .delete(ks.slice_api_version(), "EndpointSlice", "a-2")
        .await
        .expect("deleting slice a-2"));
    wait_backends(&ks, &host, &["a1"]).await;
    let down = counters(&ks.stack).await;
    assert_no_rebuild(moved, down, "deleting an EndpointSlice");
    assert!(
        down.endpoint_refreshes > moved.endpoint_refreshes,
        "no EDS refresh for a deleted EndpointSlice: {moved:?} -> {down:?}"
    );

    // Status only: someone else overwrites the Ingress status. isobar, the leader, puts its
    // address back (which shows it has processed the update) without rebuilding anything.
    ks.client()
        .merge_patch(
            "networking.k8s.io/v1",
            "Ingress",
            Some(ks.namespace()),
            "app",
            Some("status"),
            &json!({"status": {"loadBalancer": {"ingress": [{"hostname": "elsewhere.isobar.test"}]}}}),
        )
        .await
        .expect("patching the Ingress status");
    ks.wait_ingress_lb("app", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "isobar did not restore the status: {e}\n{}",
                ks.log_tails(30)
            )
        });
    let after_status = counters(&ks.stack).await;
    assert_no_rebuild(down, after_status, "a status-only update");
    assert_eq!(
        after_status.endpoint_refreshes, down.endpoint_refreshes,
        "a status-only update refreshed endpoints: {down:?} -> {after_status:?}"
    );
    assert!(
        after_status.status_writes > down.status_writes,
        "the status came back without a write by isobar? {down:?} -> {after_status:?}"
    );
    wait_routed_to(&ks.stack, &host, "/", "a1").await;
}
