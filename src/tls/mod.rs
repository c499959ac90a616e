//! TLS for the xDS connection: the one place that chooses the crypto provider and protocol versions,
//! generates the split-model certificates and serves them with rotation.

pub mod certgen;
pub mod client_san;
pub mod kube_secrets;
pub mod pem;
pub mod rotation;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider isobar uses everywhere: ring, and nothing else.
///
/// Every rustls config is built with `builder_with_provider(provider())`, so isobar never depends on a
/// process-wide default (which panics when two providers end up in the dependency graph).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS versions the xDS server accepts. TLS 1.2 stays for Envoys built against older BoringSSL defaults.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Installs ring as the process-wide default provider, for libraries (kube, tonic clients) that ask for it.
/// Called once from `main`; harmless when already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
