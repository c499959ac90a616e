//! Checking that a Secret holds a usable certificate and key before Envoy is handed it: a bad Secret
//! is reported on the object that names it, instead of being NACKed by Envoy for everyone.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;

use super::TlsSecret;
use crate::store::{ObjectKey, Snapshot};

/// The Secret an object in `namespace` names as `name` (same namespace) or `other/name` (allowed only by
/// a TLSCertificateDelegation in `other` that lists `name` for `namespace` or `*`), checked.
pub fn delegated_tls_secret(
    snapshot: &Snapshot,
    namespace: &str,
    reference: &str,
) -> Result<TlsSecret, String> {
    let key = match reference.split_once('/') {
        None => ObjectKey::new(namespace, reference),
        Some((other, name)) if other == namespace => ObjectKey::new(namespace, name),
        Some((other, name)) => {
            let delegated = super::reads::delegations_in(snapshot, other)
                .iter()
                .flat_map(|d| d.spec.delegations.iter())
                .any(|d| {
                    d.secret_name == name
                        && d.target_namespaces
                            .iter()
                            .any(|t| t == namespace || t == "*")
                });
            if !delegated {
                return Err(format!(
                    "TLS secret \"{other}/{name}\" is not delegated to namespace {namespace:?} (no TLSCertificateDelegation in {other:?} allows it)"
                ));
            }
            ObjectKey::new(other, name)
        }
    };
    tls_secret(snapshot, &key)
}

/// The certificate and key of Secret `key`, or why they can't be served.
pub fn tls_secret(snapshot: &Snapshot, key: &ObjectKey) -> Result<TlsSecret, String> {
    let secret = super::reads::secret(snapshot, key)
        .ok_or_else(|| format!("TLS secret \"{key}\" not found"))?;
    let refused = |e: &str| format!("TLS secret \"{key}\": {e}");
    if let Err(e) = secret.tls_verdict(check) {
        return Err(refused(e));
    }
    let (cert, private_key) = certificate_and_key(secret).map_err(|e| refused(&e))?;
    Ok(TlsSecret {
        name: key.to_string(),
        cert_chain: cert,
        private_key,
    })
}

/// Whether `secret` holds a certificate and the key that belongs to it, in a form Envoy takes. Its
/// verdict is kept with the stored Secret ([`crate::store::StoredSecret`]): deriving the public key
/// is the costly part, and a Secret's bytes don't change under it.
fn check(secret: &Secret) -> Result<(), String> {
    let (cert, key) = certificate_and_key(secret)?;
    let certs = crate::tls::pem::certs("tls.crt", &cert).map_err(|e| e.to_string())?;
    let private_key = crate::tls::pem::private_key("tls.key", &key).map_err(|e| e.to_string())?;
    let signing_key = crate::tls::provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| format!("tls.key is not a supported key: {e}"))?;
    CertifiedKey::new(certs, Arc::clone(&signing_key))
        .keys_match()
        .map_err(|e| format!("tls.key does not belong to the certificate in tls.crt ({e})"))
}

/// The type's and the two fields' presence checked; their bytes.
fn certificate_and_key(secret: &Secret) -> Result<(Vec<u8>, Vec<u8>), String> {
    if let Some(t) = secret.type_.as_deref() {
        if t != "kubernetes.io/tls" {
            return Err(format!("type is {t:?}, not \"kubernetes.io/tls\""));
        }
    }
    let field = |name: &str| -> Result<Vec<u8>, String> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(name))
                    .map(|s| s.as_bytes().to_vec())
            })
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("has no {name}"))
    };
    let cert = field("tls.crt")?;
    let key = field("tls.key")?;
    Ok((cert, key))
}
