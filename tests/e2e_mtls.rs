#![cfg(feature = "e2e")]
//! The xDS connection between isobar and Envoy is mutually authenticated: only a client with a
//! certificate from isobar's CA gets configuration, and Envoy only accepts isobar's certificate.

mod common;

use std::time::Duration;

use isobar_harness::envoy::Envoy;
use isobar_harness::isobar::BootstrapArgs;
use isobar_harness::pki::{ClientCertSpec, TestCa};
use isobar_harness::xds_client::{ads_first_response, XdsClientTls, LISTENER_TYPE};
use isobar_harness::{wait_for_async, Stack};

use common::xds::{
    assert_probe_refused, assert_probe_served, client_tls, read, start_envoy, wait_refusal,
    xds_count, PROBE_TIMEOUT,
};
use common::{
    ingress_yaml, isobar_bin, wait_envoy_acked_listeners, wait_routed_to, Fixture, CONVERGE,
};

/// A stack serving one Ingress (so there are listeners to withhold).
async fn stack() -> (Fixture, Stack) {
    let mut f = Fixture::new();
    f.backend("web");
    f.write(
        "web.yaml",
        &ingress_yaml("web", Some("web.example.com"), &[("/", "Prefix", "web")]),
    );
    let stack = f.start_stack().await;
    (f, stack)
}

/// Probes isobar's xDS port for listeners; the probe must be refused and counted.
async fn assert_refused_at_the_handshake(stack: &Stack, tls: Option<XdsClientTls>, who: &str) {
    let before = xds_count(stack, "tls_handshake_failures").await;
    assert_probe_refused(stack, tls, who).await;
    wait_refusal(
        stack,
        "tls_handshake_failures",
        before,
        "xDS client refused",
    )
    .await;
}

#[tokio::test]
async fn envoy_with_the_right_client_certificate_receives_config() {
    let (_f, stack) = stack().await;
    wait_routed_to(&stack, "web.example.com", "/", "web").await;
    let listeners = stack.envoy.dynamic_listener_names().await.unwrap();
    assert_eq!(listeners, vec!["ingress_http".to_string()]);

    // isobar shows Envoy's ADS stream, with the listeners ACKed.
    let xds = wait_envoy_acked_listeners(&stack).await;
    assert_eq!(xds["nacks"], 0, "{xds}");
    assert_eq!(xds["tls_handshake_failures"], 0, "{xds}");
}

#[tokio::test]
async fn correctly_certified_xds_client_gets_listeners() {
    let (_f, stack) = stack().await;
    let certs = stack.certs();
    let tls = XdsClientTls {
        ca_pem: Some(read(&certs.ca_cert)),
        client_cert_pem: Some(read(&certs.envoy_cert)),
        client_key_pem: Some(read(&certs.envoy_key)),
        server_name: "isobar".into(),
    };
    let r = ads_first_response(
        stack.isobar.xds_addr(),
        Some(tls),
        LISTENER_TYPE,
        PROBE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.isobar.log_tail(20)));
    assert_eq!(r.type_url, LISTENER_TYPE);
    assert!(!r.version_info.is_empty(), "{r:?}");
    assert!(!r.resources.is_empty(), "no listeners in {r:?}");
    assert!(r.resources.iter().all(|a| a.type_url == LISTENER_TYPE));
}

#[tokio::test]
async fn xds_client_with_a_certificate_from_another_ca_is_refused() {
    let (_f, stack) = stack().await;
    let other = TestCa::new("not isobar's CA").unwrap();
    let (cert, key) = other.issue_client("envoy").unwrap();
    let tls = XdsClientTls {
        // The client trusts isobar: only its own certificate is wrong.
        ca_pem: Some(read(&stack.certs().ca_cert)),
        client_cert_pem: Some(cert.into_bytes()),
        client_key_pem: Some(key.into_bytes()),
        server_name: "isobar".into(),
    };
    assert_refused_at_the_handshake(&stack, Some(tls), "a client with another CA's certificate")
        .await;
}

#[tokio::test]
async fn xds_client_without_a_certificate_is_refused() {
    let (_f, stack) = stack().await;
    let tls = XdsClientTls {
        ca_pem: Some(read(&stack.certs().ca_cert)),
        client_cert_pem: None,
        client_key_pem: None,
        server_name: "isobar".into(),
    };
    assert_refused_at_the_handshake(&stack, Some(tls), "a client without a certificate").await;
}

