//! The certificates and keys of a local test cluster, generated with rcgen and written to files.

use std::path::{Path, PathBuf};

use rcgen::KeyPair;

use crate::error::{Error, Result};
use crate::pki::TestCa;

/// Subject alternative names of the apiserver's serving certificate: loopback, the in-cluster
/// names and the first address of `--service-cluster-ip-range=10.96.0.0/12`.
pub const APISERVER_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "10.96.0.1",
];

/// File paths (all in one directory) and PEM contents of a cluster's PKI.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    /// CA certificate PEM.
    pub ca_pem: String,
    /// Admin client certificate PEM (CN=admin, O=system:masters).
    pub admin_cert_pem: String,
    /// Admin client key PEM.
    pub admin_key_pem: String,
    /// `ca.crt`.
    pub ca_cert: PathBuf,
    /// `ca.key`.
    pub ca_key: PathBuf,
    /// `apiserver.crt`.
    pub apiserver_cert: PathBuf,
    /// `apiserver.key`.
    pub apiserver_key: PathBuf,
    /// `sa.key`: the service-account signing key (ECDSA P-256, PKCS#8).
    pub sa_key: PathBuf,
    /// `sa.pub`: its public key (SPKI PEM).
    pub sa_pub: PathBuf,
}

impl ClusterPki {
    /// Generates a CA, the apiserver serving certificate, the admin client certificate and
    /// the service-account key pair, and writes them (keys 0600) into `dir`.
    pub fn generate(dir: &Path) -> Result<ClusterPki> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let ca = TestCa::new("isobar-test-kube-ca")?;
        let (server_cert, server_key) = ca.issue_server(APISERVER_SANS)?;
        let (admin_cert, admin_key) = ca.issue_client_in_group("admin", "system:masters")?;
        // kube-apiserver 1.20 signs service-account tokens with ES256 given an EC key; ring
        // cannot generate RSA keys, and EC needs no openssl.
        let sa = KeyPair::generate().map_err(|e| Error::Certificate(e.to_string()))?;
        let pki = ClusterPki {
            ca_pem: ca.cert_pem(),
            admin_cert_pem: admin_cert,
            admin_key_pem: admin_key,
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        };
        write(&pki.ca_cert, &pki.ca_pem, false)?;
        write(&pki.ca_key, &ca.key_pem(), true)?;
        write(&pki.apiserver_cert, &server_cert, false)?;
        write(&pki.apiserver_key, &server_key, true)?;
        write(&dir.join("admin.crt"), &pki.admin_cert_pem, false)?;
        write(&dir.join("admin.key"), &pki.admin_key_pem, true)?;
        write(&pki.sa_key, &sa.serialize_pem(), true)?;
        write(&pki.sa_pub, &sa.public_key_pem(), false)?;
        Ok(pki)
    }
}

/// Writes `contents` to `path`, readable only by the owner if `secret`.
pub(crate) fn write(path: &Path, contents: &str, secret: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certinfo::cert_names;
    use crate::tls::certs_from_pem;

    #[test]
    fn writes_all_files_with_the_expected_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::generate(dir.path()).unwrap();
        for p in [
            &pki.ca_cert,
            &pki.ca_key,
            &pki.apiserver_key,
            &pki.sa_key,
            &pki.sa_pub,
        ] {
            assert!(p.is_file(), "{}", p.display());
        }
        let server = std::fs::read(&pki.apiserver_cert).unwrap();
        let der = certs_from_pem(&server).unwrap();
        let names = cert_names(&der[0]).unwrap();
        assert!(
            names
                .dns_names
                .iter()
                .any(|n| n == "kubernetes.default.svc"),
            "{names:?}"
        );
        assert!(std::fs::read_to_string(&pki.sa_pub)
            .unwrap()
            .contains("BEGIN PUBLIC KEY"));
    }
}
