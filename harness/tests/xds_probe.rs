//! The xDS probe against a small in-test ADS server, plaintext and with mTLS.
//!
//! The server answers each subscription with version `vN`/nonce `nN`, and each ACK or NACK
//! with a response whose version describes what it received, so the probe's requests can
//! be checked end to end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use isobar_harness::pki::TestCa;
use isobar_harness::tls::{certs_from_pem, key_from_pem, provider};
use isobar_harness::xds_client::{
    ads_first_response, connect_ads, is_tls_refusal, XdsClientTls, CLUSTER_TYPE, LISTENER_TYPE,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

const T: Duration = Duration::from_secs(10);

struct DescribingAds;

#[tonic::async_trait]
impl AggregatedDiscoveryService for DescribingAds {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Some(req)) = inbound.message().await {
                n += 1;
                let version = match (&req.error_detail, req.response_nonce.is_empty()) {
                    (_, true) => format!("v{n}"),
                    (None, false) => format!("ack:{}:{}", req.version_info, req.response_nonce),
                    (Some(e), false) => format!("nack:{}:{}", req.version_info, e.message),
                };
                let node = req.node.map(|n| n.id).unwrap_or_default();
                let resp = DiscoveryResponse {
                    version_info: format!("{version}|{node}|{}", req.resource_names.join(",")),
                    type_url: req.type_url,
                    nonce: format!("n{n}"),
                    ..Default::default()
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented("delta"))
    }
}

async fn plaintext_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(DescribingAds))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

/// An ADS server requiring client certificates from `ca`, serving a cert for `isobar`.
async fn mtls_server(ca: &TestCa) -> SocketAddr {
    let (cert, key) = ca.issue_server(&["isobar"]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(ca.cert_pem().as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(cert.as_bytes()).unwrap(),
            key_from_pem(key.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<Result<_, std::io::Error>>(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                // Refused handshakes are simply dropped, as a real server would.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(tls)).await;
                }
            });
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(DescribingAds))
            .serve_with_incoming(ReceiverStream::new(rx)),
    );
    addr
}

fn client_tls(ca: &TestCa, client: Option<(String, String)>) -> XdsClientTls {
    XdsClientTls {
        ca_pem: Some(ca.cert_pem().into_bytes()),
        client_cert_pem: client.as_ref().map(|c| c.0.clone().into_bytes()),
        client_key_pem: client.map(|c| c.1.into_bytes()),
        server_name: "isobar".into(),
    }
}

#[tokio::test]
async fn plaintext_subscribe_ack_nack() {
    let addr = plaintext_server().await;
    let mut ads = connect_ads(addr, None).await.unwrap();
    ads.subscribe(CLUSTER_TYPE, &["a", "b"]).await.unwrap();
    let first = ads.recv(T).await.unwrap();
    assert_eq!(first.version_info, "v1|test-envoy|a,b");
    assert_eq!(first.type_url, CLUSTER_TYPE);

    ads.ack(&first).await.unwrap();
    let second = ads.recv(T).await.unwrap();
    assert_eq!(
        second.version_info,
        "ack:v1|test-envoy|a,b:n1|test-envoy|a,b"
    );

    // A NACK carries the last ACKed version, the rejected nonce and the message.
    ads.nack(&second, "bad cluster").await.unwrap();
    let third = ads.recv(T).await.unwrap();
    assert_eq!(
        third.version_info,
        "nack:v1|test-envoy|a,b:bad cluster|test-envoy|a,b"
    );
}

#[tokio::test]
async fn recv_times_out_when_nothing_comes() {
    let addr = plaintext_server().await;
    let mut ads = connect_ads(addr, None).await.unwrap();
    let err = ads.recv(Duration::from_millis(200)).await.unwrap_err();
    assert!(err.to_string().contains("no DiscoveryResponse"), "{err}");
    assert!(!is_tls_refusal(&err), "{err}");
}

#[tokio::test]
async fn mtls_probe_with_the_right_client_certificate_succeeds() {
    let ca = TestCa::new("isobar-ca").unwrap();
    let addr = mtls_server(&ca).await;
    let client = ca.issue_client("envoy").unwrap();
    let resp = ads_first_response(addr, Some(client_tls(&ca, Some(client))), LISTENER_TYPE, T)
        .await
        .unwrap();
    assert_eq!(resp.type_url, LISTENER_TYPE);
}

#[tokio::test]
async fn mtls_probe_without_a_client_certificate_is_refused() {
    let ca = TestCa::new("isobar-ca").unwrap();
    let addr = mtls_server(&ca).await;
    let err = ads_first_response(addr, Some(client_tls(&ca, None)), LISTENER_TYPE, T)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    assert!(is_tls_refusal(&err), "{err}");
}

#[tokio::test]
async fn mtls_probe_with_a_certificate_from_another_ca_is_refused() {
    let ca = TestCa::new("isobar-ca").unwrap();
    let other = TestCa::new("other-ca").unwrap();
    let addr = mtls_server(&ca).await;
    let client = other.issue_client("envoy").unwrap();
    let err = ads_first_response(addr, Some(client_tls(&ca, Some(client))), LISTENER_TYPE, T)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownCA"), "{err}");
    assert!(is_tls_refusal(&err), "{err}");
}

#[tokio::test]
async fn a_server_from_an_untrusted_ca_is_refused_by_the_probe() {
    let ca = TestCa::new("isobar-ca").unwrap();
    let other = TestCa::new("other-ca").unwrap();
    let addr = mtls_server(&ca).await;
    let client = ca.issue_client("envoy").unwrap();
    let err = connect_ads(addr, Some(client_tls(&other, Some(client))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(is_tls_refusal(&err), "{err}");
}
