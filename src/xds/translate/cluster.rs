//! Clusters: one per Service port (and per set of upstream settings) a route uses, endpoints over EDS.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds,
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy as EnvoyLbPolicy},
    CircuitBreakers, Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, health_check, transport_socket, DataSource, HealthCheck as EnvoyHealthCheck,
    Http2ProtocolOptions, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, CertificateValidationContext, CommonTlsContext,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::route::duration;
use super::{ads_config_source, seconds, Named};
use crate::dag::{self, Dag, LbPolicy, UpstreamProtocol};

/// The Cluster resources for the DAG.
pub fn clusters(dag: &Dag) -> Named {
    dag.clusters
        .values()
        .map(|c| (c.name.clone(), pack_any(cluster(c))))
        .collect()
}

pub(super) fn cluster(c: &dag::Cluster) -> Cluster {
    let s = &c.settings;
    let http2 = matches!(s.protocol, UpstreamProtocol::H2 | UpstreamProtocol::H2c);
    let tls = matches!(s.protocol, UpstreamProtocol::H2 | UpstreamProtocol::Tls)
        || s.validation.is_some();
    Cluster {
        name: c.name.clone(),
        alt_stat_name: c.name.replace('/', "_"),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: c.eds_name.clone(),
        }),
        connect_timeout: Some(seconds(2)),
        lb_policy: match s.lb_policy {
            LbPolicy::RoundRobin => EnvoyLbPolicy::RoundRobin,
            LbPolicy::WeightedLeastRequest => EnvoyLbPolicy::LeastRequest,
            LbPolicy::Random => EnvoyLbPolicy::Random,
            LbPolicy::Cookie => EnvoyLbPolicy::RingHash,
        } as i32,
        typed_extension_protocol_options: if http2 {
            // One entry only: the content hash of the encoded resource must not depend on map order.
            HashMap::from([(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
                pack_any(HttpProtocolOptions {
                    upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                        ExplicitHttpConfig {
                            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                                Http2ProtocolOptions::default(),
                            )),
                        },
                    )),
                    ..Default::default()
                }),
            )])
        } else {
            HashMap::new()
        },
        transport_socket: tls.then(|| upstream_tls(c, http2)),
        health_checks: s.health_check.iter().map(health_check).collect(),
        circuit_breakers: (s.limits != dag::Limits::default()).then(|| CircuitBreakers {
            thresholds: vec![Thresholds {
                max_connections: s.limits.max_connections.map(|value| UInt32Value { value }),
                max_pending_requests: s
                    .limits
                    .max_pending_requests
                    .map(|value| UInt32Value { value }),
                max_requests: s.limits.max_requests.map(|value| UInt32Value { value }),
                max_retries: s.limits.max_retries.map(|value| UInt32Value { value }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn upstream_tls(c: &dag::Cluster, http2: bool) -> TransportSocket {
    let validation = c.settings.validation.as_ref();
    let context = UpstreamTlsContext {
        sni: validation.map(|v| v.subject_name.clone()).unwrap_or_default(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: if http2 { vec!["h2".to_string()] } else { Vec::new() },
            validation_context_type: validation.map(|v| {
                ValidationContextType::ValidationContext(CertificateValidationContext {
                    trusted_ca: Some(DataSource {
                        specifier: Some(data_source::Specifier::InlineBytes(v.ca_pem.clone())),
                        ..Default::default()
                    }),
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType::Dns as i32,
                        matcher: Some(StringMatcher {
                            match_pattern: Some(MatchPattern::Exact(v.subject_name.clone())),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

fn health_check(h: &dag::HealthCheck) -> EnvoyHealthCheck {
    EnvoyHealthCheck {
        timeout: Some(duration(h.timeout)),
        interval: Some(duration(h.interval)),
        unhealthy_threshold: Some(UInt32Value {
            value: h.unhealthy_threshold,
        }),
        healthy_threshold: Some(UInt32Value {
            value: h.healthy_threshold,
        }),
        health_checker: Some(health_check::HealthChecker::HttpHealthCheck(
            health_check::HttpHealthCheck {
                host: h.host.clone(),
                path: h.path.clone(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}
