//! EndpointSlice, reduced to what routing needs. Its own type (not k8s-openapi's) because isobar reads
//! both `discovery.k8s.io/v1` and `v1beta1` (Kubernetes 1.20 serves only the latter), and the fields it
//! uses are the same in both.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The label that names the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An EndpointSlice of either API version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub address_type: String,
    #[serde(default)]
    pub endpoints: Vec<SliceEndpoint>,
    #[serde(default)]
    pub ports: Option<Vec<SlicePort>>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: Option<SliceConditions>,
}

/// An endpoint's conditions; a missing `ready` means ready, as the API defines it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceConditions {
    #[serde(default)]
    pub ready: Option<bool>,
}

/// A port of a slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlicePort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default)]
    pub protocol: Option<String>,
}

impl EndpointSlice {
    /// The Service this slice belongs to.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l: &BTreeMap<String, String>| l.get(SERVICE_NAME_LABEL))
            .map(String::as_str)
    }

    /// Whether an endpoint should receive traffic.
    pub fn is_ready(endpoint: &SliceEndpoint) -> bool {
        endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true)
    }
}
