//! gRPC-level tests of the ADS server, no Envoy: a tonic ADS client over mTLS (the harness's probe)
//! talks to the real server on a loopback socket, and the exact resources are pinned.

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use isobar::tls::certgen::{self, CertgenOptions};
use isobar::xds::limits::XdsServerLimits;
use isobar::xds::stats::XdsStats;
use isobar::xds::type_url;
use isobar_harness::xds_client::{connect_ads, AdsStream, XdsClientTls};

mod ads_server;
use ads_server::{fixture_snapshot, flip, publish, start, start_with, Server, QUIET, RECV};
use prost::Message;

async fn client(server: &Server) -> AdsStream {
    connect_ads(server.addr, Some(server.client_tls.clone()))
        .await
        .unwrap()
}

async fn fetch(stream: &mut AdsStream, type_url: &str, names: &[&str]) -> DiscoveryResponse {
    stream.subscribe(type_url, names).await.unwrap();
    let response = stream.recv(RECV).await.unwrap();
    assert_eq!(response.type_url, type_url);
    response
}

fn decode<M: Message + Default>(response: &DiscoveryResponse) -> Vec<M> {
    response
        .resources
        .iter()
        .map(|any| M::decode(any.value.as_slice()).unwrap())
        .collect()
}

fn ads() -> Option<ConfigSource> {
    Some(ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    })
}

fn eds_cluster(name: &str, eds_name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        alt_stat_name: name.replace('/', "_"),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: ads(),
            service_name: eds_name.into(),
        }),
        connect_timeout: Some(PbDuration {
            seconds: 2,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn cds_serves_one_eds_cluster_per_service_port() {
    let server = start().await;
    let mut stream = client(&server).await;
    let response = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    assert_eq!(
        decode::<Cluster>(&response),
        vec![
            eds_cluster("shop/api/9000", "shop/api/9000"),
            eds_cluster("shop/web/80", "shop/web/http")
        ]
    );
}

#[tokio::test]
async fn eds_serves_the_ready_addresses_of_the_named_port() {
    let server = start().await;
    let mut stream = client(&server).await;
    let response = fetch(
        &mut stream,
        type_url::ENDPOINT,
        &["shop/web/http", "shop/api/9000"],
    )
    .await;
    let endpoint = |ip: &str, port: u32| LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let assignment = |name: &str, endpoints: Vec<LbEndpoint>| ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        decode::<ClusterLoadAssignment>(&response),
        vec![
            assignment("shop/api/9000", vec![endpoint("127.0.0.13", 9001)]),
            assignment(
                "shop/web/http",
                vec![endpoint("127.0.0.11", 8080), endpoint("127.0.0.12", 8080)]
            ),
        ]
    );
}

#[tokio::test]
async fn rds_serves_exact_before_prefix_and_the_default_backend_as_star() {
    let server = start().await;
    let mut stream = client(&server).await;
    let response = fetch(&mut stream, type_url::ROUTE, &["ingress_http"]).await;
    let to = |cluster: &str, path: route_match::PathSpecifier| Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(path),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let expected = RouteConfiguration {
        name: "ingress_http".into(),
        ignore_port_in_host_matching: true,
        virtual_hosts: vec![
            VirtualHost {
                name: "*".into(),
                domains: vec!["*".into()],
                routes: vec![to(
                    "shop/web/80",
                    route_match::PathSpecifier::Prefix("/".into()),
                )],
                ..Default::default()
            },
            VirtualHost {
                name: "shop.example.com".into(),
                domains: vec!["shop.example.com".into()],
                routes: vec![
                    to(
                        "shop/api/9000",
                        route_match::PathSpecifier::Path("/api".into()),
                    ),
                    to(
                        "shop/web/80",
                        route_match::PathSpecifier::Prefix("/".into()),
                    ),
                ],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    assert_eq!(decode::<RouteConfiguration>(&response), vec![expected]);
}

#[tokio::test]
async fn lds_serves_the_http_listener_on_the_configured_port_and_https_only_with_tls() {
    let server = start().await;
    let mut stream = client(&server).await;
    let response = fetch(&mut stream, type_url::LISTENER, &[]).await;
    let listeners = decode::<Listener>(&response);
    assert_eq!(
        listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["ingress_http"]
    );
    let Some(address::Address::SocketAddress(a)) = listeners[0]
        .address
        .as_ref()
        .and_then(|a| a.address.clone())
    else {
        panic!("listener has no socket address")
    };
    assert_eq!(
        (a.address.as_str(), a.port_specifier),
        (
            "127.0.0.1",
            Some(socket_address::PortSpecifier::PortValue(18080))
        )
    );

    // Adding a TLS Ingress brings the HTTPS listener and its secret.
    let ca = isobar_harness::pki::TestCa::new("fixture-ca").unwrap();
    let (cert, key) = ca.issue_server(&["secure.example.com"]).unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let tls = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: secure, namespace: shop}}\nspec:\n  tls: [{{hosts: [secure.example.com], secretName: tls}}]\n  rules:\n  - host: secure.example.com\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}\n",
        indent(&cert), indent(&key)
    );
    stream.ack(&response).await.unwrap();
    assert!(publish(&server.cache, &fixture_snapshot(&tls)));
    let response = stream.recv(RECV).await.unwrap();
    let listeners = decode::<Listener>(&response);
    assert_eq!(
        listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["ingress_http", "ingress_https"]
    );
    let https = &listeners[1];
    assert_eq!(https.filter_chains.len(), 1);
    assert_eq!(
        https.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .server_names,
        ["secure.example.com"]
    );

    let secrets = fetch(&mut stream, type_url::SECRET, &["shop/tls"]).await;
    let secret =
        decode::<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret>(&secrets);
    assert_eq!(secret.len(), 1);
    assert_eq!(secret[0].name, "shop/tls");
}

