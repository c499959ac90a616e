//! One HTTPS request to the API server on a fresh connection: rustls (ring) with the CA pinned,
//! a client certificate or a bearer token, HTTP/1.1 over hyper.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::kubeconfig::{KubeAuth, KubeEndpoint};
use crate::error::{error_chain, Error, Result};
use crate::tls;

/// A parsed server URL plus the TLS configuration to reach it.
#[derive(Clone)]
pub(crate) struct Transport {
    /// `host:port` to connect to (and the Host header).
    authority: String,
    /// Path prefix of the server URL (usually empty).
    base_path: String,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// A response: status and body.
pub(crate) struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Transport {
    pub(crate) fn new(endpoint: &KubeEndpoint, timeout: Duration) -> Result<Transport> {
        let rest = endpoint
            .server_url
            .strip_prefix("https://")
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "server URL {:?} is not https://",
                    endpoint.server_url
                ))
            })?;
        let (hostport, base_path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, authority) = split_host_port(hostport);
        let (identity, token) = match &endpoint.auth {
            KubeAuth::ClientCert { cert_pem, key_pem } => {
                (Some((cert_pem.as_bytes(), key_pem.as_bytes())), None)
            }
            KubeAuth::Token(t) => (None, Some(t.clone())),
        };
        let config =
            tls::client_config(Some(endpoint.ca_pem.as_bytes()), identity, &[b"http/1.1"])?;
        Ok(Transport {
            authority,
            base_path: base_path.to_string(),
            server_name: tls::server_name(host)?,
            tls: Arc::new(config),
            token,
            timeout,
        })
    }

    /// Sends one request and reads the whole response (any status).
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        self.bounded(
            method,
            path,
            self.send_inner(method, path, content_type, body),
        )
        .await
    }

    /// Runs `request` within the timeout, its errors naming the request.
    async fn bounded<T>(
        &self,
        method: &str,
        path: &str,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let what = || format!("{method} https://{}{path}", self.authority);
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Error::Http(format!("{}: {e}", what()))),
            Err(_) => Err(Error::Http(format!(
                "{} timed out after {:?}",
                what(),
                self.timeout
            ))),
        }
    }

    async fn send_inner(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        let (status, body, conn_task) = self.head(method, path, content_type, body).await?;
        let body = body
            .collect()
            .await
            .map_err(|e| Error::Http(format!("reading the body: {}", error_chain(&e))))?
            .to_bytes()
            .to_vec();
        conn_task.abort();
        Ok(RawResponse { status, body })
    }

    /// Sends a GET and returns once the response head is in (bounded by the timeout), with the
    /// body left to stream: for watches, whose body lasts as long as the watch.
    pub(crate) async fn stream(&self, path: &str) -> Result<StreamingResponse> {
        let (status, body, conn_task) = self
            .bounded("GET", path, self.head("GET", path, None, Vec::new()))
            .await?;
        Ok(StreamingResponse {
            status,
            body,
            conn_task,
        })
    }

    /// Connects, sends the request and reads the response head.
    async fn head(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Incoming, JoinHandle<hyper::Result<()>>)> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| Error::io(format!("connecting to {}", self.authority), e))?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Error::Tls(format!("handshake: {}", error_chain(&e))))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Http(error_chain(&e)))?;
        let conn_task = tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Http(format!("building the request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::Http(error_chain(&e)))?;
        Ok((resp.status().as_u16(), resp.into_body(), conn_task))
    }
}

/// A response whose body is read as it comes; the connection closes when this is dropped.
pub(crate) struct StreamingResponse {
    pub status: u16,
    pub body: Incoming,
    conn_task: JoinHandle<hyper::Result<()>>,
}

impl Drop for StreamingResponse {
    fn drop(&mut self) {
        self.conn_task.abort();
    }
}

/// Splits `host:port` (or `[v6]:port`, or a bare host meaning port 443) into the host for
/// TLS verification and the `host:port` authority to connect to.
fn split_host_port(hostport: &str) -> (&str, String) {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').unwrap_or("443");
        return (host, format!("[{host}]:{port}"));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h, format!("{h}:{p}")),
        None => (hostport, format!("{hostport}:443")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hosts_and_ports() {
        assert_eq!(
            split_host_port("127.0.0.1:6443"),
            ("127.0.0.1", "127.0.0.1:6443".into())
        );
        assert_eq!(
            split_host_port("example.com"),
            ("example.com", "example.com:443".into())
        );
        assert_eq!(split_host_port("[::1]:6443"), ("::1", "[::1]:6443".into()));
    }
}
