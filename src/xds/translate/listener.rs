//! Listeners: `ingress_http` (plain HTTP, one route configuration for every host) and `ingress_https`
//! (TLS, one filter chain per SNI name, certificates over SDS), then the Gateway API listeners.

use envoy_types::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    tls_parameters::TlsProtocol, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    TlsParameters,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Message;

use super::route::{https_route_config_name, HTTP_ROUTE_CONFIG};
use super::{ads_config_source, ListenerConfig, Named};
use crate::dag::{Dag, SecureVirtualHost, TlsVersion, WeightedCluster};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};

/// The plain HTTP listener.
pub const HTTP_LISTENER: &str = "ingress_http";
/// The TLS listener; present only when there is a secure virtual host.
pub const HTTPS_LISTENER: &str = "ingress_https";

/// The listeners for the DAG.
pub fn listeners(dag: &Dag, config: &ListenerConfig) -> Named {
    let https = (!dag.secure_virtual_hosts.is_empty()).then(|| {
        pack_any(https_listener(
            config,
            dag.secure_virtual_hosts
                .values()
                .map(tls_filter_chain)
                .collect(),
        ))
    });
    listeners_with(dag, config, https)
}

/// The listeners for the DAG, with `https` as the TLS listener (`None`: there is none).
pub(super) fn listeners_with(dag: &Dag, config: &ListenerConfig, https: Option<Any>) -> Named {
    let mut out = vec![(
        HTTP_LISTENER.to_string(),
        pack_any(Listener {
            name: HTTP_LISTENER.to_string(),
            address: Some(socket_address(&config.http_address, config.http_port)),
            filter_chains: vec![FilterChain {
                filters: vec![http_connection_manager(HTTP_LISTENER, HTTP_ROUTE_CONFIG)],
                ..Default::default()
            }],
            ..Default::default()
        }),
    )];
    out.extend(https.map(|l| (HTTPS_LISTENER.to_string(), l)));
    for l in dag.gateway_listeners.values() {
        out.push((
            l.name.clone(),
            pack_any(super::gateway::listener(l, config)),
        ));
    }
    out
}

/// The TLS listener with `filter_chains`, one per TLS host in host order.
fn https_listener(config: &ListenerConfig, filter_chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: HTTPS_LISTENER.to_string(),
        address: Some(socket_address(&config.https_address, config.https_port)),
        listener_filters: vec![tls_inspector()],
        filter_chains,
        ..Default::default()
    }
}

/// The TLS listener from its filter chains' encodings, in host order: the bytes prost gives for
/// the whole message (a repeated message field is the concatenation of its elements), so a new TLS
/// host encodes one filter chain, not one per TLS host.
pub(super) fn https_listener_of<'a>(
    config: &ListenerConfig,
    filter_chains: impl Iterator<Item = &'a Vec<u8>> + Clone,
) -> Any {
    // prost writes the fields in the order they are declared: name and address, then the filter
    // chains, then the rest (the listener filters); the pieces are written in that order.
    let whole = https_listener(config, Vec::new());
    let mut out = Listener {
        name: whole.name.clone(),
        address: whole.address.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    super::encoded::append_repeated(FILTER_CHAINS_FIELD, filter_chains, &mut out);
    out.extend(
        Listener {
            name: String::new(),
            address: None,
            ..whole
        }
        .encode_to_vec(),
    );
    Any {
        type_url: crate::xds::type_url::LISTENER.to_string(),
        value: out,
    }
}

/// `Listener.filter_chains`' field number.
const FILTER_CHAINS_FIELD: u32 = 3;

/// The filter chain of one TLS host: matched by SNI name, TLS from its certificate over SDS (none
/// for passthrough: the backend terminates), then its routes or its TCP proxy.
pub(super) fn tls_filter_chain(vhost: &SecureVirtualHost) -> FilterChain {
    FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            server_names: vec![vhost.host.clone()],
            ..Default::default()
        }),
        transport_socket: vhost
            .secret
            .as_deref()
            .map(|secret| downstream_tls(secret, vhost.min_tls_version)),
        filters: vec![match &vhost.tcp_proxy {
            Some(clusters) => tcp_proxy(&vhost.host, clusters),
            None => http_connection_manager(HTTPS_LISTENER, &https_route_config_name(&vhost.host)),
        }],
        ..Default::default()
    }
}

/// Whether `a` and `b` give the TLS listener the same filter chain: everything but their routes,
/// which are in each host's own RouteConfiguration. Destructured without `..`: a new field fails to
/// compile here until it is decided whether the listener reads it.
pub(super) fn same_filter_chain(a: &SecureVirtualHost, b: &SecureVirtualHost) -> bool {
    let SecureVirtualHost {
        host,
        secret,
        min_tls_version,
        routes: _,
        tcp_proxy,
    } = a;
    *host == b.host
        && *secret == b.secret
        && *min_tls_version == b.min_tls_version
        && *tcp_proxy == b.tcp_proxy
}

/// The listener filter that reads the SNI name for filter-chain matching.
pub(super) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

pub(super) fn socket_address(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

pub(super) fn http_connection_manager(stat_prefix: &str, route_config_name: &str) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        access_log: vec![AccessLog {
            name: "envoy.access_loggers.stdout".to_string(),
            config_type: Some(access_log::ConfigType::TypedConfig(pack_any(
                StdoutAccessLog::default(),
            ))),
            ..Default::default()
        }],
        normalize_path: Some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        merge_slashes: true,
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

fn tcp_proxy(host: &str, clusters: &[WeightedCluster]) -> Filter {
    let cluster_specifier = match clusters {
        [one] => tcp_proxy::ClusterSpecifier::Cluster(one.name.clone()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|c| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: c.name.clone(),
                    weight: c.weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: format!("tcp_{host}"),
        cluster_specifier: Some(cluster_specifier),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}

pub(super) fn downstream_tls(secret: &str, min_version: TlsVersion) -> TransportSocket {
    let minimum = match min_version {
        TlsVersion::V1_1 => TlsProtocol::TlSv11,
        TlsVersion::V1_2 => TlsProtocol::TlSv12,
        TlsVersion::V1_3 => TlsProtocol::TlSv13,
    };
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: minimum as i32,
                ..Default::default()
            }),
            tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                name: secret.to_string(),
                sds_config: Some(ads_config_source()),
            }],
            alpn_protocols: vec!["h2".to_string(), "http/1.1".to_string()],
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}