#[tokio::test]
async fn a_nack_is_recorded_and_leaves_the_served_version_unchanged() {
    let server = start().await;
    let mut stream = client(&server).await;
    let first = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    stream.ack(&first).await.unwrap();
    acked(&server, &first).await;

    // A new configuration, which this "Envoy" rejects.
    let extra = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: more, namespace: shop}\nspec:\n  rules:\n  - host: more.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 9000}}}}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: shop}\nspec: {ports: [{port: 1}]}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: extra, namespace: shop}\nspec:\n  rules:\n  - host: extra.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: extra, port: {number: 1}}}}]}\n";
    assert!(publish(&server.cache, &fixture_snapshot(extra)));
    let second = stream.recv(RECV).await.unwrap();
    assert_ne!(second.version_info, first.version_info);
    stream
        .nack(&second, "cluster shop/extra/1: rejected for the test")
        .await
        .unwrap();

    // The NACK is counted and kept visible, with Envoy's words and the version Envoy keeps using.
    let nack = isobar_harness::wait_for_async(RECV, "the NACK to be recorded", || async {
        Ok(server.stats.last_nack())
    })
    .await
    .unwrap();
    assert_eq!(nack.message, "cluster shop/extra/1: rejected for the test");
    assert_eq!(nack.rejected_version, second.version_info);
    assert_eq!(nack.version_in_use, first.version_info);
    assert_eq!(XdsStats::get(&server.stats.nacks), 1);
    let streams = server.stats.streams();
    let cds = &streams[0].types[type_url::CLUSTER];
    assert_eq!(
        cds.acked_version, first.version_info,
        "the NACK must not count as accepting the new version"
    );
    assert_eq!(cds.sent_version, second.version_info);

    // The rejected version is not pushed again on its own…
    assert!(
        stream.recv(QUIET).await.is_err(),
        "nothing changed, so nothing may be re-sent"
    );
    // …and when the input goes back to what Envoy kept, nothing needs sending: Envoy holds it, and
    // that counts as its acceptance of the new generation (a NACK bisection waits for one).
    assert!(publish(&server.cache, &fixture_snapshot("")));
    assert!(
        stream.recv(QUIET).await.is_err(),
        "Envoy already holds this content"
    );
    let generation = server.cache.current().generation;
    isobar_harness::wait_for_async(RECV, "the generation to count as accepted", || async {
        let streams = server.stats.streams();
        let cds = &streams[0].types[type_url::CLUSTER];
        Ok(
            (cds.acked_generation == generation && cds.acked_version == first.version_info)
                .then_some(()),
        )
    })
    .await
    .unwrap();
    // The next real change is sent.
    assert!(publish(&server.cache, &fixture_snapshot(extra)));
    let third = stream.recv(RECV).await.unwrap();
    assert_eq!(
        third.version_info, second.version_info,
        "content-hashed versions: the same content has the same version"
    );
}

