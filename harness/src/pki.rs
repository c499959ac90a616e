//! A throw-away certificate authority for tests (rcgen, ring).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// A self-signed CA that issues server and client certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
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
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(cert_err)?;
        Ok(TestCa { issuer, key_pem })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
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
        let mut params = CertificateParams::new(vec![cn.to_string()]).map_err(cert_err)?;
        params.distinguished_name = dn(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
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

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}
