//! gRPC-level tests of delta ADS (`DeltaAggregatedResources`), no Envoy: the harness's delta probe
//! talks to the real server over mTLS on a loopback socket, and the exact responses are pinned.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, Resource as DeltaResource,
};
use isobar::xds::cache::version_of;
use isobar::xds::stats::XdsStats;
use isobar::xds::type_url;
use isobar_harness::xds_delta_client::{connect_delta_ads, delta_request, DeltaAdsStream};
use prost::Message;

mod ads_server;
use ads_server::{fixture_snapshot, flip, publish, start, Server, QUIET, RECV};

async fn client(server: &Server) -> DeltaAdsStream {
    connect_delta_ads(server.addr, Some(server.client_tls.clone()))
        .await
        .unwrap()
}

async fn fetch(
    stream: &mut DeltaAdsStream,
    type_url: &str,
    names: &[&str],
) -> DeltaDiscoveryResponse {
    stream.subscribe(type_url, names).await.unwrap();
    let response = stream.recv(RECV).await.unwrap();
    assert_eq!(response.type_url, type_url, "{response:?}");
    response
}

/// Name → version of the resources a response carries.
fn versions(response: &DeltaDiscoveryResponse) -> BTreeMap<String, String> {
    response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

/// Name → version of the cache's resources of `type_url`: what isobar says a resource's version is.
fn cache_versions(server: &Server, type_url: &str, names: &[&str]) -> BTreeMap<String, String> {
    let current = server.cache.current();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    current
        .resources(type_url, &names)
        .iter()
        .map(|r| (r.name.clone(), r.hash.to_string()))
        .collect()
}

fn eds_names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|r| {
            let c = Cluster::decode(r.resource.as_ref().unwrap().value.as_slice()).unwrap();
            c.eds_cluster_config.unwrap().service_name
        })
        .collect()
}

/// A stream subscribed to every type as Envoy does (wildcard clusters and listeners, named
/// endpoints and routes), everything ACKed.
async fn envoy_like_stream(server: &Server) -> DeltaAdsStream {
    let mut stream = client(server).await;
    let cds = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    stream.ack(&cds).await.unwrap();
    let names = eds_names(&cds);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let eds = fetch(&mut stream, type_url::ENDPOINT, &names).await;
    stream.ack(&eds).await.unwrap();
    let lds = fetch(&mut stream, type_url::LISTENER, &[]).await;
    stream.ack(&lds).await.unwrap();
    let rds = fetch(&mut stream, type_url::ROUTE, &["ingress_http"]).await;
    stream.ack(&rds).await.unwrap();
    assert!(stream.recv(QUIET).await.is_err(), "all sent, all ACKed");
    stream
}

#[tokio::test]
async fn wildcard_clusters_and_named_endpoints_carry_each_resource_with_its_content_version() {
    let server = start().await;
    let mut stream = client(&server).await;
    let cds = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    assert_eq!(
        versions(&cds),
        cache_versions(&server, type_url::CLUSTER, &[])
    );
    assert!(cds.removed_resources.is_empty());
    assert_eq!(
        cds.system_version_info,
        server.cache.current().type_version(type_url::CLUSTER)
    );
    stream.ack(&cds).await.unwrap();
    let eds = fetch(&mut stream, type_url::ENDPOINT, &["shop/api/9000"]).await;
    assert_eq!(
        versions(&eds),
        cache_versions(&server, type_url::ENDPOINT, &["shop/api/9000"]),
        "only the names subscribed to"
    );
    let assignment =
        ClusterLoadAssignment::decode(eds.resources[0].resource.as_ref().unwrap().value.as_slice())
            .unwrap();
    assert_eq!(assignment.cluster_name, "shop/api/9000");
    stream.ack(&eds).await.unwrap();
    assert!(stream.recv(QUIET).await.is_err(), "nothing more to say");
}

