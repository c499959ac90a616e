#![cfg(feature = "e2e")]
//! `isobar certgen --kube` on a real API server, as the `isobar-certgen` ServiceAccount with exactly
//! the Role of `deploy/base/certgen.yaml`: it creates the split model's three Secrets, a re-run
//! changes nothing, a renewal window re-issues the leaves from the kept CA, and `--overwrite`
//! replaces the CA.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use isobar_harness::certinfo::cert_names;
use isobar_harness::kube::{parse_yaml_documents, KubeCluster, KubeClusterOptions};
use isobar_harness::kube_stack::ISOBAR_NAMESPACE;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use common::isobar_bin;
use common::kube::deploy_dir;

const SERVICE_ACCOUNT: &str = "isobar-certgen";
const SECRETS: [&str; 3] = ["isobar-ca", "isobar-cert", "envoy-cert"];

/// One stored Secret: its resourceVersion, type and decoded data.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    resource_version: String,
    type_: String,
    data: BTreeMap<String, String>,
}

async fn read_secrets(cluster: &KubeCluster) -> BTreeMap<&'static str, Stored> {
    let mut out = BTreeMap::new();
    for name in SECRETS {
        let value = cluster
            .client()
            .get("v1", "Secret", Some(ISOBAR_NAMESPACE), name)
            .await
            .unwrap_or_else(|e| panic!("reading Secret {name}: {e}"))
            .unwrap_or_else(|| panic!("Secret {ISOBAR_NAMESPACE}/{name} does not exist"));
        let secret: Secret = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("Secret {name} does not parse ({e}): {value}"));
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let text = String::from_utf8(v.0)
                    .unwrap_or_else(|e| panic!("Secret {name} key {k} is not UTF-8: {e}"));
                (k, text)
            })
            .collect();
        out.insert(
            name,
            Stored {
                resource_version: secret.metadata.resource_version.unwrap_or_default(),
                type_: secret.type_.unwrap_or_default(),
                data,
            },
        );
    }
    out
}

/// Runs `isobar certgen --kube` with the token kubeconfig; returns stdout, panicking on failure.
fn certgen_kube(kubeconfig: &Path, extra: &[&str]) -> String {
    let out = Command::new(isobar_bin())
        .args(["certgen", "--kube", "--namespace", ISOBAR_NAMESPACE])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .output()
        .expect("running isobar certgen --kube");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "isobar certgen --kube {extra:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    stdout
}

/// The DER of every certificate in a PEM document.
fn ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.expect("a PEM block").contents)
        .collect()
}

/// The subject key identifier of a CA, or the authority key identifier of a leaf, as hex.
fn key_id(der: &[u8], authority: bool) -> Option<String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) if !authority => Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) if authority => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

/// (subject, issuer, is CA, notAfter) of a DER certificate.
fn describe(der: &[u8]) -> (String, String, bool, i64) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    (
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.is_ca(),
        cert.validity().not_after.timestamp(),
    )
}

