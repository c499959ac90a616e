//! rustls client configuration shared by the HTTP client and the xDS probe (ring provider only).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

/// The one crypto provider the harness uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TEST-ONLY verifier that accepts any server certificate chain and any name.
///
/// It still checks the handshake signatures, so the peer must hold the key of the
/// certificate it presents (which the caller can then inspect). Never use outside tests.
#[derive(Debug)]
pub struct AcceptAnyServerCertForTests {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyServerCertForTests {
    /// A verifier using the ring provider's signature algorithms.
    pub fn new() -> Self {
        AcceptAnyServerCertForTests {
            provider: provider(),
        }
    }
}

impl Default for AcceptAnyServerCertForTests {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for AcceptAnyServerCertForTests {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses all certificates in a PEM buffer.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("parsing PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate found in PEM".into()));
    }
    Ok(certs)
}

/// Parses the first private key in a PEM buffer.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::Tls(format!("parsing PEM private key: {e}")))
}

/// Builds a client config: server verified against `ca_pem` (or accepted blindly when
/// `None`), optional client certificate, and the given ALPN protocols.
pub fn client_config(
    ca_pem: Option<&[u8]>,
    client_identity: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
) -> Result<ClientConfig> {
    client_config_with_version(ca_pem, client_identity, alpn, None)
}

/// A TLS protocol version a client can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// Like [`client_config`], offering only `version` when given (otherwise TLS 1.2 and 1.3).
pub fn client_config_with_version(
    ca_pem: Option<&[u8]>,
    client_identity: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
    version: Option<TlsVersion>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider());
    let builder = match version {
        None => builder.with_safe_default_protocol_versions(),
        Some(TlsVersion::V1_2) => builder.with_protocol_versions(&[&rustls::version::TLS12]),
        Some(TlsVersion::V1_3) => builder.with_protocol_versions(&[&rustls::version::TLS13]),
    }
    .map_err(|e| Error::Tls(format!("protocol versions: {e}")))?;
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certs_from_pem(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("adding CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertForTests::new())),
    };
    let mut config = match client_identity {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)
            .map_err(|e| Error::Tls(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Parses a server name for SNI/verification (a DNS name or an IP address).
pub fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|e| Error::Tls(format!("invalid server name {name:?}: {e}")))
}
