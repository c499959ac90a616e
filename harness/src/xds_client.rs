//! A probe that talks to isobar's xDS port the way Envoy does (ADS over gRPC, optionally mTLS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{error_chain, Error, Result};
use crate::tls;

/// Type URL of `envoy.config.listener.v3.Listener`.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of `envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of `envoy.config.cluster.v3.Cluster`.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Type URL of `envoy.extensions.transport_sockets.tls.v3.Secret`.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The node id the probe reports.
pub const NODE_ID: &str = "test-envoy";
/// The node cluster the probe reports.
pub const NODE_CLUSTER: &str = "isobar-test";

/// gRPC code INTERNAL, which Envoy puts in a NACK's error detail.
pub(crate) const GRPC_INTERNAL: i32 = 13;
/// Bound on TCP connect + TLS + HTTP/2 handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings of the probe.
#[derive(Debug, Clone, Default)]
pub struct XdsClientTls {
    /// CA to verify the server against; `None` accepts any server certificate (test-only).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate to present (PEM), with its key.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM).
    pub client_key_pem: Option<Vec<u8>>,
    /// Name to send as SNI and to verify in the server's certificate.
    pub server_name: String,
}

/// An open ADS stream.
#[derive(Debug)]
pub struct AdsStream {
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Responses<DiscoveryResponse>,
    /// Per type URL: resource names last requested, and the last ACKed version.
    subscriptions: HashMap<String, (Vec<String>, String)>,
}

/// Builds a DiscoveryRequest from node `test-envoy` / cluster `isobar-test`.
pub fn request(
    type_url: &str,
    names: &[&str],
    version: &str,
    nonce: &str,
    error_detail: Option<String>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_string(),
        node: Some(Node {
            id: NODE_ID.to_string(),
            cluster: NODE_CLUSTER.to_string(),
            ..Default::default()
        }),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        error_detail: error_detail.map(|message| RpcStatus {
            code: GRPC_INTERNAL,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Opens an ADS stream to `addr`: plaintext HTTP/2 with `tls = None`, else TLS with ALPN h2.
///
/// Handshake failures surface here; a refusal the server only signals after the handshake
/// (TLS 1.3 client-certificate rejection) surfaces on the first [`AdsStream::recv`].
pub async fn connect_ads(addr: SocketAddr, tls: Option<XdsClientTls>) -> Result<AdsStream> {
    let channel = open_channel(addr, tls).await?;
    let (tx, rx) = mpsc::channel(16);
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let call = tokio::spawn(async move {
        client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
    });
    Ok(AdsStream {
        tx,
        responses: Responses::new(call, "ADS", "DiscoveryResponse"),
        subscriptions: HashMap::new(),
    })
}

/// The response side of a probe's ADS call, either protocol. The call is started in a task: its
/// response headers may only come after the first request, and a TLS 1.3 refusal only shows on
/// the first read, so the task is awaited there.
#[derive(Debug)]
pub(crate) struct Responses<T> {
    call: Option<JoinHandle<std::result::Result<Streaming<T>, tonic::Status>>>,
    streaming: Option<Streaming<T>>,
    /// The protocol and its response message, for errors ("ADS", "DiscoveryResponse").
    what: &'static str,
    message: &'static str,
}

impl<T> Responses<T> {
    pub(crate) fn new(
        call: JoinHandle<std::result::Result<Streaming<T>, tonic::Status>>,
        what: &'static str,
        message: &'static str,
    ) -> Self {
        Responses {
            call: Some(call),
            streaming: None,
            what,
            message,
        }
    }

    /// Nothing to read (for tests of the request side).
    #[cfg(test)]
    pub(crate) fn none(what: &'static str, message: &'static str) -> Self {
        Responses {
            call: None,
            streaming: None,
            what,
            message,
        }
    }

    /// The next response, failing on timeout, stream end or a gRPC error.
    pub(crate) async fn recv(&mut self, timeout: Duration) -> Result<T> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Xds(format!(
                "no {} within {timeout:?}",
                self.message
            ))),
        }
    }

    async fn next(&mut self) -> Result<T> {
        let what = self.what;
        if let Some(call) = &mut self.call {
            let result = call.await;
            self.call = None;
            let streaming = result
                .map_err(|e| Error::Xds(format!("{what} call task failed: {e}")))?
                .map_err(|s| status_error(&format!("opening the {what} stream"), &s))?;
            self.streaming = Some(streaming);
        }
        let Some(streaming) = &mut self.streaming else {
            return Err(Error::Xds(format!("the {what} stream has failed before")));
        };
        match streaming.message().await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Error::Xds(format!("the server ended the {what} stream"))),
            Err(s) => Err(status_error(&format!("reading the {what} stream"), &s)),
        }
    }
}

/// An HTTP/2 channel to `addr`: plaintext with `tls = None`, else TLS with ALPN h2 (shared by the
/// state-of-the-world and the delta probe).
pub(crate) async fn open_channel(addr: SocketAddr, tls: Option<XdsClientTls>) -> Result<Channel> {
    match tls {
        None => endpoint(addr)?
            .connect()
            .await
            .map_err(|e| Error::Xds(format!("connecting to {addr}: {}", error_chain(&e)))),
        Some(tls) => connect_tls(addr, tls).await,
    }
}

