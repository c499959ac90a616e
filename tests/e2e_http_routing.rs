#![cfg(feature = "e2e")]
//! HTTP routing through a real Envoy on a non-standard port: by Host (with and without `:port`),
//! by path, Exact vs Prefix, and one-label wildcard hosts.

mod common;

use common::{get, ingress_yaml, wait_routed_to, Fixture};

#[tokio::test]
async fn host_and_path_route_to_different_backends_with_or_without_port() {
    let mut f = Fixture::new();
    f.backend("alpha");
    f.backend("beta");
    f.write(
        "foo.yaml",
        &ingress_yaml(
            "foo",
            Some("foo.example.com"),
            &[("/", "Prefix", "alpha"), ("/api", "Prefix", "beta")],
        ),
    );
    f.write(
        "bar.yaml",
        &ingress_yaml("bar", Some("bar.example.com"), &[("/", "Prefix", "beta")]),
    );
    let stack = f.start_stack().await;
    let port = stack.http_addr().port();
    let foo_with_port = format!("foo.example.com:{port}");
    let bar_with_port = format!("bar.example.com:{port}");

    wait_routed_to(&stack, &foo_with_port, "/", "alpha").await;
    for (host, path, backend) in [
        ("foo.example.com", "/", "alpha"),
        (foo_with_port.as_str(), "/index.html", "alpha"),
        ("foo.example.com", "/api", "beta"),
        (foo_with_port.as_str(), "/api/users", "beta"),
        ("bar.example.com", "/", "beta"),
        (bar_with_port.as_str(), "/api", "beta"),
    ] {
        let r = get(&stack, host, path).await;
        assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
        assert_eq!(
            r.backend().as_deref(),
            Some(backend),
            "{host}{path}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn backend_sees_the_host_header_unchanged_including_port() {
    let mut f = Fixture::new();
    f.backend("alpha");
    f.write(
        "foo.yaml",
        &ingress_yaml("foo", Some("foo.example.com"), &[("/", "Prefix", "alpha")]),
    );
    let stack = f.start_stack().await;
    let with_port = format!("foo.example.com:{}", stack.http_addr().port());
    wait_routed_to(&stack, &with_port, "/", "alpha").await;

    for host in [with_port.as_str(), "foo.example.com"] {
        let r = get(&stack, host, "/seen").await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.json()["host"], host, "{host}: {}", r.text());
        assert_eq!(r.json()["path"], "/seen", "{}", r.text());
    }
}

#[tokio::test]
async fn unknown_host_without_default_backend_gets_404() {
    let mut f = Fixture::new();
    f.backend("alpha");
    f.write(
        "foo.yaml",
        &ingress_yaml("foo", Some("foo.example.com"), &[("/", "Prefix", "alpha")]),
    );
    let stack = f.start_stack().await;
    let port = stack.http_addr().port();
    // Routing is in place (so a 404 below is not just "not configured yet").
    wait_routed_to(&stack, "foo.example.com", "/", "alpha").await;

    for host in [
        "unknown.example.com".to_string(),
        format!("unknown.example.com:{port}"),
        // A known host's name as a suffix or prefix is still another host.
        "xfoo.example.com".to_string(),
        "foo.example.com.evil".to_string(),
    ] {
        let r = get(&stack, &host, "/").await;
        assert_eq!(r.status, 404, "{host}: {}", r.text());
        assert_eq!(r.backend(), None, "{host} reached a backend: {}", r.text());
    }
}

#[tokio::test]
async fn prefix_matches_whole_path_elements_and_exact_wins_over_prefix() {
    let mut f = Fixture::new();
    f.backend("prefix");
    f.backend("exact");
    f.backend("fallback");
    f.write(
        "paths.yaml",
        &ingress_yaml(
            "paths",
            Some("paths.example.com"),
            &[
                ("/", "Prefix", "fallback"),
                ("/foo", "Prefix", "prefix"),
                ("/only", "Exact", "exact"),
                // Same path, both types: Exact wins for exactly `/both`.
                ("/both", "Prefix", "prefix"),
                ("/both", "Exact", "exact"),
            ],
        ),
    );
    let stack = f.start_stack().await;
    let host = format!("paths.example.com:{}", stack.http_addr().port());
    wait_routed_to(&stack, &host, "/foo", "prefix").await;

    for (path, backend) in [
        ("/foo", "prefix"),
        ("/foo/", "prefix"),
        ("/foo/bar", "prefix"),
        ("/foobar", "fallback"),
        ("/fo", "fallback"),
        ("/only", "exact"),
        ("/only/", "fallback"),
        ("/only/x", "fallback"),
        ("/Only", "fallback"),
        ("/both", "exact"),
        ("/both/x", "prefix"),
        ("/bothx", "fallback"),
    ] {
        let r = get(&stack, &host, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.backend().as_deref(),
            Some(backend),
            "{path}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn wildcard_host_matches_exactly_one_label() {
    let mut f = Fixture::new();
    f.backend("wild");
    f.write(
        "wild.yaml",
        &ingress_yaml("wild", Some("*.example.com"), &[("/", "Prefix", "wild")]),
    );
    let stack = f.start_stack().await;
    let port = stack.http_addr().port();
    wait_routed_to(&stack, "a.example.com", "/", "wild").await;

    for host in ["a.example.com".to_string(), format!("b.example.com:{port}")] {
        let r = get(&stack, &host, "/").await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.backend().as_deref(), Some("wild"), "{host}: {}", r.text());
        assert_eq!(r.json()["host"], host.as_str(), "{}", r.text());
    }
    for host in [
        "a.b.example.com".to_string(),
        format!("a.b.example.com:{port}"),
        "example.com".to_string(),
        "a.example.org".to_string(),
    ] {
        let r = get(&stack, &host, "/").await;
        assert_eq!(r.status, 404, "{host}: {}", r.text());
        assert_eq!(r.backend(), None, "{host} reached a backend: {}", r.text());
    }
}
