//! Reading PEM certificates and keys, with errors that name the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// All certificates in a PEM document; an empty document is an error.
pub fn certs(label: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: label.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: label.to_string(),
            reason: "no CERTIFICATE block found".to_string(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM document.
pub fn private_key(label: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::Pem {
        path: label.to_string(),
        reason: format!("no usable private key: {e}"),
    })
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// When a certificate stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Serial number, hex.
    pub serial: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// The expiry of every certificate in a PEM document (a bundle lists several).
pub fn expiries(label: &str, pem: &[u8]) -> Result<Vec<Expiry>> {
    certs(label, pem)?
        .iter()
        .map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Error::Pem {
                path: label.to_string(),
                reason: format!("not an X.509 certificate: {e}"),
            })?;
            Ok(Expiry {
                serial: cert.raw_serial_as_string().replace(':', ""),
                not_after: cert.validity().not_after.timestamp(),
            })
        })
        .collect()
}
