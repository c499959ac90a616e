//! Clusters: one per Service port a route uses, its endpoints fetched over EDS.

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig},
    Cluster,
};
use envoy_types::util::pack_any;

use super::{ads_config_source, seconds, Named};
use crate::dag::{self, Dag};

/// The Cluster resources for the DAG.
pub fn clusters(dag: &Dag) -> Named {
    dag.clusters
        .values()
        .map(|c| (c.name.clone(), pack_any(cluster(c))))
        .collect()
}

fn cluster(c: &dag::Cluster) -> Cluster {
    Cluster {
        name: c.name.clone(),
        alt_stat_name: c.name.replace('/', "_"),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: c.eds_name.clone(),
        }),
        connect_timeout: Some(seconds(2)),
        ..Default::default()
    }
}
