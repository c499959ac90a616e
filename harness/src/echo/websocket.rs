//! A WebSocket client for tests: opens a WebSocket (through Envoy), sends one text message and
//! reads the echo.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::error::{error_chain, Error, Result};

/// What became of a WebSocket request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSocketOutcome {
    /// `101 Switching Protocols` (with a valid `Sec-WebSocket-Accept`, which the client checks);
    /// `reply` is the text message that came back, `backend` the `x-echo-backend` header.
    Upgraded {
        /// The first text message received after sending ours.
        reply: String,
        /// The `x-echo-backend` header of the 101 response.
        backend: Option<String>,
    },
    /// Not upgraded: the server answered with this status (and body).
    Refused {
        /// The status code.
        status: u16,
        /// The body, lossily decoded.
        body: String,
        /// The `x-echo-backend` header: `None` when no echo backend answered (the proxy refused
        /// the upgrade itself).
        backend: Option<String>,
    },
}

/// Connects to `connect`, asks for `ws://HOST PATH` with `Host: host`, sends `message` as a text
/// frame and waits for the echo; the whole exchange is bounded by `timeout`.
pub async fn websocket_echo(
    connect: SocketAddr,
    host: &str,
    path: &str,
    message: &str,
    timeout: Duration,
) -> Result<WebSocketOutcome> {
    let what = format!("websocket {host}{path} via {connect}");
    match tokio::time::timeout(timeout, exchange(connect, host, path, message, &what)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Http(format!("{what} timed out after {timeout:?}"))),
    }
}

async fn exchange(
    connect: SocketAddr,
    host: &str,
    path: &str,
    message: &str,
    what: &str,
) -> Result<WebSocketOutcome> {
    let request = format!("ws://{host}{path}")
        .into_client_request()
        .map_err(|e| Error::Http(format!("{what}: building the request: {e}")))?;
    let tcp = TcpStream::connect(connect)
        .await
        .map_err(|e| Error::io(format!("connecting to {connect}"), e))?;
    let _ = tcp.set_nodelay(true);
    let (mut ws, response) = match tokio_tungstenite::client_async(request, tcp).await {
        Ok(r) => r,
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let backend = response
                .headers()
                .get(super::ECHO_BACKEND_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Ok(WebSocketOutcome::Refused {
                status,
                body,
                backend,
            });
        }
        Err(e) => {
            return Err(Error::Http(format!(
                "{what}: handshake: {}",
                error_chain(&e)
            )))
        }
    };
    let backend = response
        .headers()
        .get(super::ECHO_BACKEND_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ws.send(Message::text(message))
        .await
        .map_err(|e| Error::Http(format!("{what}: sending: {}", error_chain(&e))))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(reply))) => {
                let _ = ws.close(None).await;
                return Ok(WebSocketOutcome::Upgraded {
                    reply: reply.to_string(),
                    backend,
                });
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(Error::Http(format!(
                    "{what}: closed before a reply: {frame:?}"
                )))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return Err(Error::Http(format!("{what}: reading: {}", error_chain(&e))))
            }
            None => {
                return Err(Error::Http(format!(
                    "{what}: connection ended before a reply"
                )))
            }
        }
    }
}
