//! The in-process echo server (HTTP/1.1 and HTTP/2, optionally TLS).
//!
//! Every request is answered with JSON describing it (including the HTTP version it arrived with,
//! so a test can tell whether Envoy spoke HTTP/2 to the upstream). Request headers steer the answer,
//! so tests stay declarative:
//! * `x-echo-status: NNN` answers with that status;
//! * `x-echo-key: K` counts the request under `K` (read with `GET /__echo/count?key=K`, a plain
//!   number); with `x-echo-fail-times: N` the first N requests with key K get 503, later ones 200;
//! * `x-echo-delay-ms: N` sleeps N ms before answering;
//! * `Upgrade: websocket` switches to WebSocket (101, `Sec-WebSocket-Accept`) and echoes every
//!   text and binary message back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};
use crate::tls;

/// Response header naming the backend that answered.
pub const ECHO_BACKEND_HEADER: &str = "x-echo-backend";
/// Request header: answer with this status code.
pub const ECHO_STATUS_HEADER: &str = "x-echo-status";
/// Request header: count this request under this key.
pub const ECHO_KEY_HEADER: &str = "x-echo-key";
/// Request header: the first N requests with the same `x-echo-key` get 503.
pub const ECHO_FAIL_TIMES_HEADER: &str = "x-echo-fail-times";
/// Request header: sleep this many milliseconds before answering.
pub const ECHO_DELAY_MS_HEADER: &str = "x-echo-delay-ms";
/// Response header: the 1-based number of this request among those with its `x-echo-key`.
pub const ECHO_ATTEMPT_HEADER: &str = "x-echo-attempt";
/// The path that reports how many requests a key has seen (`?key=K`), as a plain number.
pub const ECHO_COUNT_PATH: &str = "/__echo/count";
/// The longest delay `x-echo-delay-ms` may ask for (a bound, so a bad header can't wedge a test).
const MAX_DELAY: Duration = Duration::from_secs(60);

/// What one echo server shares between its connections.
#[derive(Debug)]
struct EchoState {
    name: Arc<str>,
    /// Requests seen per `x-echo-key`.
    counts: Mutex<HashMap<String, u64>>,
}

impl EchoState {
    /// Counts one more request under `key`; returns its 1-based number.
    fn count(&self, key: &str) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn seen(&self, key: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

/// Serves echo responses on `listener` until the task is dropped.
///
/// With `tls = Some((cert_pem_path, key_pem_path))` it speaks TLS (ALPN h2 and http/1.1).
/// Only fails on setup errors; per-connection errors are logged and ignored.
pub async fn serve(
    name: String,
    listener: TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<()> {
    let acceptor = match tls {
        Some((cert, key)) => Some(tls_acceptor(&cert, &key)?),
        None => None,
    };
    let state = Arc::new(EchoState {
        name: name.into(),
        counts: Mutex::new(HashMap::new()),
    });
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends are transient: keep serving.
                tracing::warn!(error = %e, "echo accept failed");
                continue;
            }
        };
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(state, tcp, false).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(state, stream, true).await,
                    Err(e) => tracing::debug!(error = %e, "echo TLS handshake failed"),
                },
            }
        });
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    let certs = tls::certs_from_pem(&read(cert)?)?;
    let key = tls::key_from_pem(&read(key)?)?;
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("echo server certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve_connection<S>(state: Arc<EchoState>, io: S, is_tls: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(answer(&state, req, is_tls).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "echo connection ended with an error");
    }
}

/// A request header as text.
fn header<'a>(parts: &'a hyper::http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request header as a number (absent or unparsable: `None`).
fn header_number(parts: &hyper::http::request::Parts, name: &str) -> Option<u64> {
    header(parts, name).and_then(|v| v.trim().parse().ok())
}

async fn answer(
    state: &EchoState,
    mut req: Request<Incoming>,
    is_tls: bool,
) -> Response<Full<Bytes>> {
    if is_websocket_upgrade(&req) {
        return websocket_upgrade(state, &mut req);
    }
    let (parts, body) = req.into_parts();
    // Drain the body so keep-alive connections stay usable; its content is not echoed.
    let _ = body.collect().await;
    if parts.uri.path() == ECHO_COUNT_PATH {
        let key = parts
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")))
            .unwrap_or_default();
        return plain(200, state.seen(key).to_string());
    }
    if let Some(ms) = header_number(&parts, ECHO_DELAY_MS_HEADER) {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
    }
    let mut status = header_number(&parts, ECHO_STATUS_HEADER)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (200..=599).contains(s))
        .unwrap_or(200);
    let attempt = header(&parts, ECHO_KEY_HEADER).map(|key| state.count(key));
    if let (Some(attempt), Some(fail_times)) =
        (attempt, header_number(&parts, ECHO_FAIL_TIMES_HEADER))
    {
        if attempt <= fail_times {
            status = 503;
        }
    }
    let json = echo_json(&state.name, &parts, is_tls);
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(ECHO_BACKEND_HEADER, &*state.name);
    if let Some(attempt) = attempt {
        builder = builder.header(ECHO_ATTEMPT_HEADER, attempt);
    }
    builder
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn plain(status: u16, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: hyper::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(hyper::header::UPGRADE, "websocket")
}

