//! The xDS port's TLS front: turns accepted TCP connections into authenticated TLS streams for tonic,
//! within bounds that anyone able to reach the port cannot exhaust.
//!
//! A connection first waits for its ClientHello without holding anything but its socket; only then
//! does it take one of `max_concurrent_handshakes` slots for the expensive part. So 1,000 idle
//! connections neither stop a real Envoy's handshake nor take CPU, and the handshake timeout (counted
//! from accept, slot wait included) closes them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::limits::XdsServerLimits;
use super::stats::{GaugeGuard, XdsStats};
use crate::tls::client_san::{ClientSanAllowlist, ClientSanRefusal};
use crate::tls::server::ReloadingServerConfig;

/// After a failed accept (typically the file descriptor limit), wait this long before the next one
/// rather than spinning on the same error.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How the xDS port authenticates clients.
#[derive(Debug, Clone)]
pub struct XdsTls {
    /// The server certificate and client CA, reloaded on change.
    pub server_config: Arc<ReloadingServerConfig>,
    /// DNS names a client certificate must include one of (empty: any the CA issued).
    pub client_sans: ClientSanAllowlist,
}

/// Why a connection never reached tonic.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Closed before sending a byte: a TCP health check (a Kubernetes tcpSocket probe), not a client.
    #[error("closed before the TLS handshake")]
    ClosedBeforeHello,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake not complete within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    ClientSan(#[from] ClientSanRefusal),
}

/// Accepts connections on `listener` and yields those that complete the TLS handshake and pass the
/// SAN allowlist. Each handshake runs in its own task with the server configuration current when
/// its ClientHello arrived.
pub fn tls_incoming(
    listener: TcpListener,
    tls: XdsTls,
    limits: &XdsServerLimits,
    stats: Arc<XdsStats>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    let tls = Arc::new(tls);
    let slots = Arc::new(Semaphore::new(limits.max_concurrent_handshakes));
    let timeout = limits.handshake_timeout;
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "xDS accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            super::server::no_delay(&tcp);
            let tx = tx.clone();
            let tls = Arc::clone(&tls);
            let slots = Arc::clone(&slots);
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                match admit(tcp, &tls, &slots, &stats, timeout).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(Refusal::ClosedBeforeHello) => {
                        tracing::debug!(%peer, "xDS connection closed before the TLS handshake");
                    }
                    Err(e @ Refusal::ClientSan(_)) => {
                        stats.client_san_refusals.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, error = %e, "xDS client refused after the TLS handshake");
                    }
                    Err(e) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, error = %e, "xDS client refused");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// One connection's way in: ClientHello (no slot), handshake (one slot), SAN allowlist.
async fn admit(
    tcp: TcpStream,
    tls: &XdsTls,
    slots: &Semaphore,
    stats: &XdsStats,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, Refusal> {
    let deadline = Instant::now() + timeout;
    let timed_out = |_| Refusal::TimedOut(timeout);
    let start = {
        let _waiting = GaugeGuard::enter(&stats.awaiting_client_hello);
        timeout_at(deadline, LazyConfigAcceptor::new(Acceptor::default(), tcp))
            .await
            .map_err(timed_out)?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Refusal::ClosedBeforeHello,
                _ => Refusal::Handshake(e),
            })?
    };
    let stream = {
        let _slot = timeout_at(deadline, slots.acquire())
            .await
            .map_err(timed_out)?
            // Never closed: the semaphore lives as long as the accept loop.
            .map_err(|e| Refusal::Handshake(std::io::Error::other(e)))?;
        let _in_progress = GaugeGuard::enter(&stats.handshakes_in_progress);
        timeout_at(deadline, start.into_stream(tls.server_config.current()))
            .await
            .map_err(timed_out)?
            .map_err(Refusal::Handshake)?
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    tls.client_sans.check(leaf)?;
    Ok(stream)
}
