//! An HTTP/1.1 client for requests through Envoy, with full control over Host and SNI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{error_chain, Error, Result};
use crate::tls;

/// Plain HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain text.
    Http,
    /// TLS.
    Https,
}

/// How the client judges the server's certificate (HTTPS only).
#[derive(Debug, Clone)]
pub enum Trust {
    /// Accept any certificate (test-only), still recording it in [`Response::peer_certificate`].
    Any,
    /// Verify the chain against these PEM CA certificates and the name against the SNI.
    CaPem(Vec<u8>),
}

/// One request: where to connect, what to send, how long to wait.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Method, e.g. `GET`.
    pub method: String,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The socket to connect to (Envoy's listener).
    pub connect: SocketAddr,
    /// The Host header, sent verbatim (e.g. `foo.example.com:18080`).
    pub host: String,
    /// SNI for HTTPS; defaults to `host` without its port.
    pub sni: Option<String>,
    /// Path and query, e.g. `/foo?x=1`.
    pub path: String,
    /// Extra headers, sent in order.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Certificate trust (HTTPS only).
    pub trust: Trust,
    /// Bound on the whole exchange (connect, handshake, request, body).
    pub timeout: Duration,
    /// HTTPS only: offer only this TLS version (`None`: TLS 1.2 and 1.3).
    pub tls_version: Option<tls::TlsVersion>,
}

impl RequestSpec {
    /// A `GET` of `path` with `Host: host` to `connect`, plain HTTP, trust any, 10 s timeout.
    pub fn get(connect: SocketAddr, host: &str, path: &str) -> RequestSpec {
        RequestSpec {
            method: "GET".into(),
            scheme: Scheme::Http,
            connect,
            host: host.into(),
            sni: None,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            trust: Trust::Any,
            timeout: Duration::from_secs(10),
            tls_version: None,
        }
    }

    /// Switches to HTTPS.
    pub fn https(mut self) -> RequestSpec {
        self.scheme = Scheme::Https;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> RequestSpec {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The SNI that will be sent: explicit, or the Host without its port.
    pub fn effective_sni(&self) -> String {
        self.sni
            .clone()
            .unwrap_or_else(|| host_without_port(&self.host).to_string())
    }
}

/// Strips a `:port` suffix (leaving IPv6 literals in brackets intact).
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers with lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// DER of the leaf certificate the server presented (HTTPS only).
    pub peer_certificate: Option<Vec<u8>>,
}

impl Response {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `backend` field of an echo server's answer, if the body is one.
    pub fn backend(&self) -> Option<String> {
        self.json()
            .get("backend")
            .and_then(|b| b.as_str())
            .map(str::to_string)
    }

    /// Subject CN and DNS SANs of the peer certificate, if any.
    pub fn peer_certificate_names(&self) -> Result<Option<crate::certinfo::CertNames>> {
        self.peer_certificate
            .as_deref()
            .map(crate::certinfo::cert_names)
            .transpose()
    }
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send(req: &RequestSpec) -> Result<Response> {
    match tokio::time::timeout(req.timeout, send_inner(req)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Http(format!(
            "{} {}{} via {} timed out after {:?}",
            req.method, req.host, req.path, req.connect, req.timeout
        ))),
    }
}

async fn send_inner(req: &RequestSpec) -> Result<Response> {
    let tcp = TcpStream::connect(req.connect)
        .await
        .map_err(|e| Error::io(format!("connecting to {}", req.connect), e))?;
    // Requests are small: don't let Nagle delay them.
    let _ = tcp.set_nodelay(true);
    match req.scheme {
        Scheme::Http => exchange(req, tcp, None).await,
        Scheme::Https => {
            let ca = match &req.trust {
                Trust::Any => None,
                Trust::CaPem(pem) => Some(pem.as_slice()),
            };
            let config =
                tls::client_config_with_version(ca, None, &[b"http/1.1"], req.tls_version)?;
            let sni = req.effective_sni();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let stream = connector
                .connect(tls::server_name(&sni)?, tcp)
                .await
                .map_err(|e| {
                    Error::Tls(format!(
                        "handshake with {} (SNI {sni}): {}",
                        req.connect,
                        error_chain(&e)
                    ))
                })?;
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            exchange(req, stream, peer).await
        }
    }
}

async fn exchange<S>(req: &RequestSpec, io: S, peer: Option<Vec<u8>>) -> Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http_err = |what: &str, e: &(dyn std::error::Error + 'static)| {
        Error::Http(format!(
            "{what} ({} {}{} via {}): {}",
            req.method,
            req.host,
            req.path,
            req.connect,
            error_chain(e)
        ))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| http_err("HTTP/1.1 handshake", &e))?;
    let conn_task = tokio::spawn(conn);

    let mut builder = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str())
        .header(hyper::header::HOST, req.host.as_str());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body.clone())))
        .map_err(|e| http_err("building request", &e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http_err("sending request", &e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| http_err("reading body", &e))?
        .to_bytes()
        .to_vec();
    conn_task.abort();
    Ok(Response {
        status,
        headers,
        body,
        peer_certificate: peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_stripped_for_sni() {
        assert_eq!(
            host_without_port("foo.example.com:18080"),
            "foo.example.com"
        );
        assert_eq!(host_without_port("foo.example.com"), "foo.example.com");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        let r = RequestSpec::get("127.0.0.1:1".parse().unwrap(), "a.b:99", "/");
        assert_eq!(r.effective_sni(), "a.b");
    }
}