#[tokio::test]
async fn an_endpoint_change_sends_that_assignment_only() {
    let server = start().await;
    let mut stream = envoy_like_stream(&server).await;
    let mut snapshot = fixture_snapshot("");
    let key = isobar::store::ObjectKey::new("shop", "api");
    let ep = std::sync::Arc::make_mut(snapshot.endpoints.get_mut(&key).unwrap());
    ep.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0].ip = "127.0.0.14".into();
    assert!(publish(&server.cache, &snapshot));
    let pushed = stream.recv(RECV).await.unwrap();
    // The exact response: the one changed assignment, versioned by its content hash, and the
    // version of everything subscribed as Envoy then holds it.
    let current = server.cache.current();
    let changed = current.get(type_url::ENDPOINT, "shop/api/9000").unwrap();
    let subscribed: Vec<String> = stream.subscribed(type_url::ENDPOINT);
    assert_eq!(
        pushed,
        DeltaDiscoveryResponse {
            system_version_info: version_of(
                current.resources(type_url::ENDPOINT, &subscribed).iter()
            ),
            resources: vec![DeltaResource {
                name: "shop/api/9000".into(),
                version: changed.hash.to_string(),
                resource: Some(changed.any(type_url::ENDPOINT)),
                ..Default::default()
            }],
            type_url: type_url::ENDPOINT.into(),
            nonce: pushed.nonce.clone(),
            ..Default::default()
        }
    );
    stream.ack(&pushed).await.unwrap();
    assert!(stream.recv(QUIET).await.is_err(), "nothing else changed");
}

#[tokio::test]
async fn a_route_flip_adds_the_new_cluster_first_and_names_the_old_ones_removed_last() {
    let server = start().await;
    assert!(publish(&server.cache, &fixture_snapshot(&flip("a"))));
    let mut stream = envoy_like_stream(&server).await;
    assert!(publish(&server.cache, &fixture_snapshot(&flip("b"))));

    // 1. Only the new cluster; nothing removed.
    let cds = stream.recv(RECV).await.unwrap();
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(
        versions(&cds).into_keys().collect::<Vec<_>>(),
        ["shop/flip-b/80"]
    );
    assert!(cds.removed_resources.is_empty());
    stream.ack(&cds).await.unwrap();
    assert!(
        stream.recv(QUIET).await.is_err(),
        "no route to flip-b before its endpoints"
    );
    // 2. Envoy subscribes to its endpoints; they arrive; then the route.
    let eds = fetch(&mut stream, type_url::ENDPOINT, &["shop/flip-b/80"]).await;
    assert_eq!(
        versions(&eds).into_keys().collect::<Vec<_>>(),
        ["shop/flip-b/80"]
    );
    stream.ack(&eds).await.unwrap();
    let rds = stream.recv(RECV).await.unwrap();
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_eq!(
        versions(&rds).into_keys().collect::<Vec<_>>(),
        ["ingress_http"]
    );
    assert!(
        stream.recv(QUIET).await.is_err(),
        "flip-a stays until the route that stopped using it is ACKed"
    );
    stream.ack(&rds).await.unwrap();
    // 3. The old cluster and its endpoints, by name.
    let cds = stream.recv(RECV).await.unwrap();
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert!(cds.resources.is_empty());
    assert_eq!(cds.removed_resources, ["shop/flip-a/80"]);
    let eds = stream.recv(RECV).await.unwrap();
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    assert_eq!(eds.removed_resources, ["shop/flip-a/80"]);
    assert_eq!(
        cds.system_version_info,
        server.cache.current().type_version(type_url::CLUSTER),
        "then Envoy holds exactly the cache's clusters"
    );
}

