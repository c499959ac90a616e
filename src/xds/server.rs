//! The ADS gRPC server: tonic behind isobar's own rustls acceptor, so the server certificate and the CA
//! can rotate without a restart (tonic's built-in TLS config can't be reloaded).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::cache::XdsCache;
use super::stats::XdsStats;
use crate::tls::server::ReloadingServerConfig;
use crate::Result;

/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The AggregatedDiscoveryService implementation.
#[derive(Debug, Clone)]
pub struct AdsService {
    cache: Arc<XdsCache>,
    stats: Arc<XdsStats>,
}

impl AdsService {
    pub fn new(cache: Arc<XdsCache>, stats: Arc<XdsStats>) -> Self {
        AdsService { cache, stats }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let stream_id = self.stats.open_stream(peer);
        let (tx, rx) = mpsc::channel(16);
        let cache = self.cache.subscribe();
        let stats = Arc::clone(&self.stats);
        let requests = request.into_inner();
        tokio::spawn(async move {
            super::stream::run(requests, tx, cache, Arc::clone(&stats), stream_id).await;
            stats.close_stream(stream_id);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "isobar serves state-of-the-world ADS; configure Envoy with api_type GRPC",
        ))
    }
}

/// Serves ADS on `listener` until `shutdown` completes. With `tls`, every connection must present a
/// client certificate issued by the configured CA; without it the server speaks plaintext HTTP/2
/// (only ever chosen by an explicit `--insecure`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ReloadingServerConfig>>,
    service: AdsService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stats = Arc::clone(&service.stats);
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(
            AggregatedDiscoveryServiceServer::new(service).max_decoding_message_size(64 << 20),
        );
    match tls {
        None => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await?
        }
        Some(tls) => {
            let incoming = tls_incoming(listener, tls, stats);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    Ok(())
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, each with the server
/// configuration current at that moment.
fn tls_incoming(
    listener: TcpListener,
    tls: Arc<ReloadingServerConfig>,
    stats: Arc<XdsStats>,
) -> ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "xDS accept failed");
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    // A TCP health check (a Kubernetes tcpSocket probe) connects and closes without a
                    // byte: not a refused client.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, "xDS connection closed before the TLS handshake");
                    }
                    Ok(Err(e)) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, error = %e, "xDS client refused: TLS handshake failed");
                    }
                    Err(_) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, "xDS client refused: TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
