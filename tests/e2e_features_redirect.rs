#![cfg(feature = "e2e")]
//! Plain HTTP on TLS hosts through a real Envoy: IngressRoute redirects to HTTPS unless a route
//! has `permitInsecure`; the Ingress annotations `force-ssl-redirect` and `allow-http: "false"`.

mod common;
#[path = "common/features.rs"]
mod features;

use isobar_harness::http::{send, RequestSpec};
use isobar_harness::pki::TestCa;

use common::{ingress_with_tls_yaml, tls_secret_yaml, Fixture};
use features::{
    assert_no_nacks, https_request, ingress_route_yaml, wait_echo, wait_response, with_annotations,
};

#[tokio::test]
async fn ingressroute_tls_redirects_http_unless_permit_insecure() {
    let ca = TestCa::new("e2e redirect CA").unwrap();
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca.issue_server(&["secure.example.com"]).unwrap();
    f.write("secret.yaml", &tls_secret_yaml("secure-tls", &cert, &key));
    f.write(
        "secure.yaml",
        &ingress_route_yaml(
            "secure",
            "  virtualhost:
    fqdn: secure.example.com
    tls:
      secretName: secure-tls
  routes:
  - match: /open
    permitInsecure: true
    services:
    - name: web
      port: 80
  - match: /
    services:
    - name: web
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    // HTTPS serves every route.
    wait_echo(
        &stack,
        &https_request(&stack, "secure.example.com", "/"),
        "web",
    )
    .await;

    let http = |path: &str| RequestSpec::get(stack.http_addr(), "secure.example.com", path);
    let r = wait_response(&stack, "HTTP / to redirect", &http("/private"), |r| {
        r.status == 301
    })
    .await;
    let location = r.header("location").unwrap_or_default();
    assert!(
        location.starts_with("https://secure.example.com"),
        "location {location:?}"
    );
    assert!(location.ends_with("/private"), "location {location:?}");
    assert_eq!(r.backend(), None, "a redirect reached the backend");

    let r = send(&http("/open/x")).await.unwrap();
    assert_eq!(r.status, 200, "permitInsecure route: {}", r.text());
    assert_eq!(r.backend().as_deref(), Some("web"));
    assert_eq!(r.json()["tls"], false);
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingress_force_ssl_redirect_annotation_redirects_http() {
    let ca = TestCa::new("e2e redirect CA").unwrap();
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca.issue_server(&["force.example.com"]).unwrap();
    f.write("secret.yaml", &tls_secret_yaml("force-tls", &cert, &key));
    f.write(
        "force.yaml",
        &with_annotations(
            &ingress_with_tls_yaml(
                "force",
                Some("force.example.com"),
                &[("/", "Prefix", "web")],
                Some("force-tls"),
            ),
            &[("ingress.kubernetes.io/force-ssl-redirect", "true")],
        ),
    );
    let stack = f.start_stack().await;
    wait_echo(
        &stack,
        &https_request(&stack, "force.example.com", "/"),
        "web",
    )
    .await;

    let r = wait_response(
        &stack,
        "HTTP to redirect",
        &RequestSpec::get(stack.http_addr(), "force.example.com", "/page"),
        |r| r.status == 301,
    )
    .await;
    let location = r.header("location").unwrap_or_default();
    assert!(location.starts_with("https://"), "location {location:?}");
    assert!(location.ends_with("/page"), "location {location:?}");
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingress_allow_http_false_serves_https_only() {
    let ca = TestCa::new("e2e redirect CA").unwrap();
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca.issue_server(&["nohttp.example.com"]).unwrap();
    f.write("secret.yaml", &tls_secret_yaml("nohttp-tls", &cert, &key));
    f.write(
        "nohttp.yaml",
        &with_annotations(
            &ingress_with_tls_yaml(
                "nohttp",
                Some("nohttp.example.com"),
                &[("/", "Prefix", "web")],
                Some("nohttp-tls"),
            ),
            &[("kubernetes.io/ingress.allow-http", "false")],
        ),
    );
    let stack = f.start_stack().await;
    let r = wait_echo(
        &stack,
        &https_request(&stack, "nohttp.example.com", "/"),
        "web",
    )
    .await;
    assert_eq!(r.json()["tls"], false, "Envoy terminates TLS: {}", r.text());

    let r = send(&RequestSpec::get(
        stack.http_addr(),
        "nohttp.example.com",
        "/",
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 404, "HTTP with allow-http false: {}", r.text());
    assert_eq!(r.backend(), None);
    assert_no_nacks(&stack).await;
}
