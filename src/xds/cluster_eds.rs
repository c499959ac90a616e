//! The EDS service name of an encoded Cluster, read without decoding the whole Cluster.
//!
//! The cache reads it once per cluster it takes in; decoding a whole `Cluster` (every field, the
//! strings copied) was more than a third of the cost of taking in a resource. This view names the
//! three fields it reads, with their numbers in Envoy's `envoy/config/cluster/v3/cluster.proto`;
//! protobuf decoding skips every other field.

use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::type_url;

/// `Cluster`'s name, its `type` (a member of the `cluster_discovery_type` oneof, so present
/// whenever set, even to STATIC) and its `eds_cluster_config`.
#[derive(Clone, PartialEq, Message)]
struct ClusterEdsFields {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, optional, tag = "2")]
    discovery_type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    eds_cluster_config: Option<EdsServiceName>,
}

/// `Cluster.EdsClusterConfig`'s `service_name`.
#[derive(Clone, PartialEq, Message)]
struct EdsServiceName {
    #[prost(string, tag = "2")]
    service_name: String,
}

/// The EDS service name of a cluster that reads its endpoints over EDS (the cluster's name when it
/// sets none); `None` for anything else.
pub(super) fn eds_name(body: &Any) -> Option<String> {
    if body.type_url != type_url::CLUSTER {
        return None;
    }
    let c = ClusterEdsFields::decode(body.value.as_slice()).ok()?;
    if c.discovery_type != Some(DiscoveryType::Eds as i32) {
        return None;
    }
    match c.eds_cluster_config.map(|e| e.service_name) {
        Some(n) if !n.is_empty() => Some(n),
        _ => Some(c.name),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::{
        cluster::{ClusterDiscoveryType, CustomClusterType, EdsClusterConfig},
        Cluster,
    };
    use envoy_types::pb::google::protobuf::Duration;
    use envoy_types::util::pack_any;

    use super::*;

    /// What decoding the whole Cluster says (the reading this module replaces).
    fn by_full_decode(body: &Any) -> Option<String> {
        let c = Cluster::decode(body.value.as_slice()).ok()?;
        let eds = matches!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32
        );
        if !eds {
            return None;
        }
        match c.eds_cluster_config.map(|e| e.service_name) {
            Some(n) if !n.is_empty() => Some(n),
            _ => Some(c.name),
        }
    }

    fn eds(service_name: &str) -> Option<EdsClusterConfig> {
        Some(EdsClusterConfig {
            service_name: service_name.to_string(),
            ..Default::default()
        })
    }

    #[test]
    fn reads_what_a_full_decode_reads() {
        let base = Cluster {
            name: "ns/s/80".into(),
            alt_stat_name: "ns_s_80".into(),
            connect_timeout: Some(Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..Default::default()
        };
        let of_type = |t: DiscoveryType| Some(ClusterDiscoveryType::Type(t as i32));
        let cases = [
            (
                of_type(DiscoveryType::Eds),
                eds("ns/s/http"),
                Some("ns/s/http"),
            ),
            (of_type(DiscoveryType::Eds), eds(""), Some("ns/s/80")),
            (of_type(DiscoveryType::Eds), None, Some("ns/s/80")),
            (of_type(DiscoveryType::Static), eds("ns/s/http"), None),
            (of_type(DiscoveryType::StrictDns), None, None),
            (
                Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
                    name: "envoy.clusters.aggregate".into(),
                    typed_config: None,
                })),
                eds("ns/s/http"),
                None,
            ),
            (None, eds("ns/s/http"), None),
        ];
        for (discovery, eds_config, want) in cases {
            let body = pack_any(Cluster {
                cluster_discovery_type: discovery.clone(),
                eds_cluster_config: eds_config.clone(),
                ..base.clone()
            });
            assert_eq!(
                eds_name(&body),
                want.map(String::from),
                "{discovery:?} {eds_config:?}"
            );
            assert_eq!(eds_name(&body), by_full_decode(&body));
        }
    }

    #[test]
    fn other_types_and_garbage_have_none() {
        let mut body = pack_any(Cluster {
            name: "c".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        });
        assert_eq!(eds_name(&body), Some("c".into()));
        body.type_url = type_url::ENDPOINT.into();
        assert_eq!(eds_name(&body), None);
        let garbage = Any {
            type_url: type_url::CLUSTER.into(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert_eq!(eds_name(&garbage), None);
    }
}
