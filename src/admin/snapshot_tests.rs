use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::google::protobuf::Any;

use super::*;
use crate::dag::gateway::status::GatewayApiStatus;
use crate::dag::{
    status_map, Cluster, ObjectKind, ObjectStatus, Route, UpstreamSettings, VirtualHost,
    WeightedCluster,
};
use crate::store::ObjectKey;
use crate::xds::cache::XdsCache;
use crate::xds::stats::TypeState;

fn status(kind: ObjectKind, name: &str, validity: Validity, description: &str) -> ObjectStatus {
    ObjectStatus {
        kind,
        object: ObjectKey::new("default", name),
        validity,
        description: description.into(),
    }
}

fn cla(name: &str, port: u32) -> Any {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.2".into(),
                    port_specifier: Some(PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    Any {
        type_url: type_url::ENDPOINT.into(),
        value: ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

fn dag() -> Dag {
    let mut dag = Dag::default();
    let source = ObjectKey::new("default", "web");
    dag.virtual_hosts.insert(
        "web.example.com".into(),
        VirtualHost {
            host: "web.example.com".into(),
            routes: vec![Arc::new(Route::new(
                PathMatch::SegmentPrefix("/".into()),
                vec![WeightedCluster {
                    name: "default/web/80/x".into(),
                    weight: 100,
                    session_affinity: false,
                }],
                source.clone(),
            ))],
        },
    );
    dag.clusters.insert(
        "default/web/80/x".into(),
        Arc::new(Cluster {
            name: "default/web/80/x".into(),
            service: ObjectKey::new("default", "web"),
            port_name: None,
            port: 80,
            eds_name: "default/web/http".into(),
            settings: UpstreamSettings::default(),
        }),
    );
    dag
}

fn inputs_snapshot(statuses: &StatusMap, streams: &[StreamState]) -> v1::Snapshot {
    let cache = XdsCache::new();
    cache.set([(
        type_url::ENDPOINT,
        vec![(
            "default/web/http".to_string(),
            cla("default/web/http", 8080),
        )],
    )]);
    let current = cache.current();
    snapshot(&Inputs {
        statuses,
        gateway: &GatewayApiStatus::default(),
        dag: &dag(),
        cache: &current,
        streams,
        nacks: &[],
        source_errors: &[],
        counters: v1::Counters::default(),
    })
}

#[test]
fn objects_that_are_not_valid_come_first_with_their_reason() {
    let statuses = status_map([
        status(ObjectKind::Ingress, "a", Validity::Valid, "valid Ingress"),
        status(
            ObjectKind::IngressRoute,
            "b",
            Validity::Invalid,
            "port out of range",
        ),
        status(
            ObjectKind::Ingress,
            "c",
            Validity::Orphaned,
            "not delegated",
        ),
    ]);
    let s = inputs_snapshot(&statuses, &[]);
    let names: Vec<(&str, i32)> = s
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.status))
        .collect();
    assert_eq!(
        names,
        [
            ("c", v1::Validity::Orphaned as i32),
            ("b", v1::Validity::Invalid as i32),
            ("a", v1::Validity::Valid as i32)
        ]
    );
    assert_eq!(s.objects[1].reason, "port out of range");
}

#[test]
fn hosts_lead_to_routes_clusters_and_the_endpoints_eds_serves() {
    let s = inputs_snapshot(&StatusMap::new(), &[]);
    assert_eq!(s.virtual_hosts.len(), 1);
    let route = &s.virtual_hosts[0].routes[0];
    assert_eq!(
        (route.r#match.as_str(), route.path.as_str()),
        ("prefix", "/")
    );
    assert_eq!(route.clusters[0].cluster, "default/web/80/x");
    assert_eq!(route.source, "default/web");
    assert_eq!(s.clusters[0].service, "default/web");
    assert_eq!(s.clusters[0].endpoints, ["127.0.0.2:8080"]);
    assert_eq!(s.cache_versions.len(), 5);
}

#[test]
fn an_envoy_is_in_sync_only_when_every_type_is_acked_and_none_nacked() {
    let stream = |types: BTreeMap<String, TypeState>| StreamState {
        node: "envoy-1".into(),
        envoy_version: "1.40.0".into(),
        peer: "127.0.0.1:5000".into(),
        types,
        ..Default::default()
    };
    let state = |sent: &str, acked: &str, nack: Option<&str>| TypeState {
        sent_version: sent.into(),
        acked_version: acked.into(),
        last_nack: nack.map(String::from),
        ..Default::default()
    };
    let synced = stream(BTreeMap::from([(
        type_url::CLUSTER.to_string(),
        state("a", "a", None),
    )]));
    let waiting = stream(BTreeMap::from([(
        type_url::CLUSTER.to_string(),
        state("b", "a", None),
    )]));
    let nacked = stream(BTreeMap::from([(
        type_url::ROUTE.to_string(),
        state("b", "a", Some("bad")),
    )]));
    let s = inputs_snapshot(&StatusMap::new(), &[synced, waiting, nacked]);
    let sync: Vec<bool> = s.envoys.iter().map(|e| e.in_sync).collect();
    assert_eq!(sync, [true, false, false]);
    assert!(s.envoys[1].types[0].awaiting_ack);
    assert_eq!(s.envoys[2].types[0].last_nack, "bad");
    assert_eq!(s.envoys[2].types[0].r#type, "route");
    assert_eq!(s.envoys[0].envoy_version, "1.40.0");
}

#[test]
fn gateway_api_objects_and_hosts_are_listed_with_their_listener() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: isobar}
spec: {controllerName: isobar.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: t}
spec:
  gatewayClassName: isobar
  listeners: [{name: web, protocol: HTTP, port: 8081}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: t}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: gone, port: 80}]}]
";
    let mut snapshot_in = crate::store::Snapshot::default();
    for o in crate::source::file::parse_manifests("gw.yaml", yaml).expect("parses") {
        snapshot_in.insert(o);
    }
    let options = crate::dag::DagOptions::default();
    let (dag, _) = crate::dag::build(&snapshot_in, &options);
    let gateway = crate::dag::gateway::status::gateway_api_status(&snapshot_in, &options.gateway);
    let cache = XdsCache::new().current();
    let s = snapshot(&Inputs {
        statuses: &StatusMap::new(),
        gateway: &gateway,
        dag: &dag,
        cache: &cache,
        streams: &[],
        nacks: &[],
        source_errors: &[],
        counters: v1::Counters::default(),
    });
    let objects: Vec<(&str, &str, i32)> = s
        .objects
        .iter()
        .map(|o| (o.kind.as_str(), o.name.as_str(), o.status))
        .collect();
    assert_eq!(
        objects,
        [
            ("HTTPRoute", "r", v1::Validity::Invalid as i32),
            ("Gateway", "gw", v1::Validity::Valid as i32),
            ("GatewayClass", "isobar", v1::Validity::Valid as i32),
        ]
    );
    assert!(
        s.objects[0].reason.contains("BackendNotFound"),
        "{:?}",
        s.objects[0]
    );
    let vh = &s.virtual_hosts[0];
    assert_eq!(
        (vh.host.as_str(), vh.listener.as_str()),
        ("a.example.com", "http-8081")
    );
    assert_eq!(vh.routes[0].clusters[0].cluster, "500");
}
