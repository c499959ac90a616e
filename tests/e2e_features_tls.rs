#![cfg(feature = "e2e")]
//! TLS features through a real Envoy: IngressRoute TLS passthrough (the backend's own
//! certificate reaches the client), `tcpproxy` behind Envoy-terminated TLS, and the minimum TLS
//! version (Ingress annotation and IngressRoute `minimumProtocolVersion`).

mod common;
#[path = "common/features.rs"]
mod features;

use isobar_harness::http::{send, RequestSpec, Trust};
use isobar_harness::pki::TestCa;
use isobar_harness::tls::TlsVersion;
use isobar_harness::{Error, Stack};

use common::{ingress_with_tls_yaml, tls_secret_yaml, Fixture};
use features::{
    assert_no_nacks, config_dump_excerpt, https_request, ingress_route_yaml, tls_backend,
    wait_echo, wait_response, with_annotations, xds_summary,
};

#[tokio::test]
async fn ingressroute_tls_passthrough_reaches_the_backend_certificate() {
    let backend_ca = TestCa::new("e2e backend CA").unwrap();
    let f = Fixture::new();
    let (_echo, _dir) = tls_backend(&f, &backend_ca, "tlsecho", &["pass.example.com"]);
    f.write(
        "pass.yaml",
        &ingress_route_yaml(
            "pass",
            "  virtualhost:
    fqdn: pass.example.com
    tls:
      passthrough: true
  tcpproxy:
    services:
    - name: tlsecho
      port: 443
",
        ),
    );
    let stack = f.start_stack().await;
    // Verify the chain against the backend's CA: only the backend holds that certificate.
    let mut req = https_request(&stack, "pass.example.com", "/through");
    req.trust = Trust::CaPem(backend_ca.cert_pem().into_bytes());
    let r = wait_echo(&stack, &req, "tlsecho").await;
    assert_eq!(
        r.json()["tls"],
        true,
        "the backend terminated TLS: {}",
        r.text()
    );
    assert_eq!(r.json()["path"], "/through", "{}", r.text());
    let names = r
        .peer_certificate_names()
        .unwrap()
        .expect("no peer certificate");
    assert_eq!(names.dns_names, vec!["pass.example.com".to_string()]);
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingressroute_tcpproxy_behind_envoy_tls_forwards_bytes_to_a_plain_backend() {
    let ca = TestCa::new("e2e tcpproxy CA").unwrap();
    let mut f = Fixture::new();
    f.backend("plain");
    let (cert, key) = ca.issue_server(&["tcp.example.com"]).unwrap();
    f.write("secret.yaml", &tls_secret_yaml("tcp-tls", &cert, &key));
    f.write(
        "tcp.yaml",
        &ingress_route_yaml(
            "tcp",
            "  virtualhost:
    fqdn: tcp.example.com
    tls:
      secretName: tcp-tls
  tcpproxy:
    services:
    - name: plain
      port: 80
",
        ),
    );
    let stack = f.start_stack().await;
    let mut req = https_request(&stack, "tcp.example.com", "/bytes");
    req.trust = Trust::CaPem(ca.cert_pem().into_bytes());
    let r = wait_echo(&stack, &req, "plain").await;
    // Envoy terminated TLS with the Secret's certificate; the backend got plain bytes.
    assert_eq!(r.json()["tls"], false, "{}", r.text());
    assert_eq!(r.json()["path"], "/bytes", "{}", r.text());
    let names = r
        .peer_certificate_names()
        .unwrap()
        .expect("no peer certificate");
    assert_eq!(names.dns_names, vec!["tcp.example.com".to_string()]);
    assert_no_nacks(&stack).await;
}

/// `host` refuses a TLS 1.2-only client and serves a TLS 1.3 one; `open` still accepts TLS 1.2.
async fn check_minimum_tls_13(stack: &Stack, ca: &TestCa, host: &str, open: &str) {
    let req = |host: &str, version: TlsVersion| {
        let mut r = https_request(stack, host, "/");
        r.trust = Trust::CaPem(ca.cert_pem().into_bytes());
        r.tls_version = Some(version);
        r
    };
    // Both hosts serve TLS 1.3 (and routing is in place).
    let r = wait_echo(stack, &req(host, TlsVersion::V1_3), "web").await;
    assert_eq!(r.status, 200);
    wait_echo(stack, &req(open, TlsVersion::V1_3), "web").await;
    // The control: without a minimum, TLS 1.2 is fine.
    wait_echo(stack, &req(open, TlsVersion::V1_2), "web").await;

    match send(&req(host, TlsVersion::V1_2)).await {
        Err(Error::Tls(msg)) => assert!(msg.contains(host), "{msg}"),
        Err(e) => panic!("TLS 1.2 to {host}: expected a handshake failure, got {e}"),
        Ok(r) => panic!(
            "TLS 1.2 to {host} (minimum 1.3) was served: status {}\n{}",
            r.status,
            config_dump_excerpt(stack, "tls_minimum_protocol_version").await
        ),
    }
}

#[tokio::test]
async fn ingress_tls_minimum_protocol_version_annotation_refuses_tls12() {
    let ca = TestCa::new("e2e min TLS CA").unwrap();
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca
        .issue_server(&["strict.example.com", "open.example.com"])
        .unwrap();
    f.write("secret.yaml", &tls_secret_yaml("both-tls", &cert, &key));
    f.write(
        "strict.yaml",
        &with_annotations(
            &ingress_with_tls_yaml(
                "strict",
                Some("strict.example.com"),
                &[("/", "Prefix", "web")],
                Some("both-tls"),
            ),
            &[("projectcontour.io/tls-minimum-protocol-version", "1.3")],
        ),
    );
    f.write(
        "open.yaml",
        &ingress_with_tls_yaml(
            "open",
            Some("open.example.com"),
            &[("/", "Prefix", "web")],
            Some("both-tls"),
        ),
    );
    let stack = f.start_stack().await;
    check_minimum_tls_13(&stack, &ca, "strict.example.com", "open.example.com").await;
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn ingressroute_minimum_protocol_version_refuses_tls12() {
    let ca = TestCa::new("e2e min TLS CA").unwrap();
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca
        .issue_server(&["strict.example.com", "open.example.com"])
        .unwrap();
    f.write("secret.yaml", &tls_secret_yaml("both-tls", &cert, &key));
    for (name, fqdn, min) in [
        (
            "strict",
            "strict.example.com",
            "      minimumProtocolVersion: \"1.3\"\n",
        ),
        ("open", "open.example.com", ""),
    ] {
        f.write(
            &format!("{name}.yaml"),
            &ingress_route_yaml(
                name,
                &format!(
                    "  virtualhost:
    fqdn: {fqdn}
    tls:
      secretName: both-tls
{min}  routes:
  - match: /
    services:
    - name: web
      port: 80
"
                ),
            ),
        );
    }
    let stack = f.start_stack().await;
    check_minimum_tls_13(&stack, &ca, "strict.example.com", "open.example.com").await;
    // Plain HTTP on a TLS IngressRoute host redirects; it is not a hole in the minimum version.
    let r = wait_response(
        &stack,
        "HTTP to redirect",
        &RequestSpec::get(stack.http_addr(), "strict.example.com", "/"),
        |r| r.status == 301,
    )
    .await;
    assert!(
        r.header("location")
            .unwrap_or_default()
            .starts_with("https://"),
        "{:?}\n{}",
        r.headers,
        xds_summary(&stack).await
    );
    assert_no_nacks(&stack).await;
}