/// A certificate from isobar's own CA that is wrong in one way (`spec`) is refused at the handshake,
/// for that reason (`reason`, from isobar's log), and counted; the same certificate without the flaw
/// is served, so the refusal is the flaw's doing.
async fn assert_flawed_certificate_refused(spec: ClientCertSpec, who: &str, reason: &str) {
    let (_f, stack) = stack().await;
    let sound = ClientCertSpec::new("envoy");
    assert_probe_served(&stack, client_tls(&stack, &sound), "a sound certificate").await;
    let before = xds_count(&stack, "tls_handshake_failures").await;
    assert_probe_refused(&stack, Some(client_tls(&stack, &spec)), who).await;
    wait_refusal(&stack, "tls_handshake_failures", before, reason).await;
}

#[tokio::test]
async fn xds_client_with_an_expired_certificate_is_refused() {
    assert_flawed_certificate_refused(
        ClientCertSpec::new("envoy").expired(),
        "a client with an expired certificate",
        "certificate expired",
    )
    .await;
}

#[tokio::test]
async fn xds_client_with_a_not_yet_valid_certificate_is_refused() {
    assert_flawed_certificate_refused(
        ClientCertSpec::new("envoy").not_yet_valid(),
        "a client with a not-yet-valid certificate",
        "certificate not valid yet",
    )
    .await;
}

#[tokio::test]
async fn xds_client_with_a_server_auth_only_certificate_is_refused() {
    assert_flawed_certificate_refused(
        ClientCertSpec::new("envoy").server_auth_only(),
        "a client presenting a serverAuth-only certificate",
        "certificate does not allow extended key usage for client",
    )
    .await;
}

#[tokio::test]
async fn plaintext_xds_client_is_refused() {
    let (_f, stack) = stack().await;
    assert_refused_at_the_handshake(&stack, None, "a plaintext client").await;
}

/// Starts a second Envoy against the stack's isobar with `args`, and returns it once Envoy's
/// `isobar` cluster shows `stat` (a TLS failure).
async fn envoy_failing_tls(stack: &Stack, args: &BootstrapArgs, stat: &str) -> Envoy {
    let envoy = start_envoy(stack, args, "rejecting-envoy").await;
    let what = format!("Envoy stat {stat} to count a failure");
    wait_for_async(CONVERGE, &what, || async {
        Ok(envoy.stat(stat).await?.filter(|v| *v > 0))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", envoy.log_tail(30)));
    envoy
}

#[tokio::test]
async fn envoy_expecting_another_san_gets_no_listeners() {
    let (_f, stack) = stack().await;
    let mut args = stack.bootstrap_args();
    args.xds_server_name = Some("not-isobar".into());
    let envoy = envoy_failing_tls(&stack, &args, "cluster.isobar.ssl.fail_verify_san").await;
    assert_eq!(
        envoy.dynamic_listener_names().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        envoy
            .stat("cluster.isobar.upstream_cx_connect_fail")
            .await
            .unwrap()
            .map(|v| v > 0),
        Some(true)
    );
    // The stack's own Envoy, correctly configured, has them.
    assert_eq!(
        stack.envoy.dynamic_listener_names().await.unwrap(),
        vec!["ingress_http".to_string()]
    );
}

#[tokio::test]
async fn envoy_trusting_another_ca_gets_no_listeners() {
    let (_f, stack) = stack().await;
    let other = TestCa::new("not isobar's CA").unwrap();
    let other_ca = stack.work_dir().join("other-ca.crt");
    std::fs::write(&other_ca, other.cert_pem()).unwrap();
    let mut args = stack.bootstrap_args();
    args.envoy_cafile = Some(other_ca);
    let envoy = envoy_failing_tls(&stack, &args, "cluster.isobar.ssl.fail_verify_error").await;
    assert_eq!(
        envoy.dynamic_listener_names().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        stack.envoy.dynamic_listener_names().await.unwrap(),
        vec!["ingress_http".to_string()]
    );
}

#[test]
fn serve_without_certificates_or_insecure_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = std::process::Command::new(isobar_bin())
        .arg("serve")
        .arg("--manifests")
        .arg(dir.path())
        .args([
            "--xds-port",
            "0",
            "--http-address",
            "127.0.0.1",
            "--http-port",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // If isobar wrongly starts serving it never exits: bound the wait, and kill it then.
    let status = isobar_harness::wait_for(Duration::from_secs(10), "isobar serve to exit", || {
        child.try_wait().ok().flatten()
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = status.unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("isobar serve started without certificates ({e}): {stderr}")
    });
    assert!(!status.success(), "exit status {status}: {stderr}");
    assert!(
        stderr.contains("--insecure"),
        "stderr does not mention --insecure: {stderr}"
    );
    assert!(
        stderr.contains("--ca-file"),
        "stderr does not name the certificate flags: {stderr}"
    );
}
