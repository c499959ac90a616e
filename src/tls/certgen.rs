//! Self-generated certificates for the secure split deployment: a CA, the `isobar` serving certificate and
//! the `envoy` client certificate. The CA key is kept so certificates can be re-issued later.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result};

/// The namespace the certificates name when none is given.
pub const DEFAULT_NAMESPACE: &str = "isobar-system";

/// The six files `certgen` writes, in this order.
pub const FILE_NAMES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "isobar.crt",
    "isobar.key",
    "envoy.crt",
    "envoy.key",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct CertgenOptions {
    /// Namespace used in the SANs (`isobar.<ns>.svc`, ...).
    pub namespace: String,
    /// Lifetime of the leaf certificates.
    pub lifetime_days: u32,
    /// Lifetime of the CA; longer than the leaves so they can be re-issued from it.
    pub ca_lifetime_days: u32,
}

impl Default for CertgenOptions {
    fn default() -> Self {
        CertgenOptions {
            namespace: DEFAULT_NAMESPACE.to_string(),
            lifetime_days: 365,
            ca_lifetime_days: 3650,
        }
    }
}

/// A generated set of PEM documents.
#[derive(Clone)]
pub struct GeneratedCerts {
    pub ca_cert: String,
    pub ca_key: String,
    pub isobar_cert: String,
    pub isobar_key: String,
    pub envoy_cert: String,
    pub envoy_key: String,
}

impl std::fmt::Debug for GeneratedCerts {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCerts").finish_non_exhaustive()
    }
}

/// The DNS names a split-model certificate for `name` carries in namespace `namespace`.
pub fn service_dns_names(name: &str, namespace: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ]
}

/// A CA: its certificate and the key that signs with it (kept so leaves can be re-issued).
#[derive(Clone)]
pub struct Ca {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// Generates a CA and the two leaf certificates it signs, valid from `now`.
pub fn generate(options: &CertgenOptions, now: OffsetDateTime) -> Result<GeneratedCerts> {
    let ca = generate_ca(options, now)?;
    let (isobar_cert, isobar_key) = issue_leaf(&ca, Leaf::Isobar, options, now)?;
    let (envoy_cert, envoy_key) = issue_leaf(&ca, Leaf::Envoy, options, now)?;
    Ok(GeneratedCerts {
        ca_cert: ca.cert,
        ca_key: ca.key,
        isobar_cert,
        isobar_key,
        envoy_cert,
        envoy_key,
    })
}

/// A new self-signed CA.
pub fn generate_ca(options: &CertgenOptions, now: OffsetDateTime) -> Result<Ca> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("isobar-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - Duration::minutes(5);
    ca_params.not_after = now + Duration::days(i64::from(options.ca_lifetime_days));
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    Ok(Ca {
        cert: ca.pem(),
        key: ca.key().serialize_pem(),
    })
}

/// The two leaf certificates of the split model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// isobar's serving certificate.
    Isobar,
    /// Envoy's client certificate.
    Envoy,
}

/// Issues a leaf from `ca` (a kept CA works as well as a new one); returns (certificate, key) PEM.
pub fn issue_leaf(
    ca: &Ca,
    leaf: Leaf,
    options: &CertgenOptions,
    now: OffsetDateTime,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let (common_name, usage) = match leaf {
        Leaf::Isobar => ("isobar", ExtendedKeyUsagePurpose::ServerAuth),
        Leaf::Envoy => ("envoy", ExtendedKeyUsagePurpose::ClientAuth),
    };
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(service_dns_names(common_name, &options.namespace))?;
    params.distinguished_name = name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(options.lifetime_days));
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes the six files into `dir` (created if missing). Without `overwrite`, refuses before writing
/// anything when any of them exists. Keys are created with mode 0600.
pub fn write_to_dir(certs: &GeneratedCerts, dir: &Path, overwrite: bool) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let paths: Vec<PathBuf> = FILE_NAMES.iter().map(|f| dir.join(f)).collect();
    if !overwrite {
        let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
        if !existing.is_empty() {
            return Err(Error::WouldOverwrite(existing));
        }
    }
    let contents = [
        &certs.ca_cert,
        &certs.ca_key,
        &certs.isobar_cert,
        &certs.isobar_key,
        &certs.envoy_cert,
        &certs.envoy_key,
    ];
    for (path, content) in paths.iter().zip(contents) {
        let mode = if path.extension().is_some_and(|e| e == "key") {
            0o600
        } else {
            0o644
        };
        write_atomically(path, content.as_bytes(), mode)?;
    }
    Ok(paths)
}

/// Writes through a temporary file and a rename, so a reader (isobar's own reloader, Envoy's SDS) never
/// sees half a file. The mode is set at creation: a key is never readable by others, not even briefly.
pub fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.write_all(content).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn server_and_client_certificates_carry_the_split_model_names() {
        let options = CertgenOptions {
            namespace: "edge".into(),
            ..Default::default()
        };
        let certs = generate(&options, OffsetDateTime::now_utc()).unwrap();
        for (pem, cn, eku_server) in [
            (&certs.isobar_cert, "isobar", true),
            (&certs.envoy_cert, "envoy", false),
        ] {
            let der = parse(pem);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let subject_cn = cert.subject().iter_common_name().next().unwrap();
            assert_eq!(subject_cn.as_str().unwrap(), cn);
            let sans: Vec<String> = cert
                .subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(
                sans,
                service_dns_names(cn, "edge")
                    .iter()
                    .map(|n| format!("DNSName({n})"))
                    .collect::<Vec<_>>()
            );
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert_eq!(eku.server_auth, eku_server);
            assert_eq!(eku.client_auth, !eku_server);
        }
        let der = parse(&certs.ca_cert);
        let (_, ca) = X509Certificate::from_der(&der).unwrap();
        assert!(ca.is_ca());
    }

    #[test]
    fn lifetime_is_honoured() {
        let now = OffsetDateTime::now_utc();
        let options = CertgenOptions {
            lifetime_days: 7,
            ..Default::default()
        };
        let certs = generate(&options, now).unwrap();
        let der = parse(&certs.isobar_cert);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let not_after = cert.validity().not_after.timestamp();
        assert!((not_after - (now + Duration::days(7)).unix_timestamp()).abs() <= 1);
    }

    #[test]
    fn refuses_to_overwrite_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(&CertgenOptions::default(), OffsetDateTime::now_utc()).unwrap();
        write_to_dir(&certs, dir.path(), false).unwrap();
        let before = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let other = generate(&CertgenOptions::default(), OffsetDateTime::now_utc()).unwrap();
        let err = write_to_dir(&other, dir.path(), false).unwrap_err();
        assert!(
            matches!(err, Error::WouldOverwrite(ref p) if p.len() == 6),
            "{err}"
        );
        assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), before);
        write_to_dir(&other, dir.path(), true).unwrap();
        assert_ne!(std::fs::read(dir.path().join("ca.crt")).unwrap(), before);
    }

    #[test]
    fn keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(&CertgenOptions::default(), OffsetDateTime::now_utc()).unwrap();
        write_to_dir(&certs, dir.path(), false).unwrap();
        for name in FILE_NAMES {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            let expected = if name.ends_with(".key") { 0o600 } else { 0o644 };
            assert_eq!(mode, expected, "{name}");
        }
    }
}