/// Checks the three Secrets' shape and that the leaves are issued by the CA they carry, with
/// their keys; returns the leaves' notAfter (isobar, envoy).
fn check_secrets(s: &BTreeMap<&'static str, Stored>) -> (i64, i64) {
    let keys = |name: &str| s[name].data.keys().cloned().collect::<Vec<_>>();
    assert_eq!(s["isobar-ca"].type_, "Opaque");
    assert_eq!(keys("isobar-ca"), ["ca.crt", "ca.key"]);
    let ca_bundle = &s["isobar-ca"].data["ca.crt"];
    let ca_ders = ders(ca_bundle);
    assert!(!ca_ders.is_empty(), "isobar-ca ca.crt has no certificate");
    let ca_subjects: Vec<String> = ca_ders
        .iter()
        .map(|d| {
            let (subject, _, is_ca, _) = describe(d);
            assert!(
                is_ca,
                "isobar-ca ca.crt holds a non-CA certificate {subject}"
            );
            subject
        })
        .collect();
    let mut not_after = Vec::new();
    for (name, cn) in [("isobar-cert", "isobar"), ("envoy-cert", "envoy")] {
        let secret = &s[name];
        assert_eq!(secret.type_, "kubernetes.io/tls", "{name}");
        assert_eq!(keys(name), ["ca.crt", "tls.crt", "tls.key"], "{name}");
        assert_eq!(&secret.data["ca.crt"], ca_bundle, "{name}'s ca.crt");
        let leaf = ders(&secret.data["tls.crt"]);
        assert_eq!(leaf.len(), 1, "{name} tls.crt");
        let (subject, issuer, is_ca, expiry) = describe(&leaf[0]);
        assert!(!is_ca, "{name} is a CA");
        assert!(
            ca_subjects.contains(&issuer),
            "{name} ({subject}) is issued by {issuer}, not by a CA of {ca_subjects:?}"
        );
        let ca_ids: Vec<Option<String>> = ca_ders.iter().map(|d| key_id(d, false)).collect();
        let leaf_ca = key_id(&leaf[0], true);
        assert!(
            leaf_ca.is_some() && ca_ids.contains(&leaf_ca),
            "{name}'s authority key id {leaf_ca:?} is none of the bundle's {ca_ids:?}"
        );
        let names = cert_names(&leaf[0]).expect("names of the leaf");
        assert_eq!(names.common_name.as_deref(), Some(cn), "{name}");
        let svc = format!("{cn}.{ISOBAR_NAMESPACE}.svc");
        assert!(names.dns_names.contains(&svc), "{name}: {names:?}");
        not_after.push(expiry);
    }
    // isobar's serving pair builds a server that trusts the bundle (key matches certificate).
    let isobar = &s["isobar-cert"].data;
    isobar::tls::server::server_config(
        ca_bundle.as_bytes(),
        isobar["tls.crt"].as_bytes(),
        isobar["tls.key"].as_bytes(),
    )
    .unwrap_or_else(|e| panic!("isobar-cert does not make a server configuration: {e}"));
    (not_after[0], not_after[1])
}

fn versions(s: &BTreeMap<&'static str, Stored>) -> Vec<(String, String)> {
    s.iter()
        .map(|(n, v)| (n.to_string(), v.resource_version.clone()))
        .collect()
}

