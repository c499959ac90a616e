//! The xDS server's TLS: client certificates required and verified against the CA; the whole server
//! configuration is rebuilt when the CA, certificate or key file changes, and every new connection picks
//! up the current one. This module is the one owner of that rotation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use super::pem::Expiry;
use super::{pem, provider, PROTOCOL_VERSIONS};
use crate::{Error, Result};

/// The files that make up the server's identity and its trust in clients.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Builds a server configuration that requires a client certificate issued by a CA in `ca_pem` (a bundle
/// may hold several CAs, which is how a CA rollover is done) and offers ALPN `h2`.
pub fn server_config(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for ca in pem::certs("CA bundle", ca_pem)? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pem::certs("server certificate", cert_pem)?,
            pem::private_key("server key", key_pem)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The current server configuration, replaced when the files change.
pub struct ReloadingServerConfig {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    fingerprint: std::sync::Mutex<[u8; 32]>,
    expiries: ArcSwap<CertificateExpiries>,
}

/// When the certificates in force expire, for `isobar_certificate_expiry_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateExpiries {
    pub serving: Vec<Expiry>,
    pub ca: Vec<Expiry>,
}

impl CertificateExpiries {
    fn read(ca_pem: &[u8], cert_pem: &[u8]) -> Result<Self> {
        Ok(CertificateExpiries {
            // The leaf only: a chain's intermediates are not isobar's to rotate.
            serving: pem::expiries("server certificate", cert_pem)?
                .into_iter()
                .take(1)
                .collect(),
            ca: pem::expiries("CA bundle", ca_pem)?,
        })
    }
}

impl std::fmt::Debug for ReloadingServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingServerConfig")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingServerConfig {
    /// Loads the files once; an error here means isobar cannot start securely.
    pub fn load(files: TlsFiles) -> Result<Self> {
        let (contents, fingerprint) = read_all(&files)?;
        let config = server_config(&contents[0], &contents[1], &contents[2])?;
        let expiries = CertificateExpiries::read(&contents[0], &contents[1])?;
        Ok(ReloadingServerConfig {
            files,
            current: ArcSwap::from_pointee(config),
            fingerprint: std::sync::Mutex::new(fingerprint),
            expiries: ArcSwap::from_pointee(expiries),
        })
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Re-reads the files; when their content changed and is valid, swaps the configuration in.
    /// Returns whether it changed. Invalid new content (say, a key written before its certificate)
    /// leaves the previous configuration in force and is reported as an error.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let (contents, fingerprint) = read_all(&self.files)?;
        let mut last = self
            .fingerprint
            .lock()
            .map_err(|_| Error::Config("TLS reloader lock poisoned".into()))?;
        if *last == fingerprint {
            return Ok(false);
        }
        let config = server_config(&contents[0], &contents[1], &contents[2])?;
        let expiries = CertificateExpiries::read(&contents[0], &contents[1])?;
        self.current.store(Arc::new(config));
        self.expiries.store(Arc::new(expiries));
        *last = fingerprint;
        Ok(true)
    }

    /// Expiry of the certificates in force.
    pub fn expiries(&self) -> Arc<CertificateExpiries> {
        self.expiries.load_full()
    }

    /// Polls the files every `interval` for as long as the returned task runs. Polling (rather than
    /// inotify) also follows Kubernetes' Secret volumes, which swap a `..data` symlink.
    pub fn spawn_watch(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            loop {
                ticker.tick().await;
                match self.reload_if_changed() {
                    Ok(true) => {
                        last_error = None;
                        tracing::info!(cert = %self.files.cert.display(), "xDS server certificate reloaded");
                    }
                    Ok(false) => last_error = None,
                    Err(e) => {
                        let message = e.to_string();
                        if last_error.as_deref() != Some(message.as_str()) {
                            tracing::warn!(error = %message, "xDS TLS files not reloaded; the previous ones stay in force");
                        }
                        last_error = Some(message);
                    }
                }
            }
        })
    }
}

fn read_all(files: &TlsFiles) -> Result<([Vec<u8>; 3], [u8; 32])> {
    let read = |p: &Path| pem::read(p);
    let contents = [read(&files.ca)?, read(&files.cert)?, read(&files.key)?];
    let mut hasher = Sha256::new();
    for c in &contents {
        hasher.update((c.len() as u64).to_le_bytes());
        hasher.update(c);
    }
    Ok((contents, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certgen::{generate, write_to_dir, CertgenOptions};

    #[test]
    fn reload_follows_file_changes_and_keeps_the_old_config_on_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc();
        write_to_dir(
            &generate(&CertgenOptions::default(), now).unwrap(),
            dir.path(),
            false,
        )
        .unwrap();
        let files = TlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join("isobar.crt"),
            key: dir.path().join("isobar.key"),
        };
        let reloading = ReloadingServerConfig::load(files.clone()).unwrap();
        assert!(!reloading.reload_if_changed().unwrap());
        let first = reloading.current();

        std::fs::write(&files.cert, b"not a certificate").unwrap();
        assert!(reloading.reload_if_changed().is_err());
        assert!(Arc::ptr_eq(&first, &reloading.current()));

        write_to_dir(
            &generate(&CertgenOptions::default(), now).unwrap(),
            dir.path(),
            true,
        )
        .unwrap();
        assert!(reloading.reload_if_changed().unwrap());
        assert!(!Arc::ptr_eq(&first, &reloading.current()));
    }
}