#[tokio::test]
async fn a_client_reconnecting_with_current_versions_is_sent_only_what_differs() {
    let server = start().await;
    let all = cache_versions(&server, type_url::CLUSTER, &[]);
    // Everything current: nothing at all is sent.
    let mut stream = client(&server).await;
    let mut first = delta_request(type_url::CLUSTER, &[], &[], "", None, false);
    first.initial_resource_versions = all.clone().into_iter().collect();
    stream.send(first).await.unwrap();
    assert!(stream.recv(QUIET).await.is_err(), "Envoy holds it all");
    // …which counts as accepting the current clusters (for /debug/xds and NACK bisection).
    let current = server.cache.current();
    isobar_harness::wait_for_async(RECV, "the resumed clusters to count as ACKed", || async {
        let streams = server.stats.streams();
        let cds = streams
            .first()
            .and_then(|s| s.types.get(type_url::CLUSTER).cloned());
        Ok(cds.filter(|t| {
            t.acked_version == current.type_version(type_url::CLUSTER)
                && t.acked_generation == current.generation
        }))
    })
    .await
    .unwrap();
    // One outdated, one unknown to isobar: only the outdated one is sent (the unknown one is
    // removed once the routes are settled, which a stream without routes is at once).
    let mut stream = client(&server).await;
    let mut held = all.clone();
    let (outdated, _) = held
        .iter()
        .next()
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    held.insert(outdated.clone(), "0000000000000000".into());
    held.insert("shop/gone/80".into(), "1111111111111111".into());
    let mut first = delta_request(type_url::CLUSTER, &[], &[], "", None, false);
    first.initial_resource_versions = held.into_iter().collect();
    stream.send(first).await.unwrap();
    let cds = stream.recv(RECV).await.unwrap();
    assert_eq!(versions(&cds).into_keys().collect::<Vec<_>>(), [outdated]);
    stream.ack(&cds).await.unwrap();
    let removal = stream.recv(RECV).await.unwrap();
    assert_eq!(removal.removed_resources, ["shop/gone/80"]);
    assert_eq!(
        removal.system_version_info,
        version_of(
            server
                .cache
                .current()
                .resources(type_url::CLUSTER, &[])
                .iter()
        )
    );
}

#[tokio::test]
async fn a_nack_is_recorded_with_the_rejected_resources_and_not_resent() {
    let server = start().await;
    let mut stream = envoy_like_stream(&server).await;
    let extra = "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: shop}\nspec: {ports: [{port: 1}]}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: extra, namespace: shop}\nspec:\n  rules:\n  - host: extra.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: extra, port: {number: 1}}}}]}\n";
    assert!(publish(&server.cache, &fixture_snapshot(extra)));
    let cds = stream.recv(RECV).await.unwrap();
    assert_eq!(
        versions(&cds).into_keys().collect::<Vec<_>>(),
        ["shop/extra/1"]
    );
    stream
        .nack(&cds, "cluster shop/extra/1: rejected for the test")
        .await
        .unwrap();
    let nack = isobar_harness::wait_for_async(RECV, "the NACK to be recorded", || async {
        Ok(server.stats.last_nack())
    })
    .await
    .unwrap();
    assert_eq!(nack.resources, ["shop/extra/1"]);
    assert_eq!(nack.rejected_version, cds.system_version_info);
    assert_eq!(XdsStats::get(&server.stats.nacks), 1);
    assert!(
        stream.recv(QUIET).await.is_err(),
        "the rejected content is not sent again, and nothing goes on past it"
    );
}

#[tokio::test]
async fn unsubscribing_and_subscribing_again_sends_the_resource_again() {
    let server = start().await;
    let mut stream = client(&server).await;
    let eds = fetch(&mut stream, type_url::ENDPOINT, &["shop/api/9000"]).await;
    stream.ack(&eds).await.unwrap();
    stream
        .unsubscribe(type_url::ENDPOINT, &["shop/api/9000"])
        .await
        .unwrap();
    assert!(
        stream.recv(QUIET).await.is_err(),
        "an unsubscription is not answered"
    );
    let again = fetch(&mut stream, type_url::ENDPOINT, &["shop/api/9000"]).await;
    assert_eq!(versions(&again), versions(&eds));
}
