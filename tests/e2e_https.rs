#![cfg(feature = "e2e")]
//! HTTPS on Envoy's non-standard port: SNI selects the certificate from an Ingress's TLS Secret.

mod common;

use isobar_harness::http::{send, RequestSpec, Response, Trust};
use isobar_harness::pki::TestCa;
use isobar_harness::{wait_for_async, Stack};

use common::{
    ingress_with_tls_yaml, ingress_yaml, tls_secret_yaml, wait_routed_to, Fixture, CONVERGE,
};

const SECURE_HOST: &str = "secure.example.com";
const PLAIN_HOST: &str = "plain.example.com";

/// `secure.example.com` with a certificate from `ca` (Secret `secure-tls`), and `plain.example.com`
/// on HTTP only; both routed to backend `web`.
async fn stack_with_one_tls_host(ca: &TestCa) -> (Fixture, Stack) {
    let mut f = Fixture::new();
    f.backend("web");
    let (cert, key) = ca
        .issue_server(&[SECURE_HOST])
        .expect("issuing a certificate");
    f.write("secret.yaml", &tls_secret_yaml("secure-tls", &cert, &key));
    f.write(
        "secure.yaml",
        &ingress_with_tls_yaml(
            "secure",
            Some(SECURE_HOST),
            &[("/", "Prefix", "web")],
            Some("secure-tls"),
        ),
    );
    f.write(
        "plain.yaml",
        &ingress_yaml("plain", Some(PLAIN_HOST), &[("/", "Prefix", "web")]),
    );
    let stack = f.start_stack().await;
    (f, stack)
}

fn https_get(stack: &Stack, ca: &TestCa, host: &str, path: &str) -> RequestSpec {
    let mut req = RequestSpec::get(stack.https_addr(), host, path).https();
    req.trust = Trust::CaPem(ca.cert_pem().into_bytes());
    req
}

/// Polls until an HTTPS request succeeds (the TLS listener and its SDS secret may still warm).
async fn wait_https_ok(stack: &Stack, req: &RequestSpec) -> Response {
    wait_for_async(CONVERGE, "an HTTPS request to succeed", || async {
        Ok(send(req).await.ok().filter(|r| r.status == 200))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)))
}

#[tokio::test]
async fn https_with_sni_presents_the_secret_certificate_and_routes() {
    let ca = TestCa::new("e2e https CA").unwrap();
    let (_f, stack) = stack_with_one_tls_host(&ca).await;
    let host = format!("{SECURE_HOST}:{}", stack.https_addr().port());
    let req = https_get(&stack, &ca, &host, "/hello");
    assert_eq!(req.effective_sni(), SECURE_HOST);

    let r = wait_https_ok(&stack, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.backend().as_deref(), Some("web"), "{}", r.text());
    assert_eq!(r.json()["host"], host.as_str(), "{}", r.text());
    assert_eq!(r.json()["path"], "/hello", "{}", r.text());
    let names = r
        .peer_certificate_names()
        .unwrap()
        .expect("Envoy presented no certificate");
    assert!(
        names.dns_names.iter().any(|n| n == SECURE_HOST),
        "certificate names {names:?} lack {SECURE_HOST}"
    );

    // Without the port in Host, the same.
    let r = send(&https_get(&stack, &ca, SECURE_HOST, "/"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.backend().as_deref(), Some("web"), "{}", r.text());
}

#[tokio::test]
async fn sni_for_a_host_without_tls_gets_no_certificate() {
    let ca = TestCa::new("e2e https CA").unwrap();
    let (_f, stack) = stack_with_one_tls_host(&ca).await;
    // The TLS listener is up and the plain host routes over HTTP, so what follows is not warming.
    wait_https_ok(&stack, &https_get(&stack, &ca, SECURE_HOST, "/")).await;
    wait_routed_to(&stack, PLAIN_HOST, "/", "web").await;

    for sni in [PLAIN_HOST, "unknown.example.com"] {
        // Trust any certificate: the handshake must fail because none is offered, not on verification.
        let mut req = RequestSpec::get(stack.https_addr(), sni, "/").https();
        req.trust = Trust::Any;
        match send(&req).await {
            Err(isobar_harness::Error::Tls(msg)) => assert!(msg.contains(sni), "{msg}"),
            Err(e) => panic!("SNI {sni}: expected a TLS handshake failure, got {e}"),
            Ok(r) => panic!(
                "SNI {sni}: handshake succeeded (certificate {:?}), status {}",
                r.peer_certificate_names(),
                r.status
            ),
        }
    }
}
