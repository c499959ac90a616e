//! The ADS gRPC server: tonic behind isobar's own rustls acceptor, so the server certificate and the CA
//! can rotate without a restart (tonic's built-in TLS config can't be reloaded).

use std::pin::Pin;
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
use super::limits::XdsServerLimits;
use super::stats::XdsStats;
use super::tls_incoming::{tls_incoming, XdsTls};
use crate::Result;

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
/// client certificate issued by the configured CA (and, with an allowlist, one of its SAN DNS names);
/// without it the server speaks plaintext HTTP/2 (only ever chosen by an explicit `--insecure`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<XdsTls>,
    limits: &XdsServerLimits,
    service: AdsService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stats = Arc::clone(&service.stats);
    // tonic's own limits: streams per HTTP/2 connection, and the size of a decoded request.
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        .add_service(
            AggregatedDiscoveryServiceServer::new(service)
                .max_decoding_message_size(limits.max_message_bytes),
        );
    match tls {
        None => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await?
        }
        Some(tls) => {
            let incoming = tls_incoming(listener, tls, limits, stats);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    Ok(())
}
