//! `certgen --kube`: the split model's certificates as Kubernetes Secrets, created or updated with
//! server-side apply, so a second run never fails and changes nothing when nothing is due.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use super::certgen::CertgenOptions;
use super::rotation::{reconcile, Changes, Desired, Stored};
use crate::Result;

/// The CA (Opaque: `ca.crt` bundle, `ca.key`).
pub const CA_SECRET: &str = "isobar-ca";
/// isobar's serving certificate (kubernetes.io/tls, with `ca.crt`).
pub const ISOBAR_SECRET: &str = "isobar-cert";
/// Envoy's client certificate (kubernetes.io/tls, with `ca.crt`).
pub const ENVOY_SECRET: &str = "envoy-cert";

const FIELD_MANAGER: &str = "isobar-certgen";

/// Reads the Secrets, decides, and writes what changed. Returns what changed.
pub async fn apply(
    client: Client,
    options: &CertgenOptions,
    renew_before: time::Duration,
    overwrite: bool,
) -> Result<Changes> {
    let api: Api<Secret> = Api::namespaced(client, &options.namespace);
    let field = |s: &Option<Secret>, key: &str| -> Option<String> {
        s.as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let ca = api.get_opt(CA_SECRET).await?;
    let isobar = api.get_opt(ISOBAR_SECRET).await?;
    let envoy = api.get_opt(ENVOY_SECRET).await?;
    let pair = |s: &Option<Secret>| field(s, "tls.crt").zip(field(s, "tls.key"));
    let stored = Stored {
        ca_bundle: field(&ca, "ca.crt"),
        ca_key: field(&ca, "ca.key"),
        isobar: pair(&isobar),
        envoy: pair(&envoy),
    };
    let (desired, changes) = reconcile(
        &stored,
        options,
        time::OffsetDateTime::now_utc(),
        renew_before,
        overwrite,
    )?;
    if changes.any() {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for secret in secrets(&options.namespace, &desired) {
            let name = secret.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(&secret)).await?;
        }
    }
    Ok(changes)
}

/// The three Secrets for `desired`.
pub fn secrets(namespace: &str, desired: &Desired) -> Vec<Secret> {
    let secret = |name: &str, type_: &str, data: &[(&str, &str)]| Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "isobar-certgen".to_string(),
            )])),
            ..Default::default()
        },
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    vec![
        secret(
            CA_SECRET,
            "Opaque",
            &[("ca.crt", &desired.ca_bundle), ("ca.key", &desired.ca_key)],
        ),
        secret(
            ISOBAR_SECRET,
            "kubernetes.io/tls",
            &[
                ("tls.crt", &desired.isobar.0),
                ("tls.key", &desired.isobar.1),
                ("ca.crt", &desired.ca_bundle),
            ],
        ),
        secret(
            ENVOY_SECRET,
            "kubernetes.io/tls",
            &[
                ("tls.crt", &desired.envoy.0),
                ("tls.key", &desired.envoy.1),
                ("ca.crt", &desired.ca_bundle),
            ],
        ),
    ]
}
