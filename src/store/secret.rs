//! A Secret as the snapshot holds it: the Kubernetes object, and room for the verdict on its TLS
//! certificate and key. Checking that a key belongs to its certificate derives the public key from
//! the private one (a P-256 scalar multiplication; about 17 µs per Secret on the project's machine);
//! done per TLS reference per build, it was a quarter of the rebuild bench's mixed full DAG build at
//! 10,000 units (2,500 TLS Ingresses, BENCHMARKS.md). The verdict is worked out at most once per
//! version of the Secret, by whichever build asks first: a changed Secret arrives as a new value
//! with an empty slot, so a verdict never outlives the bytes it was worked out from, and every
//! snapshot sharing this value shares its verdict.

use std::ops::Deref;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Secret;
use serde::{Serialize, Serializer};

/// See the module's text. Reads as the Secret it holds (`Deref`); compares and serialises as it.
#[derive(Debug, Clone, Default)]
pub struct StoredSecret {
    secret: Secret,
    tls_verdict: OnceLock<Result<(), String>>,
}

impl StoredSecret {
    /// The verdict on this Secret's certificate and key: `check`'s, worked out on the first call only.
    /// Every caller must pass the same check (there is one: `dag::secret`).
    pub fn tls_verdict(
        &self,
        check: impl FnOnce(&Secret) -> Result<(), String>,
    ) -> &Result<(), String> {
        self.tls_verdict.get_or_init(|| check(&self.secret))
    }
}

impl From<Secret> for StoredSecret {
    fn from(secret: Secret) -> Self {
        StoredSecret {
            secret,
            tls_verdict: OnceLock::new(),
        }
    }
}

impl Deref for StoredSecret {
    type Target = Secret;

    fn deref(&self) -> &Secret {
        &self.secret
    }
}

/// Equal when the Secrets are: the verdict follows from them.
impl PartialEq for StoredSecret {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl Serialize for StoredSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.secret.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn the_check_runs_once_per_value_and_a_copy_of_the_snapshot_shares_its_verdict() {
        let stored = std::sync::Arc::new(StoredSecret::from(Secret::default()));
        let runs = Cell::new(0);
        let check = |_: &Secret| {
            runs.set(runs.get() + 1);
            Err("has no tls.crt".to_string())
        };
        assert_eq!(
            stored.tls_verdict(check),
            &Err("has no tls.crt".to_string())
        );
        let shared = std::sync::Arc::clone(&stored);
        assert_eq!(
            shared.tls_verdict(check),
            &Err("has no tls.crt".to_string())
        );
        assert_eq!(runs.get(), 1);
        // A new value (what an edited Secret arrives as) is checked afresh.
        let edited = StoredSecret::from(Secret::default());
        assert_eq!(edited.tls_verdict(|_| Ok(())), &Ok(()));
        assert_eq!(
            edited, *stored,
            "equal Secrets compare equal, whatever their verdicts"
        );
    }
}
