//! What isobar holds, as an admin [`v1::Snapshot`]: a pure conversion from the statuses, the DAG, the
//! xDS cache and the xDS server's stream states, so it is tested with synthetic inputs.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use prost::Message;

use super::v1;
use crate::dag::{self, Dag, PathMatch, StatusMap, Validity};
use crate::xds::cache::CacheSnapshot;
use crate::xds::stats::{StreamState, TimedNack};
use crate::xds::type_url;

/// Everything a snapshot is made of, borrowed.
pub struct Inputs<'a> {
    pub statuses: &'a StatusMap,
    pub dag: &'a Dag,
    pub cache: &'a CacheSnapshot,
    pub streams: &'a [StreamState],
    pub nacks: &'a [TimedNack],
    pub source_errors: &'a [String],
    pub counters: v1::Counters,
}

/// The admin snapshot of `inputs`.
pub fn snapshot(inputs: &Inputs<'_>) -> v1::Snapshot {
    v1::Snapshot {
        objects: objects(inputs.statuses),
        virtual_hosts: virtual_hosts(inputs.dag),
        clusters: clusters(inputs.dag, inputs.cache),
        envoys: inputs.streams.iter().map(envoy).collect(),
        counters: Some(inputs.counters),
        nack_history: inputs.nacks.iter().map(nack).collect(),
        source_errors: inputs.source_errors.to_vec(),
        cache_generation: inputs.cache.generation,
        cache_versions: type_url::ALL
            .iter()
            .map(|t| v1::TypeVersion {
                r#type: type_url::kind_name(t).to_string(),
                version: inputs.cache.type_version(t),
                resources: inputs.cache.len(t) as u64,
            })
            .collect(),
    }
}

/// Objects that are not valid first (an operator looks for those), then by kind, namespace, name.
fn objects(statuses: &StatusMap) -> Vec<v1::Object> {
    let mut objects: Vec<v1::Object> = statuses
        .values()
        .map(|s| v1::Object {
            kind: s.kind.to_string(),
            namespace: s.object.namespace.clone(),
            name: s.object.name.clone(),
            status: validity(s.validity) as i32,
            reason: s.description.clone(),
        })
        .collect();
    objects.sort_by(|a, b| {
        (
            a.status == v1::Validity::Valid as i32,
            &a.kind,
            &a.namespace,
            &a.name,
        )
            .cmp(&(
                b.status == v1::Validity::Valid as i32,
                &b.kind,
                &b.namespace,
                &b.name,
            ))
    });
    objects
}

fn validity(v: Validity) -> v1::Validity {
    match v {
        Validity::Valid => v1::Validity::Valid,
        Validity::Invalid => v1::Validity::Invalid,
        Validity::Orphaned => v1::Validity::Orphaned,
    }
}

fn virtual_hosts(dag: &Dag) -> Vec<v1::VirtualHost> {
    let plain = dag.virtual_hosts.values().map(|vh| v1::VirtualHost {
        host: vh.host.clone(),
        secure: false,
        secret: String::new(),
        routes: vh.routes.iter().map(route).collect(),
        tcp_proxy: Vec::new(),
    });
    let secure = dag.secure_virtual_hosts.values().map(|vh| v1::VirtualHost {
        host: vh.host.clone(),
        secure: true,
        secret: vh.secret.clone().unwrap_or_default(),
        routes: vh.routes.iter().map(route).collect(),
        tcp_proxy: vh.tcp_proxy.iter().flatten().map(weighted).collect(),
    });
    plain.chain(secure).collect()
}

fn route(r: &dag::Route) -> v1::Route {
    let kind = match &r.path {
        PathMatch::Exact(_) => "exact",
        PathMatch::SegmentPrefix(_) => "prefix",
        PathMatch::StringPrefix(_) => "string-prefix",
    };
    v1::Route {
        r#match: kind.to_string(),
        path: r.path.path().to_string(),
        clusters: r.clusters.iter().map(weighted).collect(),
        source: r.source.to_string(),
    }
}

fn weighted(c: &dag::WeightedCluster) -> v1::WeightedCluster {
    v1::WeightedCluster {
        cluster: c.name.clone(),
        weight: c.weight,
    }
}

fn clusters(dag: &Dag, cache: &CacheSnapshot) -> Vec<v1::Cluster> {
    dag.clusters
        .values()
        .map(|c| v1::Cluster {
            name: c.name.clone(),
            service: c.service.to_string(),
            port: c.port,
            endpoints: cache
                .get(type_url::ENDPOINT, &c.eds_name)
                .and_then(|r| ClusterLoadAssignment::decode(r.body.value.as_slice()).ok())
                .map(|cla| endpoints(&cla))
                .unwrap_or_default(),
        })
        .collect()
}

/// `address:port` of every endpoint of a ClusterLoadAssignment.
fn endpoints(cla: &ClusterLoadAssignment) -> Vec<String> {
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(e)) => e.address.as_ref(),
            _ => None,
        })
        .filter_map(|a| match &a.address {
            Some(address::Address::SocketAddress(s)) => Some(match s.port_specifier {
                Some(PortSpecifier::PortValue(p)) => format!("{}:{p}", s.address),
                _ => s.address.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn envoy(s: &StreamState) -> v1::ConnectedEnvoy {
    let types: Vec<v1::TypeState> = s
        .types
        .iter()
        .map(|(url, t)| v1::TypeState {
            r#type: type_url::kind_name(url).to_string(),
            sent_version: t.sent_version.clone(),
            acked_version: t.acked_version.clone(),
            acked_generation: t.acked_generation,
            last_nack: t.last_nack.clone().unwrap_or_default(),
            awaiting_ack: t.sent_version != t.acked_version && t.last_nack.is_none(),
        })
        .collect();
    v1::ConnectedEnvoy {
        node_id: s.node.clone(),
        envoy_version: s.envoy_version.clone(),
        address: s.peer.clone(),
        connected_since: unix_seconds(s.connected_since),
        in_sync: types
            .iter()
            .all(|t| !t.awaiting_ack && t.last_nack.is_empty()),
        types,
    }
}

fn nack(n: &TimedNack) -> v1::Nack {
    v1::Nack {
        node_id: n.nack.node.clone(),
        r#type: type_url::kind_name(&n.nack.type_url).to_string(),
        rejected_version: n.nack.rejected_version.clone(),
        version_in_use: n.nack.version_in_use.clone(),
        message: n.nack.message.clone(),
        resources: n.nack.resources.clone(),
        at: unix_seconds(n.at),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
