#![cfg(feature = "e2e")]
//! A bad annotation value is reported, not defaulted (as Contour did): the Ingress is invalid
//! with a reason in `/debug/status`, another Ingress is undisturbed, and Envoy rejects nothing.

mod common;
#[path = "common/features.rs"]
mod features;

use isobar_harness::http::{send, RequestSpec};

use common::{ingress_yaml, Fixture};
use features::{assert_no_nacks, wait_echo, wait_object_status, with_annotations};

#[tokio::test]
async fn invalid_request_timeout_annotation_invalidates_only_that_ingress() {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "bad.yaml",
        &with_annotations(
            &ingress_yaml("bad", Some("bad.example.com"), &[("/", "Prefix", "web")]),
            &[("contour.heptio.com/request-timeout", "forever")],
        ),
    );
    f.write(
        "good.yaml",
        &with_annotations(
            &ingress_yaml("good", Some("good.example.com"), &[("/", "Prefix", "web")]),
            &[("contour.heptio.com/request-timeout", "5s")],
        ),
    );
    let stack = f.start_stack().await;
    wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "good.example.com", "/"),
        "web",
    )
    .await;

    let bad = wait_object_status(&stack, "Ingress", "bad", "invalid").await;
    let description = bad["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("contour.heptio.com/request-timeout")
            && description.contains("forever"),
        "the reason should name the annotation and its value: {bad}"
    );
    let good = wait_object_status(&stack, "Ingress", "good", "valid").await;
    assert_eq!(good["status"], "valid", "{good}");

    // The invalid Ingress is left out: its host is unknown to Envoy.
    let r = send(&RequestSpec::get(stack.http_addr(), "bad.example.com", "/"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.backend(), None);
    assert_no_nacks(&stack).await;
}