fn endpoint(addr: SocketAddr) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Xds(format!("endpoint for {addr}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT))
}

async fn connect_tls(addr: SocketAddr, tls: XdsClientTls) -> Result<Channel> {
    let identity = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
        (None, None) => None,
        _ => {
            return Err(Error::Invalid(
                "client_cert_pem and client_key_pem go together".into(),
            ))
        }
    };
    let config = tls::client_config(tls.ca_pem.as_deref(), identity, &[b"h2"])?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = tls::server_name(&tls.server_name)?;
    // tonic only sees an already-encrypted byte stream; the URI's host is ignored.
    let make = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            let stream = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    endpoint(addr)?
        .connect_with_connector(make)
        .await
        .map_err(|e| Error::Xds(format!("TLS connect to {addr}: {}", error_chain(&e))))
}

impl AdsStream {
    /// Sends a request (recording its names for later ACK/NACKs).
    pub async fn send(&mut self, req: DiscoveryRequest) -> Result<()> {
        let entry = self
            .subscriptions
            .entry(req.type_url.clone())
            .or_insert_with(|| (Vec::new(), String::new()));
        entry.0 = req.resource_names.clone();
        if req.error_detail.is_none() && !req.response_nonce.is_empty() {
            entry.1 = req.version_info.clone();
        }
        self.tx
            .send(req)
            .await
            .map_err(|_| Error::Xds("the ADS request stream is closed".into()))
    }

    /// Sends a subscription request for `type_url` (no nonce, no version).
    pub async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> Result<()> {
        self.send(request(type_url, names, "", "", None)).await
    }

    /// Receives the next response, failing on timeout, stream end or a gRPC error.
    pub async fn recv(&mut self, timeout: Duration) -> Result<DiscoveryResponse> {
        self.responses.recv(timeout).await
    }

    /// ACKs `resp`: its version and nonce, with the names last requested for its type.
    pub async fn ack(&mut self, resp: &DiscoveryResponse) -> Result<()> {
        let names = self.names_for(&resp.type_url);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.send(request(
            &resp.type_url,
            &names,
            &resp.version_info,
            &resp.nonce,
            None,
        ))
        .await
    }

    /// NACKs `resp` like Envoy: the last ACKed version, `resp`'s nonce and an error detail.
    pub async fn nack(&mut self, resp: &DiscoveryResponse, message: &str) -> Result<()> {
        let names = self.names_for(&resp.type_url);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let last_good = self
            .subscriptions
            .get(&resp.type_url)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.send(request(
            &resp.type_url,
            &names,
            &last_good,
            &resp.nonce,
            Some(message.to_string()),
        ))
        .await
    }

    fn names_for(&self, type_url: &str) -> Vec<String> {
        self.subscriptions
            .get(type_url)
            .map(|(n, _)| n.clone())
            .unwrap_or_default()
    }
}

pub(crate) fn status_error(what: &str, s: &tonic::Status) -> Error {
    Error::Xds(format!("{what}: gRPC {:?}: {}", s.code(), error_chain(s)))
}

/// Whether `err` is a TLS refusal (a fatal alert received, or a certificate the probe
/// rejected) rather than a timeout or a gRPC-level failure.
pub fn is_tls_refusal(err: &Error) -> bool {
    let msg = err.to_string();
    [
        "fatal alert",
        "invalid peer certificate",
        "HandshakeFailure",
        "handshake",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// One-shot probe: connect, subscribe to `type_url` (all resources), return the first response.
pub async fn ads_first_response(
    addr: SocketAddr,
    tls: Option<XdsClientTls>,
    type_url: &str,
    timeout: Duration,
) -> Result<DiscoveryResponse> {
    let run = async {
        let mut stream = connect_ads(addr, tls).await?;
        stream.subscribe(type_url, &[]).await?;
        stream.recv(timeout).await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(Error::Xds(format!(
            "no {type_url} response from {addr} within {timeout:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Name;

    #[test]
    fn type_urls_match_the_protos() {
        assert_eq!(LISTENER_TYPE, Listener::type_url());
        assert_eq!(ROUTE_TYPE, RouteConfiguration::type_url());
        assert_eq!(CLUSTER_TYPE, Cluster::type_url());
        assert_eq!(ENDPOINT_TYPE, ClusterLoadAssignment::type_url());
        assert_eq!(SECRET_TYPE, Secret::type_url());
    }

    #[test]
    fn request_carries_node_and_error_detail() {
        let r = request(CLUSTER_TYPE, &["a"], "v1", "n1", Some("bad".into()));
        let node = r.node.unwrap();
        assert_eq!(
            (node.id.as_str(), node.cluster.as_str()),
            (NODE_ID, NODE_CLUSTER)
        );
        assert_eq!(r.resource_names, vec!["a".to_string()]);
        assert_eq!(r.error_detail.unwrap().message, "bad");
    }
}
