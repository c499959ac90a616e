//! The xDS type URLs isobar serves.

/// `envoy.config.listener.v3.Listener`.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// `envoy.config.cluster.v3.Cluster`.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `envoy.extensions.transport_sockets.tls.v3.Secret`.
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// All of them, in the order Envoy needs them (clusters before endpoints, listeners before routes).
pub const ALL: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

/// A short name for logs and metrics.
pub fn short_name(type_url: &str) -> &str {
    match type_url {
        LISTENER => "lds",
        ROUTE => "rds",
        CLUSTER => "cds",
        ENDPOINT => "eds",
        SECRET => "sds",
        _ => "unknown",
    }
}

/// The resource kind, as metrics label it (`isobar_xds_nacks_total{type="route"}`).
pub fn kind_name(type_url: &str) -> &'static str {
    match type_url {
        LISTENER => "listener",
        ROUTE => "route",
        CLUSTER => "cluster",
        ENDPOINT => "endpoint",
        SECRET => "secret",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Name;

    #[test]
    fn constants_match_the_protos() {
        assert_eq!(super::LISTENER, Listener::type_url());
        assert_eq!(super::ROUTE, RouteConfiguration::type_url());
        assert_eq!(super::CLUSTER, Cluster::type_url());
        assert_eq!(super::ENDPOINT, ClusterLoadAssignment::type_url());
        assert_eq!(super::SECRET, Secret::type_url());
    }
}
