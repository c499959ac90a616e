//! The in-process echo server (HTTP/1.1 and HTTP/2, optionally TLS).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

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
    let name: Arc<str> = name.into();
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends are transient: keep serving.
                tracing::warn!(error = %e, "echo accept failed");
                continue;
            }
        };
        let name = name.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(name, tcp, false).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(name, stream, true).await,
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

async fn serve_connection<S>(name: Arc<str>, io: S, is_tls: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let name = name.clone();
        async move { Ok::<_, Infallible>(answer(&name, req, is_tls).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!(error = %e, "echo connection ended with an error");
    }
}

async fn answer(name: &str, req: Request<Incoming>, is_tls: bool) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // Drain the body so keep-alive connections stay usable; its content is not echoed.
    let _ = body.collect().await;
    let json = echo_json(name, &parts, is_tls);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header(ECHO_BACKEND_HEADER, name)
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
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
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "host": host,
        "headers": headers,
        "tls": is_tls,
    })
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
}