#[tokio::test]
async fn certgen_kube_creates_keeps_renews_and_replaces_the_secrets_as_its_service_account() {
    let cluster = KubeCluster::from_env_or_start(KubeClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("starting the API server: {e}"));
    let admin = cluster.client();
    admin
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISOBAR_NAMESPACE}}))
        .await
        .unwrap_or_else(|e| panic!("creating {ISOBAR_NAMESPACE}: {e}"));
    for name in SECRETS {
        // An external cluster may hold them from an earlier run.
        admin
            .delete("v1", "Secret", Some(ISOBAR_NAMESPACE), name)
            .await
            .unwrap_or_else(|e| panic!("deleting Secret {name}: {e}"));
    }

    // Exactly the ServiceAccount, Role and RoleBinding of deploy/base/certgen.yaml (not the Job).
    let yaml = std::fs::read_to_string(deploy_dir().join("certgen.yaml")).expect("certgen.yaml");
    let objects = parse_yaml_documents(&yaml).expect("parsing certgen.yaml");
    let mut applied = Vec::new();
    for o in objects.iter().filter(|o| o["kind"] != "Job") {
        admin
            .apply(o)
            .await
            .unwrap_or_else(|e| panic!("applying {} {}: {e}", o["kind"], o["metadata"]["name"]));
        applied.push(o["kind"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(applied, ["ServiceAccount", "Role", "RoleBinding"]);
    let token = admin
        .service_account_token(ISOBAR_NAMESPACE, SERVICE_ACCOUNT)
        .await
        .unwrap_or_else(|e| panic!("token for {SERVICE_ACCOUNT}: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("certgen.kubeconfig");
    cluster
        .write_kubeconfig_for_token(&kubeconfig, &token)
        .unwrap_or_else(|e| panic!("writing the token kubeconfig: {e}"));

    // First run creates the three Secrets.
    let out = certgen_kube(&kubeconfig, &[]);
    assert!(out.contains("updated Secrets"), "{out}");
    let first = read_secrets(&cluster).await;
    let (isobar_expiry, envoy_expiry) = check_secrets(&first);
    let year = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    for expiry in [isobar_expiry, envoy_expiry] {
        assert!(
            (expiry - year.unix_timestamp()).abs() < 3600,
            "a default leaf expires at {expiry}, not in 365 days"
        );
    }

    // Second run: nothing to do, nothing written.
    let out = certgen_kube(&kubeconfig, &[]);
    assert!(out.contains("nothing to do"), "{out}");
    let second = read_secrets(&cluster).await;
    assert_eq!(versions(&second), versions(&first), "a no-op run wrote");
    assert_eq!(second, first);

    // A renewal window longer than the leaves' remaining life re-issues them from the kept CA.
    let out = certgen_kube(
        &kubeconfig,
        &["--renew-before", "400d", "--lifetime-days", "500"],
    );
    assert!(out.contains("updated Secrets"), "{out}");
    assert!(out.contains("new CA: false"), "{out}");
    let renewed = read_secrets(&cluster).await;
    let (isobar_expiry, envoy_expiry) = check_secrets(&renewed);
    assert_eq!(
        renewed["isobar-ca"], first["isobar-ca"],
        "renewing the leaves changed isobar-ca"
    );
    for name in ["isobar-cert", "envoy-cert"] {
        assert_ne!(
            renewed[name].data["tls.crt"], first[name].data["tls.crt"],
            "{name} was not re-issued"
        );
        assert_ne!(
            renewed[name].resource_version, first[name].resource_version,
            "{name}"
        );
    }
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(500);
    for expiry in [isobar_expiry, envoy_expiry] {
        assert!(
            (expiry - later.unix_timestamp()).abs() < 3600,
            "a renewed leaf expires at {expiry}, not in 500 days"
        );
    }

    // --overwrite replaces the CA (and so the leaves).
    let out = certgen_kube(&kubeconfig, &["--overwrite"]);
    assert!(out.contains("new CA: true"), "{out}");
    let replaced = read_secrets(&cluster).await;
    check_secrets(&replaced);
    assert_ne!(
        replaced["isobar-ca"].data["ca.key"], renewed["isobar-ca"].data["ca.key"],
        "--overwrite kept the CA key"
    );
    assert_ne!(
        replaced["isobar-ca"].data["ca.crt"],
        renewed["isobar-ca"].data["ca.crt"]
    );
    let old_ids: Vec<Option<String>> = ders(&renewed["isobar-ca"].data["ca.crt"])
        .iter()
        .map(|d| key_id(d, false))
        .collect();
    for name in ["isobar-cert", "envoy-cert"] {
        let leaf = ders(&replaced[name].data["tls.crt"]);
        let issuer = key_id(&leaf[0], true);
        assert!(
            !old_ids.contains(&issuer),
            "{name} is still issued by the replaced CA {issuer:?}"
        );
    }
    eprintln!(
        "after --overwrite isobar-ca ca.crt holds {} certificate(s)",
        ders(&replaced["isobar-ca"].data["ca.crt"]).len()
    );

    // The token is the ServiceAccount's: outside the Role's namespace it is refused.
    let out = Command::new(isobar_bin())
        .args(["certgen", "--kube", "--namespace", "default"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("running isobar certgen --kube");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("forbidden"),
        "certgen as {SERVICE_ACCOUNT} in namespace default: {} {stderr}",
        out.status
    );
}
