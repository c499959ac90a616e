//! Which of the CA's client certificates may fetch configuration (`isobar serve --xds-client-san`).
//!
//! The CA alone decides who may connect; when the same CA also issues other clients' certificates,
//! an allowlist of subject alternative DNS names narrows it to Envoy's. certgen's Envoy certificate
//! carries `envoy`, `envoy.NS`, `envoy.NS.svc` and `envoy.NS.svc.cluster.local`.

use std::collections::BTreeSet;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// DNS names a client certificate must include one of; empty allows every certificate the CA issued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSanAllowlist {
    /// Lower-case: DNS names compare without regard to case.
    names: BTreeSet<String>,
}

/// Why a client was refused after its TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientSanRefusal {
    #[error("the client presented no certificate")]
    NoCertificate,
    #[error("the client certificate does not parse: {0}")]
    Unparsable(String),
    #[error("none of the client certificate's DNS names {presented:?} is in --xds-client-san {allowed:?}")]
    NotAllowed {
        presented: Vec<String>,
        allowed: Vec<String>,
    },
}

/// An `--xds-client-san` value that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--xds-client-san {0:?} is not a DNS name")]
pub struct InvalidClientSan(pub String);

impl ClientSanAllowlist {
    /// The allowlist of `names` (surrounding blanks ignored).
    pub fn new<I, S>(names: I) -> Result<Self, InvalidClientSan>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for name in names {
            let name = name.as_ref().trim();
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
            if !valid {
                return Err(InvalidClientSan(name.to_string()));
            }
            set.insert(name.to_ascii_lowercase());
        }
        Ok(ClientSanAllowlist { names: set })
    }

    /// Whether every certificate the CA issued is allowed.
    pub fn allows_any(&self) -> bool {
        self.names.is_empty()
    }

    /// Checks the client's leaf certificate. Names compare exactly (case aside): a wildcard SAN
    /// `*.example.com` matches only the allowlist entry `*.example.com`, never by expansion.
    pub fn check(&self, leaf: Option<&CertificateDer<'_>>) -> Result<(), ClientSanRefusal> {
        if self.allows_any() {
            return Ok(());
        }
        let leaf = leaf.ok_or(ClientSanRefusal::NoCertificate)?;
        let presented = dns_names(leaf)?;
        if presented
            .iter()
            .any(|n| self.names.contains(&n.to_ascii_lowercase()))
        {
            Ok(())
        } else {
            Err(ClientSanRefusal::NotAllowed {
                presented,
                allowed: self.names.iter().cloned().collect(),
            })
        }
    }
}

/// The DNS names among a certificate's subject alternative names.
fn dns_names(der: &CertificateDer<'_>) -> Result<Vec<String>, ClientSanRefusal> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| ClientSanRefusal::Unparsable(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| ClientSanRefusal::Unparsable(e.to_string()))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.der().clone()
    }

    #[test]
    fn an_empty_allowlist_allows_any_certificate() {
        let any = ClientSanAllowlist::new(Vec::<String>::new()).unwrap();
        assert_eq!(any.check(Some(&cert_with(&["whoever"]))), Ok(()));
        assert_eq!(any.check(None), Ok(()));
    }

    #[test]
    fn one_listed_dns_name_is_enough_and_case_does_not_matter() {
        let list = ClientSanAllowlist::new(["envoy.isobar-system.svc", " Other "]).unwrap();
        let envoy = cert_with(&["envoy", "envoy.isobar-system", "ENVOY.isobar-system.svc"]);
        assert_eq!(list.check(Some(&envoy)), Ok(()));
        assert_eq!(list.check(Some(&cert_with(&["other"]))), Ok(()));
    }

    #[test]
    fn a_certificate_without_a_listed_name_is_refused() {
        let list = ClientSanAllowlist::new(["envoy"]).unwrap();
        assert_eq!(
            list.check(Some(&cert_with(&["envoy.evil", "x.envoy"]))),
            Err(ClientSanRefusal::NotAllowed {
                presented: vec!["envoy.evil".into(), "x.envoy".into()],
                allowed: vec!["envoy".into()],
            })
        );
        assert_eq!(list.check(None), Err(ClientSanRefusal::NoCertificate));
    }

    #[test]
    fn a_wildcard_san_does_not_expand() {
        let list = ClientSanAllowlist::new(["envoy.example.com"]).unwrap();
        assert!(list.check(Some(&cert_with(&["*.example.com"]))).is_err());
    }

    #[test]
    fn values_that_are_not_dns_names_are_rejected() {
        assert_eq!(
            ClientSanAllowlist::new(["envoy", ""]),
            Err(InvalidClientSan(String::new()))
        );
        assert!(ClientSanAllowlist::new(["CN=envoy"]).is_err());
    }
}
