//! Pure functions from the DAG to Envoy v3 resources, one module per resource kind.

mod cluster;
mod encoded;
mod endpoint;
mod gateway;
mod listener;
mod memo;
mod route;
mod secret;

use envoy_types::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, AggregatedConfigSource, ApiVersion, ConfigSource,
};
use envoy_types::pb::google::protobuf::Any;

pub use cluster::clusters;
pub use endpoint::endpoints;
pub use listener::{listeners, HTTPS_LISTENER, HTTP_LISTENER};
pub use memo::{translate_changes, TranslationMemo};
pub use route::{routes, HTTP_ROUTE_CONFIG};
pub use secret::secrets;

use crate::dag::Dag;
use crate::store::Snapshot;

/// Where Envoy's listeners bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub http_address: String,
    pub http_port: u16,
    pub https_address: String,
    pub https_port: u16,
}

impl ListenerConfig {
    /// The ports of the Ingress listeners, with what each is: Gateway listeners can't have them.
    pub fn reserved_ports(&self) -> std::collections::BTreeMap<u16, String> {
        std::collections::BTreeMap::from([
            (
                self.https_port,
                "isobar's Ingress HTTPS listener (--envoy-service-https-port)".to_string(),
            ),
            (
                self.http_port,
                "isobar's Ingress HTTP listener (--envoy-service-http-port)".to_string(),
            ),
        ])
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            http_address: "0.0.0.0".into(),
            http_port: 8080,
            https_address: "0.0.0.0".into(),
            https_port: 8443,
        }
    }
}

/// Named, packed resources of one type.
pub type Named = Vec<(String, Any)>;

/// Everything Envoy is served, by type.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub listeners: Named,
    pub routes: Named,
    pub clusters: Named,
    pub endpoints: Named,
    pub secrets: Named,
}

impl Resources {
    /// The resources with their type URLs.
    pub fn by_type(self) -> [(&'static str, Named); 5] {
        use super::type_url::*;
        [
            (CLUSTER, self.clusters),
            (ENDPOINT, self.endpoints),
            (LISTENER, self.listeners),
            (ROUTE, self.routes),
            (SECRET, self.secrets),
        ]
    }
}

/// Translates the whole DAG; endpoints come from the snapshot's Endpoints for the DAG's clusters.
pub fn translate(dag: &Dag, snapshot: &Snapshot, config: &ListenerConfig) -> Resources {
    // The routes, clusters and endpoints are the bulk, and independent of each other: on the build
    // threads for many hosts or clusters.
    let items = dag.virtual_hosts.len().max(dag.clusters.len());
    let (routes, (clusters, endpoints)) = crate::parallel::join(
        items,
        || routes(dag),
        || crate::parallel::join(items, || clusters(dag), || endpoints(dag, snapshot)),
    );
    Resources {
        listeners: listeners(dag, config),
        routes,
        clusters,
        endpoints,
        secrets: secrets(dag),
    }
}

/// "Fetch this over the ADS stream", as a config source.
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// A protobuf duration of whole seconds.
pub(crate) fn seconds(s: i64) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: s,
        nanos: 0,
    }
}