#[tokio::test]
async fn unchanged_input_sends_no_push_and_an_endpoint_change_pushes_only_eds() {
    let server = start().await;
    let mut stream = client(&server).await;
    let clusters = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    stream.ack(&clusters).await.unwrap();
    let endpoints = fetch(
        &mut stream,
        type_url::ENDPOINT,
        &["shop/web/http", "shop/api/9000"],
    )
    .await;
    stream.ack(&endpoints).await.unwrap();

    assert!(
        !publish(&server.cache, &fixture_snapshot("")),
        "same input, same resources"
    );
    assert!(
        stream.recv(QUIET).await.is_err(),
        "an unchanged configuration must not be pushed"
    );

    let mut snapshot = fixture_snapshot("");
    let key = isobar::store::ObjectKey::new("shop", "api");
    let ep = std::sync::Arc::make_mut(snapshot.endpoints.get_mut(&key).unwrap());
    ep.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0].ip = "127.0.0.14".into();
    assert!(publish(&server.cache, &snapshot));
    let pushed = stream.recv(RECV).await.unwrap();
    assert_eq!(pushed.type_url, type_url::ENDPOINT, "only EDS changed");
    let assignments = decode::<ClusterLoadAssignment>(&pushed);
    let names: Vec<&str> = assignments
        .iter()
        .map(|a| a.cluster_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["shop/api/9000"],
        "SotW EDS carries only the changed assignment"
    );
    assert_ne!(pushed.version_info, endpoints.version_info);
    assert_eq!(
        pushed.version_info,
        isobar::xds::cache::version_of(
            server
                .cache
                .current()
                .resources(
                    type_url::ENDPOINT,
                    &["shop/web/http".into(), "shop/api/9000".into()]
                )
                .iter()
        ),
        "the version is the one of everything subscribed, as Envoy then holds it"
    );
    assert!(
        stream.recv(QUIET).await.is_err(),
        "clusters did not change and must not be re-sent"
    );
}

#[tokio::test]
async fn a_reply_to_a_superseded_response_is_ignored() {
    let server = start().await;
    let mut stream = client(&server).await;
    let first = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    // Two changes before the client answers: its late ACK of the first must not trigger anything.
    let extra = "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: shop}\nspec: {ports: [{port: 1}]}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: extra, namespace: shop}\nspec:\n  rules:\n  - host: extra.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: extra, port: {number: 1}}}}]}\n";
    // One response per type is in flight: the change waits for the client's answer, and then the
    // latest content goes out (no queue of stale ones).
    assert!(publish(&server.cache, &fixture_snapshot(extra)));
    assert!(publish(
        &server.cache,
        &fixture_snapshot(&format!("{extra}---\n{}", flip("a")))
    ));
    assert!(
        stream.recv(QUIET).await.is_err(),
        "nothing more while the first response is unanswered"
    );
    stream.ack(&first).await.unwrap();
    let second = stream.recv(RECV).await.unwrap();
    assert_eq!(
        second.version_info,
        server.cache.current().type_version(type_url::CLUSTER),
        "the latest content, not the intermediate one"
    );
    // A late second answer to the first response is a reply to a superseded one: ignored.
    stream.ack(&first).await.unwrap();
    assert!(stream.recv(QUIET).await.is_err());
    stream.ack(&second).await.unwrap();
    acked(&server, &second).await;
}

