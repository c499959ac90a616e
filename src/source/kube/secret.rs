//! What isobar keeps of a Secret: only the keys it reads, so that a cluster's other Secrets (service
//! account tokens, application credentials, Helm release records of hundreds of KiB) cost their
//! metadata and nothing more, and their contents are not held in isobar's memory at all.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

/// The keys isobar reads: a TLS certificate and key (`dag::secret`, any Secret a route names, whose
/// type it then checks) and an upstream validation CA (`dag::ingressroute`).
pub const READ_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// `secret` with only [`READ_KEYS`] in `data` and `stringData`; neither field is left when it has
/// none of them. Metadata and type stay, so a route naming a Secret without a certificate is told
/// so as before ("has no tls.crt", "type is ...").
pub fn reduce(mut secret: Secret) -> Secret {
    secret.data = secret.data.take().and_then(only_read_keys);
    secret.string_data = secret.string_data.take().and_then(only_read_keys);
    secret
}

fn only_read_keys<V>(mut map: BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    map.retain(|key, _| READ_KEYS.contains(&key.as_str()));
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(type_: &str, keys: &[&str]) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(k.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn keys(secret: &Secret) -> Vec<&str> {
        secret
            .data
            .iter()
            .flat_map(|d| d.keys())
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn an_unrelated_secret_keeps_only_its_metadata() {
        let mut opaque = secret("Opaque", &["password", "blob"]);
        opaque.metadata.name = Some("db".into());
        opaque.string_data = Some([("user".to_string(), "admin".to_string())].into());
        let reduced = reduce(opaque);
        assert_eq!(reduced.data, None);
        assert_eq!(reduced.string_data, None);
        assert_eq!(reduced.metadata.name.as_deref(), Some("db"));
        assert_eq!(reduced.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn certificates_keys_and_cas_are_kept_whatever_the_type() {
        let tls = reduce(secret("kubernetes.io/tls", &["tls.crt", "tls.key"]));
        assert_eq!(keys(&tls), ["tls.crt", "tls.key"]);
        assert_eq!(tls.data.unwrap()["tls.crt"].0, b"tls.crt");
        // An Opaque one is still read (and refused for its type by the DAG, with that reason).
        let opaque = reduce(secret("Opaque", &["tls.crt", "tls.key", "notes"]));
        assert_eq!(keys(&opaque), ["tls.crt", "tls.key"]);
        // A service account's token goes; the CA it carries stays.
        let account = reduce(secret(
            "kubernetes.io/service-account-token",
            &["ca.crt", "namespace", "token"],
        ));
        assert_eq!(keys(&account), ["ca.crt"]);
    }

    #[test]
    fn string_data_is_reduced_the_same_way() {
        let mut s = Secret {
            string_data: Some(
                [
                    ("ca.crt".to_string(), "PEM".to_string()),
                    ("other".to_string(), "x".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        s = reduce(s);
        assert_eq!(s.data, None);
        assert_eq!(
            s.string_data.unwrap().keys().collect::<Vec<_>>(),
            ["ca.crt"]
        );
    }
}
