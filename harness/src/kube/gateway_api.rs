//! Gateway API's CustomResourceDefinitions on the test API server: the pinned upstream bundle in
//! `deploy/gateway-api/`, verified against its checksum, created as upstream's `kubectl create
//! --validate=false` would. Server-side apply is not an option on 1.20: the CRDs carry CEL rules
//! (`x-kubernetes-validations`) that 1.20's CRD schema does not declare.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::client::{parse_yaml_documents, KubeClient};
use crate::envoy::provision::sha256_file;
use crate::error::{Error, Result};

/// The Gateway API release the bundle holds.
pub const GATEWAY_API_VERSION: &str = "v1.5.1";

/// How long the CRDs may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// `deploy/gateway-api/`, where the bundle and its `SHA256SUMS` are.
pub fn gateway_api_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway-api")
}

/// The bundle's file name.
fn bundle_file() -> String {
    format!("{GATEWAY_API_VERSION}-standard-install.yaml")
}

/// The bundle's documents, after its checksum has been checked against `SHA256SUMS`.
pub fn gateway_api_bundle() -> Result<Vec<Value>> {
    let dir = gateway_api_dir();
    let file = bundle_file();
    let path = dir.join(&file);
    let sums_path = dir.join("SHA256SUMS");
    let sums = std::fs::read_to_string(&sums_path)
        .map_err(|e| Error::io(format!("reading {}", sums_path.display()), e))?;
    let want = sums
        .lines()
        .find_map(|l| l.strip_suffix(file.as_str()).map(str::trim))
        .ok_or_else(|| Error::Invalid(format!("{} has no line for {file}", sums_path.display())))?;
    let got = sha256_file(&path)?;
    if got != want {
        return Err(Error::Invalid(format!(
            "{} has sha256 {got}, SHA256SUMS says {want}: restore the upstream bundle",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse_yaml_documents(&text)
}

/// Creates every CustomResourceDefinition of the bundle that the server does not have yet and waits
/// until each is Established. A CRD already there from another bundle version is an error (a shared
/// cluster's CRDs are not the harness's to replace). The bundle's ValidatingAdmissionPolicy is left
/// out: 1.20 has no such API, and isobar itself refuses what the CEL rules would.
pub async fn install_gateway_api_crds(admin: &KubeClient) -> Result<()> {
    let crds: Vec<Value> = gateway_api_bundle()?
        .into_iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    for crd in &crds {
        let name = crd_name(crd)?;
        match admin.get_json(&format!("{CRD_PATH}/{name}")).await? {
            None => {
                admin.post_json(CRD_PATH, crd).await?;
            }
            Some(held) => {
                let version = |c: &Value| {
                    c["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                };
                if version(&held) != version(crd) {
                    return Err(Error::Invalid(format!(
                        "the cluster has CRD {name} of Gateway API {:?}, the tests need {GATEWAY_API_VERSION}",
                        version(&held)
                    )));
                }
            }
        }
    }
    for crd in &crds {
        admin
            .wait_crd_established(crd_name(crd)?, ESTABLISHED_TIMEOUT)
            .await?;
    }
    Ok(())
}

fn crd_name(crd: &Value) -> Result<&str> {
    crd["metadata"]["name"]
        .as_str()
        .ok_or_else(|| Error::Invalid(format!("a CRD of the bundle has no name: {crd}")))
}
