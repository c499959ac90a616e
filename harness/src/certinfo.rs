//! Names in a certificate, for asserting which certificate a server presented.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The subject common name and DNS subject-alternative names of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    /// Subject CN, if present.
    pub common_name: Option<String>,
    /// DNS SANs, in order.
    pub dns_names: Vec<String>,
}

/// Extracts [`CertNames`] from a DER certificate.
pub fn cert_names(der: &[u8]) -> Result<CertNames> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Certificate(format!("parsing DER certificate: {e}")))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(d) = name {
                dns_names.push(d.to_string());
            }
        }
    }
    Ok(CertNames {
        common_name,
        dns_names,
    })
}