/// Waits until the server has recorded the ACK of `response` (an ACK that crosses a newer response is
/// ignored, as the protocol says, so tests that need it recorded wait for it before changing input).
async fn acked(server: &Server, response: &DiscoveryResponse) {
    let type_url = response.type_url.clone();
    isobar_harness::wait_for_async(RECV, "the server to record the ACK", || async {
        let streams = server.stats.streams();
        let version = streams
            .first()
            .and_then(|s| s.types.get(&type_url))
            .map(|t| t.acked_version.clone());
        Ok(version.filter(|v| *v == response.version_info))
    })
    .await
    .unwrap();
}

fn client_tls_of(certs: &certgen::GeneratedCerts) -> XdsClientTls {
    XdsClientTls {
        ca_pem: Some(certs.ca_cert.clone().into_bytes()),
        client_cert_pem: Some(certs.envoy_cert.clone().into_bytes()),
        client_key_pem: Some(certs.envoy_key.clone().into_bytes()),
        server_name: "isobar".into(),
    }
}

async fn lds_with(server: &Server, tls: XdsClientTls) -> Result<DiscoveryResponse, String> {
    isobar_harness::xds_client::ads_first_response(server.addr, Some(tls), type_url::LISTENER, RECV)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_new_ca_and_certificate_on_disk_are_served_without_a_restart() {
    let server = start().await;
    let old_ca = server.client_tls.ca_pem.clone().unwrap();

    // Rotate everything: a new CA, new server and client certificates.
    let rotated =
        certgen::generate(&CertgenOptions::default(), time::OffsetDateTime::now_utc()).unwrap();
    // A client with the old identity that already trusts both CAs (as during a CA roll-over): after
    // the rotation it accepts the server's new certificate, so if it is refused, the server refused
    // its old certificate — not the client the server. It must be valid before the rotation.
    let old_identity = XdsClientTls {
        ca_pem: Some([old_ca, rotated.ca_cert.clone().into_bytes()].concat()),
        ..server.client_tls.clone()
    };
    lds_with(&server, old_identity.clone())
        .await
        .expect("the old identity is served before the rotation");

    certgen::write_to_dir(&rotated, server.dir.path(), true).unwrap();
    isobar_harness::wait_for_async(RECV, "a client of the new CA to be served", || async {
        Ok(lds_with(&server, client_tls_of(&rotated)).await.ok())
    })
    .await
    .unwrap();
    // The old identity is now refused, by the server, at the handshake.
    let failures_before = XdsStats::get(&server.stats.handshake_failures);
    let old = lds_with(&server, old_identity).await;
    let err =
        old.expect_err("a client certificate of the old CA must be refused after the rotation");
    assert!(
        err.contains("fatal alert"),
        "the server should refuse the old client certificate with a TLS alert: {err}"
    );
    assert!(
        !err.contains("invalid peer certificate"),
        "the client refused the server instead: {err}"
    );
    // The server counts the failure after sending its alert: wait for the count, don't race it.
    isobar_harness::wait_for_async(
        RECV,
        "the server to count the refused handshake",
        || async {
            Ok((XdsStats::get(&server.stats.handshake_failures) > failures_before).then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_request_over_the_message_size_limit_ends_its_stream_with_out_of_range() {
    let server = start_with(XdsServerLimits {
        max_message_bytes: 4096,
        ..XdsServerLimits::default()
    })
    .await;
    let names: Vec<String> = (0..300).map(|i| format!("default/web-{i:04}/80")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    // Under the limit (a wildcard request): served.
    let mut small = connect_ads(server.addr, Some(server.client_tls.clone()))
        .await
        .unwrap();
    small.subscribe(type_url::CLUSTER, &[]).await.unwrap();
    small.recv(RECV).await.unwrap();

    // Over it (300 names, some 6,300 bytes): refused, with the reason.
    let mut big = connect_ads(server.addr, Some(server.client_tls.clone()))
        .await
        .unwrap();
    big.subscribe(type_url::CLUSTER, &names).await.unwrap();
    let err = big.recv(RECV).await.unwrap_err().to_string();
    assert!(
        err.contains("OutOfRange") && err.contains("the limit is: 4096 bytes"),
        "{err}"
    );
}

fn cluster_names(response: &DiscoveryResponse) -> Vec<String> {
    assert_eq!(response.type_url, type_url::CLUSTER, "{response:?}");
    decode::<Cluster>(response)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// The EDS names the clusters of a CDS response read, as Envoy subscribes to them.
fn eds_names(response: &DiscoveryResponse) -> Vec<String> {
    decode::<Cluster>(response)
        .into_iter()
        .map(|c| c.eds_cluster_config.unwrap().service_name)
        .collect()
}

/// The cluster flip.example.com routes to in an RDS response.
fn flip_cluster(response: &DiscoveryResponse) -> String {
    assert_eq!(response.type_url, type_url::ROUTE, "{response:?}");
    let routes = decode::<RouteConfiguration>(response);
    let host = routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "flip.example.com")
        .expect("a virtual host for flip.example.com");
    match host.routes[0].action.as_ref() {
        Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(c)),
            ..
        })) => c.clone(),
        other => panic!("not a route to one cluster: {other:?}"),
    }
}

/// Subscribes like Envoy does after a CDS change: EDS for the clusters' names. Returns the EDS
/// response, ACKed.
async fn follow_clusters(stream: &mut AdsStream, cds: &DiscoveryResponse) -> DiscoveryResponse {
    let names = eds_names(cds);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let eds = fetch(stream, type_url::ENDPOINT, &names).await;
    stream.ack(&eds).await.unwrap();
    eds
}

/// A stream subscribed to every type, as Envoy is, with the first configuration ACKed.
async fn envoy_like_stream(server: &Server) -> AdsStream {
    let mut stream = client(server).await;
    let cds = fetch(&mut stream, type_url::CLUSTER, &[]).await;
    stream.ack(&cds).await.unwrap();
    follow_clusters(&mut stream, &cds).await;
    let lds = fetch(&mut stream, type_url::LISTENER, &[]).await;
    stream.ack(&lds).await.unwrap();
    let rds = fetch(&mut stream, type_url::ROUTE, &["ingress_http"]).await;
    stream.ack(&rds).await.unwrap();
    acked(server, &rds).await;
    stream
}

#[tokio::test]
async fn a_route_flip_adds_the_new_cluster_before_the_route_and_removes_the_old_one_after() {
    let server = start().await;
    assert!(publish(&server.cache, &fixture_snapshot(&flip("a"))));
    let mut stream = envoy_like_stream(&server).await;

    assert!(publish(&server.cache, &fixture_snapshot(&flip("b"))));
    // 1. Clusters first, the old one still there: the new route's cluster exists before the route.
    let both = stream.recv(RECV).await.unwrap();
    let names = cluster_names(&both);
    assert!(
        names.contains(&"shop/flip-a/80".to_string())
            && names.contains(&"shop/flip-b/80".to_string()),
        "{names:?}"
    );
    assert!(
        stream.recv(QUIET).await.is_err(),
        "nothing else before the clusters are ACKed"
    );
    stream.ack(&both).await.unwrap();
    assert!(
        stream.recv(QUIET).await.is_err(),
        "no route to flip-b while its cluster has no endpoints (it is still warming)"
    );
    // Envoy subscribes to the new cluster's endpoints; they arrive.
    let eds = follow_clusters(&mut stream, &both).await;
    assert!(decode::<ClusterLoadAssignment>(&eds)
        .iter()
        .any(|c| c.cluster_name == "shop/flip-b/80"));

    // 2. The route to flip-b (the listeners did not change), and the old cluster stays until it is
    // ACKed.
    let rds = stream.recv(RECV).await.unwrap();
    assert_eq!(flip_cluster(&rds), "shop/flip-b/80");
    assert!(
        stream.recv(QUIET).await.is_err(),
        "flip-a is removed only once the route that stopped using it is ACKed"
    );
    stream.ack(&rds).await.unwrap();

    // 3. Then the clusters without flip-a.
    let after = stream.recv(RECV).await.unwrap();
    let names = cluster_names(&after);
    assert!(
        names.contains(&"shop/flip-b/80".to_string())
            && !names.contains(&"shop/flip-a/80".to_string()),
        "{names:?}"
    );
    stream.ack(&after).await.unwrap();
    acked(&server, &after).await;
    let streams = server.stats.streams();
    let cds = &streams[0].types[type_url::CLUSTER];
    assert_eq!(
        cds.acked_version,
        server.cache.current().type_version(type_url::CLUSTER)
    );
    assert_eq!(cds.acked_generation, server.cache.current().generation);
}

#[tokio::test]
async fn a_nacked_route_keeps_the_old_cluster_and_the_next_snapshot_still_flows() {
    let server = start().await;
    assert!(publish(&server.cache, &fixture_snapshot(&flip("a"))));
    let mut stream = envoy_like_stream(&server).await;

    assert!(publish(&server.cache, &fixture_snapshot(&flip("b"))));
    let both = stream.recv(RECV).await.unwrap();
    stream.ack(&both).await.unwrap();
    follow_clusters(&mut stream, &both).await;
    let rds = stream.recv(RECV).await.unwrap();
    assert_eq!(flip_cluster(&rds), "shop/flip-b/80");
    stream.nack(&rds, "rejected for the test").await.unwrap();
    assert!(
        stream.recv(QUIET).await.is_err(),
        "Envoy still routes to flip-a: its cluster must stay"
    );
    let nack = isobar_harness::wait_for_async(RECV, "the NACK to be recorded", || async {
        Ok(server.stats.last_nack())
    })
    .await
    .unwrap();
    assert_eq!(nack.generation, server.cache.current().generation);

    // A newer snapshot (back to flip-a) is what Envoy still routes by: no route needs sending, and
    // flip-b (never used) goes.
    assert!(publish(&server.cache, &fixture_snapshot(&flip("a"))));
    let after = stream.recv(RECV).await.unwrap();
    let names = cluster_names(&after);
    assert!(
        names.contains(&"shop/flip-a/80".to_string())
            && !names.contains(&"shop/flip-b/80".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_newer_snapshot_mid_sequence_wins_and_the_stale_one_is_never_routed() {
    let server = start().await;
    assert!(publish(&server.cache, &fixture_snapshot(&flip("a"))));
    let mut stream = envoy_like_stream(&server).await;

    assert!(publish(&server.cache, &fixture_snapshot(&flip("b"))));
    let ab = stream.recv(RECV).await.unwrap();
    assert_eq!(
        cluster_names(&ab)
            .iter()
            .filter(|n| n.contains("flip"))
            .collect::<Vec<_>>(),
        ["shop/flip-a/80", "shop/flip-b/80"]
    );
    // Before Envoy answers, the Ingress moves on to flip-c: nothing more is sent while the
    // clusters are in flight; once they are ACKed the sequence restarts from what Envoy holds
    // (flip-a, still routed, and flip-b) and carries the latest snapshot.
    assert!(publish(&server.cache, &fixture_snapshot(&flip("c"))));
    assert!(stream.recv(QUIET).await.is_err(), "one response in flight");
    stream.ack(&ab).await.unwrap();
    let abc = stream.recv(RECV).await.unwrap();
    assert_eq!(
        cluster_names(&abc)
            .iter()
            .filter(|n| n.contains("flip"))
            .collect::<Vec<_>>(),
        ["shop/flip-a/80", "shop/flip-b/80", "shop/flip-c/80"]
    );
    stream.ack(&abc).await.unwrap();
    follow_clusters(&mut stream, &abc).await;
    let rds = stream.recv(RECV).await.unwrap();
    assert_eq!(flip_cluster(&rds), "shop/flip-c/80", "the latest wins");
    stream.ack(&rds).await.unwrap();
    let after = stream.recv(RECV).await.unwrap();
    assert_eq!(
        cluster_names(&after)
            .iter()
            .filter(|n| n.contains("flip"))
            .collect::<Vec<_>>(),
        ["shop/flip-c/80"]
    );
}
