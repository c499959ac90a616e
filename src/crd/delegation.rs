//! TLSCertificateDelegation: lets IngressRoutes and Ingresses in other namespaces use a Secret.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Secrets of this namespace that other namespaces may use.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "contour.heptio.com",
    version = "v1beta1",
    kind = "TLSCertificateDelegation",
    derive = "PartialEq",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct TLSCertificateDelegationSpec {
    pub delegations: Vec<CertificateDelegation>,
}

/// One Secret and the namespaces (`*` for all) allowed to use it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateDelegation {
    pub secret_name: String,
    pub target_namespaces: Vec<String>,
}
