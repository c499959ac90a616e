//! What `certgen --kube` does with the certificates it finds: keep what is valid, re-issue leaves that
//! expire soon from the kept CA, and roll the CA over through a bundle (new and old CA trusted side by
//! side) before it expires. A pure function of what is stored and the time, so every case is tested
//! without a cluster.

use ::time::{Duration, OffsetDateTime};
use x509_parser::prelude::*;

use super::certgen::{self, Ca, CertgenOptions, Leaf};
use crate::Result;

/// What is stored now (any part may be missing or broken).
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The CA bundle (current CA first) and the current CA's key.
    pub ca_bundle: Option<String>,
    pub ca_key: Option<String>,
    pub isobar: Option<(String, String)>,
    pub envoy: Option<(String, String)>,
}

/// What should be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub ca_bundle: String,
    pub ca_key: String,
    pub isobar: (String, String),
    pub envoy: (String, String),
}

/// What changed, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub new_ca: bool,
    pub isobar_reissued: bool,
    pub envoy_reissued: bool,
    pub dropped_expired_cas: usize,
}

impl Changes {
    pub fn any(&self) -> bool {
        *self != Changes::default()
    }
}

/// Decides and issues. `renew_before`: a certificate expiring sooner than this is replaced.
pub fn reconcile(
    stored: &Stored,
    options: &CertgenOptions,
    now: OffsetDateTime,
    renew_before: Duration,
    overwrite: bool,
) -> Result<(Desired, Changes)> {
    let mut changes = Changes::default();
    let horizon = now + renew_before;
    let bundle: Vec<String> = stored
        .ca_bundle
        .as_deref()
        .map(split_pem)
        .unwrap_or_default();
    let current = match (bundle.first(), stored.ca_key.as_ref()) {
        (Some(cert), Some(key)) if !overwrite && usable_ca(cert, horizon) => Some(Ca {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let (ca, mut others) = match current {
        Some(ca) => (ca, bundle.iter().skip(1).cloned().collect::<Vec<_>>()),
        None => {
            changes.new_ca = true;
            let ca = certgen::generate_ca(options, now)?;
            // Rollover: keep trusting the previous CA while it is valid, so certificates it issued keep
            // working until they are replaced. `--overwrite` starts afresh.
            let others = if overwrite {
                Vec::new()
            } else {
                bundle.clone()
            };
            (ca, others)
        }
    };
    let before = others.len();
    others.retain(|c| not_after(c).is_some_and(|t| t > now));
    changes.dropped_expired_cas = before - others.len();
    let ca_bundle = std::iter::once(ca.cert.clone())
        .chain(others)
        .collect::<Vec<_>>()
        .join("");

    let leaf = |stored: &Option<(String, String)>,
                which: Leaf,
                reissued: &mut bool|
     -> Result<(String, String)> {
        match stored {
            Some((cert, key)) if !changes.new_ca && valid_leaf(cert, &ca.cert, horizon) => {
                Ok((cert.clone(), key.clone()))
            }
            _ => {
                *reissued = true;
                certgen::issue_leaf(&ca, which, options, now)
            }
        }
    };
    let mut isobar_reissued = false;
    let mut envoy_reissued = false;
    let isobar = leaf(&stored.isobar, Leaf::Isobar, &mut isobar_reissued)?;
    let envoy = leaf(&stored.envoy, Leaf::Envoy, &mut envoy_reissued)?;
    changes.isobar_reissued = isobar_reissued;
    changes.envoy_reissued = envoy_reissued;
    Ok((
        Desired {
            ca_bundle,
            ca_key: ca.key,
            isobar,
            envoy,
        },
        changes,
    ))
}

/// The PEM certificates of a bundle, each as its own PEM text.
fn split_pem(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn parse_pem(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .map(|(_, p)| p.contents)
}

fn not_after(pem: &str) -> Option<OffsetDateTime> {
    let der = parse_pem(pem)?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(cert.validity().not_after.to_datetime())
}

fn usable_ca(pem: &str, horizon: OffsetDateTime) -> bool {
    let Some(der) = parse_pem(pem) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return false;
    };
    cert.is_ca() && cert.validity().not_after.to_datetime() > horizon
}

/// A leaf that parses, is issued by `ca_pem` (name and key identifier) and lasts beyond `horizon`.
fn valid_leaf(pem: &str, ca_pem: &str, horizon: OffsetDateTime) -> bool {
    let (Some(leaf_der), Some(ca_der)) = (parse_pem(pem), parse_pem(ca_pem)) else {
        return false;
    };
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(&leaf_der),
        X509Certificate::from_der(&ca_der),
    ) else {
        return false;
    };
    let key_id = |c: &X509Certificate<'_>, authority: bool| {
        c.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) if authority => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                ParsedExtension::SubjectKeyIdentifier(k) if !authority => Some(k.0.to_vec()),
                _ => None,
            })
    };
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && key_id(&leaf, true) == key_id(&ca, false)
        && leaf.validity().not_after.to_datetime() > horizon
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(days: u32, ca_days: u32) -> CertgenOptions {
        CertgenOptions {
            lifetime_days: days,
            ca_lifetime_days: ca_days,
            ..CertgenOptions::default()
        }
    }

    fn stored(d: &Desired) -> Stored {
        Stored {
            ca_bundle: Some(d.ca_bundle.clone()),
            ca_key: Some(d.ca_key.clone()),
            isobar: Some(d.isobar.clone()),
            envoy: Some(d.envoy.clone()),
        }
    }

    const RENEW: Duration = Duration::days(30);

    #[test]
    fn nothing_stored_issues_everything_and_a_second_run_keeps_it() {
        let now = OffsetDateTime::now_utc();
        let (first, changes) =
            reconcile(&Stored::default(), &options(365, 3650), now, RENEW, false).unwrap();
        assert!(changes.new_ca && changes.isobar_reissued && changes.envoy_reissued);
        let (second, changes) =
            reconcile(&stored(&first), &options(365, 3650), now, RENEW, false).unwrap();
        assert!(!changes.any(), "{changes:?}");
        assert_eq!(first, second);
    }

    #[test]
    fn leaves_expiring_soon_are_reissued_from_the_kept_ca() {
        let now = OffsetDateTime::now_utc();
        let (first, _) =
            reconcile(&Stored::default(), &options(10, 3650), now, RENEW, false).unwrap();
        let (second, changes) =
            reconcile(&stored(&first), &options(365, 3650), now, RENEW, false).unwrap();
        assert!(!changes.new_ca && changes.isobar_reissued && changes.envoy_reissued);
        assert_eq!(second.ca_bundle, first.ca_bundle);
        assert!(valid_leaf(&second.isobar.0, &second.ca_bundle, now + RENEW));
    }

    #[test]
    fn a_ca_expiring_soon_rolls_over_through_a_bundle() {
        let now = OffsetDateTime::now_utc();
        let (first, _) =
            reconcile(&Stored::default(), &options(10, 20), now, RENEW, false).unwrap();
        let (second, changes) =
            reconcile(&stored(&first), &options(365, 3650), now, RENEW, false).unwrap();
        assert!(changes.new_ca && changes.isobar_reissued && changes.envoy_reissued);
        let bundle = split_pem(&second.ca_bundle);
        assert_eq!(bundle.len(), 2, "new CA first, the old one still trusted");
        assert_eq!(bundle[1], split_pem(&first.ca_bundle)[0]);
        // Once the old CA has expired, it leaves the bundle.
        let later = now + Duration::days(25);
        let (third, changes) =
            reconcile(&stored(&second), &options(365, 3650), later, RENEW, false).unwrap();
        assert_eq!(changes.dropped_expired_cas, 1);
        assert_eq!(split_pem(&third.ca_bundle), vec![bundle[0].clone()]);
    }

    #[test]
    fn overwrite_starts_afresh() {
        let now = OffsetDateTime::now_utc();
        let (first, _) =
            reconcile(&Stored::default(), &options(365, 3650), now, RENEW, false).unwrap();
        let (second, changes) =
            reconcile(&stored(&first), &options(365, 3650), now, RENEW, true).unwrap();
        assert!(changes.new_ca);
        assert_eq!(split_pem(&second.ca_bundle).len(), 1);
        assert_ne!(second.ca_bundle, first.ca_bundle);
    }

    #[test]
    fn a_leaf_from_another_ca_is_replaced() {
        let now = OffsetDateTime::now_utc();
        let (first, _) =
            reconcile(&Stored::default(), &options(365, 3650), now, RENEW, false).unwrap();
        let (other, _) =
            reconcile(&Stored::default(), &options(365, 3650), now, RENEW, false).unwrap();
        let mut mixed = stored(&first);
        mixed.envoy = Some(other.envoy.clone());
        let (_, changes) = reconcile(&mixed, &options(365, 3650), now, RENEW, false).unwrap();
        assert!(!changes.new_ca && !changes.isobar_reissued && changes.envoy_reissued);
    }
}
