//! A throw-away certificate authority for tests (rcgen, ring).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// A self-signed CA that issues server and client certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// `(certificate PEM, private key PEM)`.
pub type CertAndKeyPem = (String, String);

fn cert_err(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

impl TestCa {
    /// Creates a CA with common name `cn`.
    pub fn new(cn: &str) -> Result<TestCa> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(cert_err)?;
        let key_pem = key.serialize_pem();
        let cert_pem = params.self_signed(&key).map_err(cert_err)?.pem();
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// An existing CA (say, the one `isobar certgen` wrote), so tests can issue certificates a
    /// server trusts but should still refuse for another reason.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TestCa> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_err)?;
        Ok(TestCa {
            issuer,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Issues a server certificate (EKU serverAuth) for `dns_names` (IP literals become IP SANs).
    pub fn issue_server(&self, dns_names: &[&str]) -> Result<CertAndKeyPem> {
        let names: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(cert_err)?;
        params.distinguished_name = dn(dns_names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.issue(params)
    }

    /// Issues a client certificate (EKU clientAuth) with common name `cn` (also a DNS SAN,
    /// as Contour-style peers match on SAN).
    pub fn issue_client(&self, cn: &str) -> Result<CertAndKeyPem> {
        self.issue_client_with(&ClientCertSpec::new(cn))
    }

    /// Issues a client certificate shaped by `spec` (validity, SANs, extended key usages).
    pub fn issue_client_with(&self, spec: &ClientCertSpec) -> Result<CertAndKeyPem> {
        let mut params = CertificateParams::new(spec.dns_names.clone()).map_err(cert_err)?;
        params.distinguished_name = dn(&spec.cn);
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.extended_key_usages = spec.extended_key_usages.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// Issues a client certificate (EKU clientAuth) with common name `cn` and organization
    /// `group`: Kubernetes maps them to the user name and a group (e.g. `system:masters`).
    pub fn issue_client_in_group(&self, cn: &str, group: &str) -> Result<CertAndKeyPem> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name = dn(cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<CertAndKeyPem> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A client certificate to issue; [`ClientCertSpec::new`] is a valid one, and the fields make it
/// invalid in one chosen way.
#[derive(Debug, Clone)]
pub struct ClientCertSpec {
    /// Subject common name.
    pub cn: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Extended key usages (a client certificate needs clientAuth).
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
}

impl ClientCertSpec {
    /// CN and DNS SAN `cn`, EKU clientAuth, valid from an hour ago for a day.
    pub fn new(cn: &str) -> ClientCertSpec {
        let now = OffsetDateTime::now_utc();
        ClientCertSpec {
            cn: cn.to_string(),
            dns_names: vec![cn.to_string()],
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(1),
            extended_key_usages: vec![ExtendedKeyUsagePurpose::ClientAuth],
        }
    }

    /// Valid only in the past: expired a day ago.
    pub fn expired(mut self) -> ClientCertSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(30);
        self.not_after = now - Duration::days(1);
        self
    }

    /// Valid only in the future: from tomorrow.
    pub fn not_yet_valid(mut self) -> ClientCertSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = now + Duration::days(1);
        self.not_after = now + Duration::days(30);
        self
    }

    /// EKU serverAuth only: a server's certificate presented by a client.
    pub fn server_auth_only(mut self) -> ClientCertSpec {
        self.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self
    }

    /// These DNS SANs instead of the common name.
    pub fn with_dns_names(mut self, names: &[&str]) -> ClientCertSpec {
        self.dns_names = names.iter().map(|n| n.to_string()).collect();
        self
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}
