//! ClusterLoadAssignments: the ready addresses of each cluster's Service port, from Endpoints.

use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, socket_address::Protocol, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use foldhash::HashMap;

use crate::store::Endpoints;
use envoy_types::util::pack_any;

use super::Named;
use crate::dag::{Cluster, Dag};
use crate::store::{EndpointSlice, Snapshot};

/// One ClusterLoadAssignment per cluster in the DAG (empty when the Service has no ready endpoints, so
/// Envoy answers 503 rather than waiting for EDS).
pub fn endpoints(dag: &Dag, snapshot: &Snapshot) -> Named {
    let slices = slices_by_service(snapshot);
    let mut out: Named = dag
        .clusters
        .values()
        .map(|c| {
            let service = (&*c.service.namespace, &*c.service.name);
            let addresses = addresses_of(
                slices.get(&service).map_or(&[], Vec::as_slice),
                snapshot.endpoints.get(&c.service).map(|e| &**e),
                c,
            );
            (
                c.eds_name.clone(),
                pack_any(load_assignment(&c.eds_name, addresses)),
            )
        })
        .collect();
    // Several clusters can share an EDS name only if they are the same Service port.
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Every EndpointSlice by the Service (namespace, name) it belongs to, in one pass: looking up each
/// cluster's slices among its namespace's visited all of them for every cluster (10,000 Services in
/// 50 namespaces: 2,000,000 slices looked at). Borrowed from the snapshot: no key or `Arc` is made.
fn slices_by_service(snapshot: &Snapshot) -> HashMap<(&str, &str), Vec<&EndpointSlice>> {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::default();
    for (key, slice) in &snapshot.endpoint_slices {
        if let Some(service) = slice.service_name() {
            by_service
                .entry((&*key.namespace, service))
                .or_default()
                .push(&**slice);
        }
    }
    by_service
}

/// The ready addresses of a cluster given its Service's EndpointSlices and Endpoints.
pub fn addresses_of(
    slices: &[&EndpointSlice],
    endpoints: Option<&Endpoints>,
    cluster: &Cluster,
) -> Vec<(String, u16)> {
    if !slices.is_empty() {
        return slice_addresses(slices, cluster);
    }
    endpoints.map(|e| addresses(e, cluster)).unwrap_or_default()
}

fn slice_addresses(slices: &[&EndpointSlice], cluster: &Cluster) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for slice in slices {
        let ports = slice.ports.as_deref().unwrap_or_default();
        let port = matching_port(ports, |p| p.name.as_deref(), cluster.port_name.as_deref());
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice
            .endpoints
            .iter()
            .filter(|e| EndpointSlice::is_ready(e))
        {
            for ip in endpoint.addresses.iter().filter(|ip| usable(ip, port)) {
                out.push((ip.clone(), port));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The ready `(ip, port)` pairs of `endpoints` for the Service port of `cluster`, sorted.
pub fn addresses(endpoints: &Endpoints, cluster: &Cluster) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let port = matching_port(ports, |p| p.name.as_deref(), cluster.port_name.as_deref());
        let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if usable(&address.ip, port) {
                out.push((address.ip.clone(), port));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) fn load_assignment(name: &str, addresses: Vec<(String, u16)>) -> ClusterLoadAssignment {
    let lb_endpoints = addresses
        .into_iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        protocol: Protocol::Tcp as i32,
                        address: ip,
                        port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: if lb_endpoints.is_empty() {
            vec![]
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// The port of an Endpoints subset or an EndpointSlice that carries the Service port: the one of the
/// same name, or the only one when the Service port has no name.
fn matching_port<'a, P>(
    ports: &'a [P],
    name_of: impl Fn(&P) -> Option<&str>,
    wanted: Option<&str>,
) -> Option<&'a P> {
    match wanted {
        Some(name) => ports.iter().find(|p| name_of(p) == Some(name)),
        None if ports.len() == 1 => ports.first(),
        None => None,
    }
}

/// Envoy NACKs a ClusterLoadAssignment with an address that is not an IP literal ("malformed IP
/// address"), and with state-of-the-world EDS that would hold back every cluster's endpoints: such an
/// address (and port 0) is left out instead.
fn usable(ip: &str, port: u16) -> bool {
    port != 0 && ip.parse::<std::net::IpAddr>().is_ok()
}
