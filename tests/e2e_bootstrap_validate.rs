#![cfg(feature = "e2e")]
//! The bootstraps `isobar bootstrap` writes (mTLS, certificates from `isobar certgen`; SotW and
//! delta ADS) pass `envoy --mode validate` on every Envoy version listed in
//! `conformance/envoy-versions`.

mod common;

use std::process::Command;

use isobar_harness::envoy::envoy_binary;
use isobar_harness::isobar::{certgen, write_bootstrap, BootstrapArgs, XdsApi};

use common::isobar_bin;

const VERSIONS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/envoy-versions");

fn envoy_versions() -> Vec<String> {
    let text = std::fs::read_to_string(VERSIONS_FILE)
        .unwrap_or_else(|e| panic!("reading {VERSIONS_FILE}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn bootstrap_validates_on_every_listed_envoy_version() {
    let versions = envoy_versions();
    assert!(
        versions.len() >= 2,
        "{VERSIONS_FILE} lists too few versions: {versions:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let certs = certgen(&isobar_bin(), &dir.path().join("certs")).unwrap();
    let bootstraps: Vec<(XdsApi, std::path::PathBuf)> = XdsApi::ALL
        .into_iter()
        .map(|api| {
            let bootstrap = dir.path().join(format!("bootstrap-{api}.json"));
            let mut args = BootstrapArgs::mtls(8001, &certs);
            args.xds_api = api;
            write_bootstrap(&isobar_bin(), &bootstrap, &args).unwrap();
            (api, bootstrap)
        })
        .collect();

    let mut failures = Vec::new();
    for version in &versions {
        let bin = match envoy_binary(version) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{version}: provisioning failed: {e}"));
                continue;
            }
        };
        for (api, bootstrap) in &bootstraps {
            let out = Command::new(&bin)
                .args(["--mode", "validate", "--disable-hot-restart", "-c"])
                .arg(bootstrap)
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let said_ok = text
                .lines()
                .any(|l| l.contains("configuration") && l.trim_end().ends_with("OK"));
            if !out.status.success() || !said_ok {
                failures.push(format!("{version} ({api} ADS): {}: {text}", out.status));
            } else {
                eprintln!("Envoy {version}: {api} bootstrap OK");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "bootstrap rejected:\n{}",
        failures.join("\n")
    );
}
