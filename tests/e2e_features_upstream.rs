#![cfg(feature = "e2e")]
//! How Envoy talks to upstreams, as IngressRoute services and Service annotations ask: upstream TLS
//! verified against a CA Secret, cookie affinity, active health checks, HTTP/2 in cleartext and
//! circuit breakers. Envoy must accept all of it (no NACK) and behave accordingly.

mod common;
#[path = "common/features.rs"]
mod features;

use std::time::Duration;

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::pki::TestCa;

use common::Fixture;
use features::{
    assert_no_nacks, config_dump_excerpt, dynamic_cluster_of, ingress_route_yaml, tls_backend,
    wait_echo, wait_response,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn ca_secret_yaml(name: &str, ca_pem: &str) -> String {
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\nstringData:\n  ca.crt: |\n{indented}")
}

#[tokio::test]
async fn upstream_tls_is_verified_against_the_ca_secret_and_the_subject_name() {
    let mut f = Fixture::new();
    let ca = TestCa::new("backend-ca").unwrap();
    let (_backend, _dir) = tls_backend(&f, &ca, "tlsweb", &["backend.internal"]);
    f.backend("web");
    f.write("ca.yaml", &ca_secret_yaml("backend-ca", &ca.cert_pem()));
    f.write(
        "ir.yaml",
        &ingress_route_yaml(
            "up",
            "  virtualhost: {fqdn: up.example.com}\n  routes:\n\
             \x20 - match: /right\n    services: [{name: tlsweb, port: 443, validation: {caSecret: backend-ca, subjectName: backend.internal}}]\n\
             \x20 - match: /wrong\n    services: [{name: tlsweb, port: 443, validation: {caSecret: backend-ca, subjectName: other.internal}}]\n\
             \x20 - match: /\n    services: [{name: web, port: 80}]\n",
        ),
    );
    let stack = f.start_stack().await;
    let right = wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "up.example.com", "/right"),
        "tlsweb",
    )
    .await;
    assert_eq!(right.json()["tls"], true, "{}", right.text());
    // A certificate for another name is refused by Envoy: no response from the backend.
    let wrong = wait_response(
        &stack,
        "a 503 for an upstream whose certificate names another host",
        &RequestSpec::get(stack.http_addr(), "up.example.com", "/wrong"),
        |r| r.status == 503,
    )
    .await;
    assert_eq!(wrong.backend(), None, "{}", wrong.text());
    let ssl_failures = stack
        .envoy
        .admin_get("/stats?filter=ssl.fail_verify_san")
        .await
        .unwrap();
    assert!(
        ssl_failures
            .lines()
            .any(|l| l.split(": ").nth(1).is_some_and(|n| n.trim() != "0")),
        "Envoy should count a SAN verification failure: {ssl_failures}"
    );
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn cookie_strategy_sets_the_affinity_cookie_and_health_checks_run() {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "ir.yaml",
        &ingress_route_yaml(
            "sticky",
            "  virtualhost: {fqdn: sticky.example.com}\n  routes:\n\
             \x20 - match: /\n    services: [{name: web, port: 80, strategy: Cookie, healthCheck: {path: /healthz, intervalSeconds: 1, timeoutSeconds: 1}}]\n",
        ),
    );
    let stack = f.start_stack().await;
    let r = wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "sticky.example.com", "/"),
        "web",
    )
    .await;
    let cookie = r.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        cookie.starts_with("X-Contour-Session-Affinity="),
        "set-cookie: {cookie:?}"
    );
    isobar_harness::wait_for_async(DEADLINE, "a successful active health check", || async {
        let stats = stack
            .envoy
            .admin_get("/stats?filter=health_check.success")
            .await?;
        Ok(stats
            .lines()
            .any(|l| {
                l.split(": ")
                    .nth(1)
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
            .then_some(()))
    })
    .await
    .unwrap();
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn service_annotations_set_h2c_and_circuit_breakers() {
    let mut f = Fixture::new();
    f.backend("web");
    // A Service without annotations beside it: it must still get HTTP/1.1, so the version check
    // below tells the annotation's effect apart from Envoy's defaults.
    f.backend("plain");
    // Re-annotate the backend's Service: HTTP/2 in cleartext to port `http`, at most 7 connections.
    let svc = std::fs::read_to_string(f.manifests_dir().join("svc-web.yaml")).unwrap();
    let annotated = svc.replacen(
        "  namespace: \"default\"\n",
        "  namespace: \"default\"\n  annotations:\n    projectcontour.io/upstream-protocol.h2c: http\n    projectcontour.io/max-connections: \"7\"\n",
        1,
    );
    assert_ne!(
        annotated, svc,
        "the Service manifest should have gained annotations"
    );
    f.write("svc-web.yaml", &annotated);
    f.write(
        "ingress.yaml",
        &common::ingress_yaml(
            "h2c",
            Some("h2c.example.com"),
            &[("/", "Prefix", "web"), ("/plain", "Prefix", "plain")],
        ),
    );
    let stack = f.start_stack().await;
    // The echo backend reports the HTTP version the request reached it with: that is what the
    // annotation is for, whatever the configuration looks like (the bootstrap's own xDS cluster
    // has http2_protocol_options too, so searching the dump for it proves nothing).
    let r = wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "h2c.example.com", "/"),
        "web",
    )
    .await;
    assert_eq!(
        r.json()["version"],
        "HTTP/2",
        "the h2c Service should be reached over HTTP/2: {}\n{}",
        r.text(),
        config_dump_excerpt(&stack, "default/web/").await
    );
    let plain = wait_echo(
        &stack,
        &RequestSpec::get(stack.http_addr(), "h2c.example.com", "/plain"),
        "plain",
    )
    .await;
    assert_eq!(
        plain.json()["version"],
        "HTTP/1.1",
        "a Service without the annotation keeps HTTP/1.1: {}",
        plain.text()
    );
    // The circuit breaker belongs to the web cluster itself, not just anywhere in the dump.
    let web = dynamic_cluster_of(&stack, "web").await;
    let thresholds = &web["circuit_breakers"]["thresholds"];
    assert!(
        thresholds
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["max_connections"] == 7)),
        "the web cluster should allow at most 7 connections: {web}"
    );
    let again = send(&RequestSpec::get(
        stack.http_addr(),
        "h2c.example.com",
        "/again",
    ))
    .await
    .unwrap();
    assert_eq!(again.backend().as_deref(), Some("web"));
    assert_eq!(again.json()["version"], "HTTP/2", "{}", again.text());
    assert_no_nacks(&stack).await;
}
