//! Shared pieces of the xDS-port tests: isobar's counters of refused clients, probes with a chosen
//! client certificate, and further Envoys pointed at a stack's isobar.

use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use isobar_harness::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions};
use isobar_harness::isobar::{write_bootstrap, BootstrapArgs};
use isobar_harness::pki::{ClientCertSpec, TestCa};
use isobar_harness::xds_client::{ads_first_response, XdsClientTls, LISTENER_TYPE};
use isobar_harness::{wait_for_async, Stack};

use super::{debug_xds, isobar_bin, CONVERGE};

/// Bound on one xDS probe (connect, handshake, first response).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A number in isobar's `/debug/xds` (`tls_handshake_failures`, `client_san_refusals`, ...).
pub async fn xds_count(stack: &Stack, field: &str) -> u64 {
    let x = debug_xds(stack).await;
    x[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {x}"))
}

/// Polls until `/debug/xds` `field` exceeds `before` and isobar's log mentions `reason`.
pub async fn wait_refusal(stack: &Stack, field: &str, before: u64, reason: &str) {
    let what = format!("isobar's {field} to grow, with {reason:?} in its log");
    wait_for_async(CONVERGE, &what, || async {
        let counted = xds_count(stack, field).await > before;
        Ok((counted && stack.isobar.log_tail(200).contains(reason)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.isobar.log_tail(20)));
}

/// isobar's own CA (from certgen), to issue certificates it trusts but should still refuse.
pub fn isobars_ca(stack: &Stack) -> TestCa {
    let certs = stack.certs();
    let pem = |p: &Path| String::from_utf8(read(p)).expect("PEM is ASCII");
    TestCa::from_pem(&pem(&certs.ca_cert), &pem(&certs.ca_key))
        .unwrap_or_else(|e| panic!("loading isobar's CA: {e}"))
}

/// Probe TLS that trusts isobar and presents a certificate from isobar's CA shaped by `spec`.
pub fn client_tls(stack: &Stack, spec: &ClientCertSpec) -> XdsClientTls {
    let (cert, key) = isobars_ca(stack)
        .issue_client_with(spec)
        .unwrap_or_else(|e| panic!("issuing {spec:?}: {e}"));
    XdsClientTls {
        ca_pem: Some(read(&stack.certs().ca_cert)),
        client_cert_pem: Some(cert.into_bytes()),
        client_key_pem: Some(key.into_bytes()),
        server_name: "isobar".into(),
    }
}

/// Asks isobar for listeners as an Envoy would.
pub async fn probe_listeners(
    stack: &Stack,
    tls: Option<XdsClientTls>,
) -> isobar_harness::Result<DiscoveryResponse> {
    ads_first_response(stack.isobar.xds_addr(), tls, LISTENER_TYPE, PROBE_TIMEOUT).await
}

/// Panics unless the probe gets listeners.
pub async fn assert_probe_served(stack: &Stack, tls: XdsClientTls, who: &str) {
    let r = probe_listeners(stack, Some(tls))
        .await
        .unwrap_or_else(|e| panic!("{who} was refused: {e}\n{}", stack.isobar.log_tail(20)));
    assert_eq!(r.type_url, LISTENER_TYPE, "{who}");
    assert!(!r.resources.is_empty(), "{who}: no listeners in {r:?}");
}

/// Panics if the probe gets any response.
pub async fn assert_probe_refused(stack: &Stack, tls: Option<XdsClientTls>, who: &str) {
    match probe_listeners(stack, tls).await {
        Err(e) => eprintln!("{who} refused as expected: {e}"),
        Ok(r) => panic!(
            "{who} got a {} response with {} resources",
            r.type_url,
            r.resources.len()
        ),
    }
}

/// Starts another Envoy against the stack's isobar, bootstrapped with `args`, working in `name`
/// under the stack's work dir.
pub async fn start_envoy(stack: &Stack, args: &BootstrapArgs, name: &str) -> Envoy {
    let work = stack.work_dir().join(name);
    std::fs::create_dir_all(&work).unwrap();
    let bootstrap = work.join("bootstrap.json");
    write_bootstrap(&isobar_bin(), &bootstrap, args).unwrap();
    let version = default_envoy_version();
    let bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("provisioning Envoy: {e}"));
    Envoy::start(EnvoyOptions::new(bin, bootstrap, work.join("envoy")))
        .await
        .unwrap_or_else(|e| panic!("starting Envoy {name}: {e}"))
}
