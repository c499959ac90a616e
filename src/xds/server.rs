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
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::cache::{CacheSnapshot, XdsCache};
use super::delta::Delta;
use super::limits::XdsServerLimits;
use super::sotw::Sotw;
use super::stats::XdsStats;
use super::stream;
use super::tls_incoming::{tls_incoming, XdsTls};
use crate::Result;

/// The AggregatedDiscoveryService implementation.
#[derive(Debug, Clone)]
pub struct AdsService {
    cache: Arc<XdsCache>,
    stats: Arc<XdsStats>,
    /// Becomes `true` when [`serve`]'s shutdown begins: every open stream then ends.
    closing: watch::Receiver<bool>,
}

impl AdsService {
    pub fn new(cache: Arc<XdsCache>, stats: Arc<XdsStats>) -> Self {
        // Never closing until `serve` installs its own signal (a dropped sender means "never").
        let (_, closing) = watch::channel(false);
        AdsService {
            cache,
            stats,
            closing,
        }
    }
}

/// Completes once `closing` turns `true`; never if its sender is gone without that.
async fn until_closing(mut closing: watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl AdsService {
    /// Runs one stream (`serve` is the protocol's stream loop) until it ends or isobar closes.
    fn spawn_stream<Req, Resp, F>(
        &self,
        request: Request<Streaming<Req>>,
        serve: impl FnOnce(
                Streaming<Req>,
                mpsc::Sender<Result<Resp, Status>>,
                watch::Receiver<Arc<CacheSnapshot>>,
                Arc<XdsStats>,
                u64,
            ) -> F
            + Send
            + 'static,
    ) -> ResponseStream<Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let stream_id = self.stats.open_stream(peer);
        // At most one update per type is in flight (see `sequence`), so this never holds a backlog.
        let (tx, rx) = mpsc::channel(16);
        let cache = self.cache.subscribe();
        let stats = Arc::clone(&self.stats);
        let requests = request.into_inner();
        let closing = self.closing.clone();
        tokio::spawn(async move {
            let last_word = tx.clone();
            tokio::select! {
                () = serve(requests, tx, cache, Arc::clone(&stats), stream_id) => {}
                // An ADS stream never ends by itself: left open, it would hold the server's graceful
                // shutdown for its whole grace period. Ending it tells Envoy to reconnect (to the next
                // replica); Envoy keeps serving what it has meanwhile.
                () = until_closing(closing) => {
                    let _ = last_word.try_send(Err(Status::unavailable(
                        "isobar is shutting down; reconnect",
                    )));
                }
            }
            stats.close_stream(stream_id);
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn_stream(request, stream::run::<Sotw>),
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn_stream(request, stream::run::<Delta>),
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
    mut service: AdsService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stats = Arc::clone(&service.stats);
    let (closing, closing_rx) = watch::channel(false);
    service.closing = closing_rx;
    // tonic stops accepting and waits for open connections; the streams end on `closing`.
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
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
            let incoming =
                tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |accepted| {
                    accepted.inspect(no_delay)
                });
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
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

/// xDS answers are small writes that Envoy waits for before it ACKs: without `TCP_NODELAY`, Nagle's
/// algorithm holds one back until the previous is ACKed, which the peer's delayed ACK puts off by up
/// to 40 ms, a pause on every step of an ordered update.
pub(super) fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set on an xDS connection");
    }
}
