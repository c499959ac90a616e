//! What isobar holds, as an admin [`v1::Snapshot`]: a pure conversion from the statuses, the DAG, the
//! xDS cache and the xDS server's stream states, so it is tested with synthetic inputs.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use prost::Message;

use super::v1;
use crate::dag::gateway::listener::Protocol;
use crate::dag::gateway::model::{GatewayAction, GatewayRoute};
use crate::dag::gateway::status::GatewayApiStatus;
use crate::dag::{self, Dag, PathMatch, StatusMap, Validity};
use crate::xds::cache::CacheSnapshot;
use crate::xds::stats::{StreamState, TimedNack};
use crate::xds::type_url;

/// Everything a snapshot is made of, borrowed.
pub struct Inputs<'a> {
    pub statuses: &'a StatusMap,
    pub gateway: &'a GatewayApiStatus,
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
        objects: objects(inputs.statuses, inputs.gateway),
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
fn objects(statuses: &StatusMap, gateway: &GatewayApiStatus) -> Vec<v1::Object> {
    let gateway_objects = gateway.summaries().into_iter().map(|s| v1::Object {
        kind: s.kind.to_string(),
        namespace: s.key.namespace.to_string(),
        name: s.key.name.to_string(),
        status: if s.good {
            v1::Validity::Valid
        } else {
            v1::Validity::Invalid
        } as i32,
        reason: s.reason,
    });
    let mut objects: Vec<v1::Object> = statuses
        .values()
        .map(|s| v1::Object {
            kind: s.kind.to_string(),
            namespace: s.object.namespace.to_string(),
            name: s.object.name.to_string(),
            status: validity(s.validity) as i32,
            reason: s.description.clone(),
        })
        .chain(gateway_objects)
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
        routes: vh.routes.iter().map(|r| route(r)).collect(),
        tcp_proxy: Vec::new(),
        listener: String::new(),
    });
    let secure = dag.secure_virtual_hosts.values().map(|vh| v1::VirtualHost {
        host: vh.host.clone(),
        secure: true,
        secret: vh.secret.clone().unwrap_or_default(),
        routes: vh.routes.iter().map(|r| route(r)).collect(),
        tcp_proxy: vh.tcp_proxy.iter().flatten().map(weighted).collect(),
        listener: String::new(),
    });
    let gateway = dag.gateway_listeners.values().flat_map(|l| {
        l.hosts.iter().map(|(host, routes)| v1::VirtualHost {
            host: host.clone(),
            secure: l.protocol == Protocol::Https,
            secret: String::new(),
            routes: routes.iter().map(gateway_route).collect(),
            tcp_proxy: Vec::new(),
            listener: l.name.clone(),
        })
    });
    plain.chain(secure).chain(gateway).collect()
}

/// An HTTPRoute match: its path, then what else it matches on; a share of traffic whose backend
/// can't be used shows as `500`, a redirect as where it leads.
fn gateway_route(r: &GatewayRoute) -> v1::Route {
    let mut kind = path_kind(&r.path).to_string();
    if let Some(m) = &r.method {
        kind.push_str(&format!(" method={m}"));
    }
    for h in &r.headers {
        kind.push_str(&format!(" header:{}", h.name));
    }
    for q in &r.query_params {
        kind.push_str(&format!(" query:{}", q.name));
    }
    let clusters = match &r.action {
        GatewayAction::Forward(shares) => shares
            .iter()
            .map(|s| v1::WeightedCluster {
                cluster: s.cluster.clone().unwrap_or_else(|| "500".to_string()),
                weight: s.weight,
            })
            .collect(),
        GatewayAction::Redirect(to) => vec![v1::WeightedCluster {
            cluster: format!(
                "redirect {} to {}://{}{}",
                to.status_code,
                to.scheme.as_deref().unwrap_or("(same scheme)"),
                to.hostname.as_deref().unwrap_or("(same host)"),
                to.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
            weight: 1,
        }],
    };
    v1::Route {
        r#match: kind,
        path: r.path.path().to_string(),
        clusters,
        source: r.source.to_string(),
    }
}

fn path_kind(p: &PathMatch) -> &'static str {
    match p {
        PathMatch::Exact(_) => "exact",
        PathMatch::SegmentPrefix(_) => "prefix",
        PathMatch::StringPrefix(_) => "string-prefix",
    }
}

fn route(r: &dag::Route) -> v1::Route {
    v1::Route {
        r#match: path_kind(&r.path).to_string(),
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
                .and_then(|r| ClusterLoadAssignment::decode(r.value.as_slice()).ok())
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
