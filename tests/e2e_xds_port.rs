#![cfg(feature = "e2e")]
//! The xDS port beyond the CA check: idle connections cannot lock a real Envoy out, and
//! `--xds-client-san` narrows which of the CA's client certificates get configuration.

mod common;

use isobar_harness::pki::ClientCertSpec;
use isobar_harness::{wait_for_async, Stack};
use tokio::net::TcpStream;

use common::xds::{
    assert_probe_refused, assert_probe_served, client_tls, start_envoy, wait_refusal, xds_count,
};
use common::{ingress_yaml, wait_envoy_acked_listeners, Fixture, CONVERGE};

const IDLE_CONNECTIONS: u64 = 1_000;

/// A stack serving one Ingress, isobar started with `isobar_args`.
async fn stack_with(isobar_args: &[&str]) -> (Fixture, Stack) {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    let stack = f.start_stack_with_isobar_args(isobar_args).await;
    (f, stack)
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_keep_a_new_envoy_from_its_listeners() {
    // A handshake timeout far beyond the deadline below: only the handshake slots' design (an idle
    // connection holds none), not the timeout closing idle connections, can let Envoy in in time.
    // The default 64 slots are far fewer than the idle connections.
    let (_f, stack) = stack_with(&["--xds-handshake-timeout=300s"]).await;
    let mut idle = Vec::new();
    for i in 0..IDLE_CONNECTIONS {
        let conn = TcpStream::connect(stack.isobar.xds_addr())
            .await
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(conn);
    }
    wait_for_async(CONVERGE, "isobar to hold the idle connections", || async {
        let waiting = xds_count(&stack, "tls_awaiting_client_hello").await;
        Ok((waiting >= IDLE_CONNECTIONS).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.isobar.log_tail(20)));

    let args = stack.bootstrap_args();
    let envoy = start_envoy(&stack, &args, "late-envoy").await;
    wait_for_async(CONVERGE, "the new Envoy to get its listeners", || async {
        let names = envoy.dynamic_listener_names().await?;
        Ok((names == ["ingress_http"]).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", envoy.log_tail(30), stack.isobar.log_tail(30)));

    // The idle connections were there all along: isobar neither closed nor counted them.
    let x = common::debug_xds(&stack).await;
    assert!(
        x["tls_awaiting_client_hello"].as_u64() >= Some(IDLE_CONNECTIONS),
        "{x}"
    );
    assert_eq!(x["tls_handshake_failures"], 0, "{x}");
    drop(idle);
}

#[tokio::test]
async fn only_client_certificates_with_an_allowed_san_get_configuration() {
    // certgen's Envoy certificate carries envoy.isobar-system.svc among its SANs.
    let (_f, stack) = stack_with(&[
        "--xds-client-san",
        "envoy.isobar-system.svc,other.example",
        "--xds-client-san=third.example",
    ])
    .await;
    let xds = wait_envoy_acked_listeners(&stack).await;
    assert_eq!(xds["client_san_refusals"], 0, "{xds}");

    let allowed = ClientCertSpec::new("other").with_dns_names(&["x.example", "OTHER.example"]);
    assert_probe_served(
        &stack,
        client_tls(&stack, &allowed),
        "a client with an allowed SAN",
    )
    .await;

    // Same CA, valid, clientAuth: only the SAN is wrong (a CN does not count).
    let stranger =
        ClientCertSpec::new("envoy.isobar-system.svc").with_dns_names(&["stranger.example"]);
    let handshake_failures = xds_count(&stack, "tls_handshake_failures").await;
    let before = xds_count(&stack, "client_san_refusals").await;
    assert_probe_refused(
        &stack,
        Some(client_tls(&stack, &stranger)),
        "a client whose SANs are not allowed",
    )
    .await;
    wait_refusal(&stack, "client_san_refusals", before, "stranger.example").await;
    assert_eq!(
        xds_count(&stack, "tls_handshake_failures").await,
        handshake_failures,
        "a SAN refusal is not a handshake failure"
    );
}