/// Answers `101 Switching Protocols` and echoes messages on the upgraded connection.
fn websocket_upgrade(state: &EchoState, req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(hyper::header::SEC_WEBSOCKET_KEY) else {
        return plain(400, "websocket upgrade without Sec-WebSocket-Key\n".into());
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    let name = state.name.clone();
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::protocol::Role;
        use tokio_tungstenite::tungstenite::Message;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "echo websocket upgrade failed");
                return;
            }
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            let reply = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                // Pings are answered by tungstenite itself.
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
        tracing::debug!(backend = %name, "echo websocket closed");
    });
    Response::builder()
        .status(101)
        .header(hyper::header::CONNECTION, "upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(ECHO_BACKEND_HEADER, &*state.name)
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The JSON document the echo server returns for a request.
pub fn echo_json(
    name: &str,
    parts: &hyper::http::request::Parts,
    is_tls: bool,
) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (n, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        // Repeated headers are joined as HTTP allows for list-valued fields.
        let entry = headers
            .entry(n.as_str().to_string())
            .or_insert_with(|| serde_json::Value::String(String::new()));
        if let serde_json::Value::String(s) = entry {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(&v);
        }
    }
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    serde_json::json!({
        "backend": name,
        "version": http_version(parts.version),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "host": host,
        "headers": headers,
        "tls": is_tls,
    })
}

/// The protocol version as written on the wire (`HTTP/1.1`, `HTTP/2`).
fn http_version(version: hyper::Version) -> &'static str {
    match version {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_11 => "HTTP/1.1",
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{send, RequestSpec, Scheme, Trust};
    use crate::pki::TestCa;

    #[tokio::test]
    async fn answers_with_json_describing_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve("svc-a".into(), listener, None));

        let req = RequestSpec::get(addr, "foo.example.com:18080", "/some/path?x=1&y=2")
            .header("X-Custom", "v1");
        let resp = send(&req).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.header("X-Echo-Backend"), Some("svc-a"));
        assert_eq!(resp.backend().as_deref(), Some("svc-a"));
        let j = resp.json();
        assert_eq!(j["method"], "GET");
        assert_eq!(j["path"], "/some/path");
        assert_eq!(j["query"], "x=1&y=2");
        assert_eq!(j["host"], "foo.example.com:18080");
        assert_eq!(j["headers"]["x-custom"], "v1");
        assert_eq!(j["tls"], false);
        assert_eq!(j["version"], "HTTP/1.1");
        assert!(resp.peer_certificate.is_none());

        let mut post = RequestSpec::get(addr, "h", "/p");
        post.method = "POST".into();
        post.body = b"data".to_vec();
        let resp = send(&post).await.unwrap();
        assert_eq!(resp.json()["method"], "POST");
        assert_eq!(resp.json()["query"], serde_json::Value::Null);
        server.abort();
    }

    #[tokio::test]
    async fn reports_http2_for_a_prior_knowledge_h2c_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve("h2c".into(), listener, None));

        // HTTP/2 in cleartext with prior knowledge, as Envoy speaks it to an h2c upstream.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(format!("http://{addr}/h2"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["version"], "HTTP/2", "{j}");
        server.abort();
    }

    #[tokio::test]
    async fn tls_echo_records_the_peer_certificate() {
        let ca = TestCa::new("test-ca").unwrap();
        let (cert, key) = ca.issue_server(&["secure.example.com"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve("tls-b".into(), listener, Some((cert_path, key_path))));

        let mut req = RequestSpec::get(addr, "secure.example.com:8443", "/x").https();
        req.trust = Trust::CaPem(ca.cert_pem().into_bytes());
        assert_eq!(req.scheme, Scheme::Https);
        let resp = send(&req).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["tls"], true);
        let names = resp.peer_certificate_names().unwrap().unwrap();
        assert_eq!(names.dns_names, vec!["secure.example.com".to_string()]);
        assert_eq!(names.common_name.as_deref(), Some("secure.example.com"));

        // The wrong SNI fails verification against the CA...
        let mut wrong = req.clone();
        wrong.sni = Some("other.example.com".into());
        let err = send(&wrong).await.unwrap_err().to_string();
        assert!(err.contains("TLS"), "{err}");
        // ...but Trust::Any accepts it and still records the certificate.
        wrong.trust = Trust::Any;
        let resp = send(&wrong).await.unwrap();
        let der = resp.peer_certificate.unwrap();
        assert_eq!(
            crate::certinfo::cert_names(&der).unwrap().dns_names,
            vec!["secure.example.com".to_string()]
        );
        server.abort();
    }

    #[tokio::test]
    async fn headers_steer_status_failures_counts_and_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve("steer".into(), listener, None));

        let r = send(&RequestSpec::get(addr, "h", "/").header(ECHO_STATUS_HEADER, "418"))
            .await
            .unwrap();
        assert_eq!(r.status, 418);
        assert_eq!(r.backend().as_deref(), Some("steer"));

        let flaky = || {
            RequestSpec::get(addr, "h", "/flaky")
                .header(ECHO_KEY_HEADER, "k1")
                .header(ECHO_FAIL_TIMES_HEADER, "2")
        };
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(send(&flaky()).await.unwrap().status);
        }
        assert_eq!(statuses, vec![503, 503, 200]);
        let count = |key: &str| {
            let req = RequestSpec::get(addr, "h", &format!("{ECHO_COUNT_PATH}?key={key}"));
            async move { send(&req).await.unwrap().text() }
        };
        assert_eq!(count("k1").await, "3");
        assert_eq!(count("nobody").await, "0");

        let started = std::time::Instant::now();
        let r = send(&RequestSpec::get(addr, "h", "/").header(ECHO_DELAY_MS_HEADER, "300"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        server.abort();
    }

    #[tokio::test]
    async fn websocket_upgrade_echoes_text_messages() {
        use crate::echo::{websocket_echo, WebSocketOutcome};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve("ws".into(), listener, None));
        let outcome = websocket_echo(
            addr,
            "ws.example.com",
            "/chat",
            "hello",
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            WebSocketOutcome::Upgraded {
                reply: "hello".into(),
                backend: Some("ws".into())
            }
        );
        server.abort();
    }
}
