//! What isobar keeps of a Secret: only the keys it reads, so that a cluster's other Secrets (service
//! account tokens, application credentials, Helm release records of hundreds of KiB) cost their
//! metadata and nothing more, and their contents are not held in isobar's memory at all.
//!
//! The other keys are dropped as the watch decodes a Secret ([`ReadSecret`]), not after: their
//! values are skipped, never decoded from base64 nor allocated. The list that starts the watch holds
//! every Secret of the cluster in one response, and isobar's first build waits for it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The keys isobar reads: a TLS certificate and key (`dag::secret`, any Secret a route names, whose
/// type it then checks) and an upstream validation CA (`dag::ingressroute`).
pub const READ_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// A Secret as the watch decodes it: `data` and `stringData` with only [`READ_KEYS`]; neither field is
/// left when it has none of them. Metadata and type stay, so a route naming a Secret without a
/// certificate is told so as before ("has no tls.crt", "type is ...").
#[derive(Debug, Clone, Default)]
pub struct ReadSecret(pub Secret);

impl<'de> Deserialize<'de> for ReadSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Secret's fields (apiVersion and kind are the watch's to check), the maps read by `read_keys`.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            #[serde(default)]
            metadata: ObjectMeta,
            #[serde(default, deserialize_with = "read_keys")]
            data: Option<BTreeMap<String, ByteString>>,
            #[serde(default, deserialize_with = "read_keys")]
            string_data: Option<BTreeMap<String, String>>,
            #[serde(default)]
            immutable: Option<bool>,
            #[serde(default, rename = "type")]
            type_: Option<String>,
        }
        let f = Fields::deserialize(deserializer)?;
        Ok(ReadSecret(Secret {
            metadata: f.metadata,
            data: f.data,
            string_data: f.string_data,
            immutable: f.immutable,
            type_: f.type_,
        }))
    }
}

/// A map of a Secret's keys (or null) with only [`READ_KEYS`]; `None` when it has none of them.
fn read_keys<'de, D, V>(deserializer: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct ReadKeys<V>(PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for ReadKeys<V> {
        type Value = Option<BTreeMap<String, V>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of a Secret's keys, or null")
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if READ_KEYS.contains(&&*key) {
                    kept.insert(key.into_owned(), map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok((!kept.is_empty()).then_some(kept))
        }
    }

    deserializer.deserialize_option(ReadKeys(PhantomData))
}

/// Served, listed and watched as a Secret.
impl kube::Resource for ReadSecret {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        <Secret as kube::Resource>::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        <Secret as kube::Resource>::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        <Secret as kube::Resource>::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        <Secret as kube::Resource>::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `object` as the watch reads it.
    fn read(object: serde_json::Value) -> Secret {
        serde_json::from_value::<ReadSecret>(object).unwrap().0
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
        let opaque = read(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": "c2VjcmV0", "blob": "AAEC"},
            "stringData": {"user": "admin"},
        }));
        assert_eq!(opaque.data, None);
        assert_eq!(opaque.string_data, None);
        assert_eq!(opaque.metadata.name.as_deref(), Some("db"));
        assert_eq!(opaque.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn certificates_keys_and_cas_are_kept_whatever_the_type() {
        let tls = read(json!({
            "type": "kubernetes.io/tls", "metadata": {"name": "web"},
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
        }));
        assert_eq!(keys(&tls), ["tls.crt", "tls.key"]);
        assert_eq!(tls.data.unwrap()["tls.crt"].0, b"cert");
        // An Opaque one is still read (and refused for its type by the DAG, with that reason).
        let opaque = read(json!({
            "type": "Opaque", "metadata": {"name": "web"},
            "data": {"tls.crt": "Y2VydA==", "notes": "bm90ZXM=", "tls.key": "a2V5"},
        }));
        assert_eq!(keys(&opaque), ["tls.crt", "tls.key"]);
        // A service account's token goes; the CA it carries stays.
        let account = read(json!({
            "type": "kubernetes.io/service-account-token", "metadata": {"name": "default-token"},
            "data": {"ca.crt": "Y2E=", "namespace": "ZGVmYXVsdA==", "token": "dG9rZW4="},
        }));
        assert_eq!(keys(&account), ["ca.crt"]);
    }

    #[test]
    fn string_data_is_reduced_the_same_way() {
        let s = read(json!({"stringData": {"ca.crt": "PEM", "other": "x"}}));
        assert_eq!(s.data, None);
        assert_eq!(
            s.string_data.unwrap().keys().collect::<Vec<_>>(),
            ["ca.crt"]
        );
    }

    /// What is kept reads as k8s-openapi reads it, so the snapshot, and what isobar makes of it,
    /// are as when whole Secrets were read and then reduced.
    #[test]
    fn what_is_kept_is_what_the_whole_secret_holds() {
        let object = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "immutable": true,
            "metadata": {
                "name": "web", "namespace": "shop", "resourceVersion": "42", "uid": "u-1",
                "labels": {"app": "web"}, "annotations": {"note": "x"},
            },
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5", "ca.crt": "Y2E=", "extra": "eA=="},
        });
        let mut whole: Secret = serde_json::from_value(object.clone()).unwrap();
        whole.data.as_mut().unwrap().remove("extra");
        assert_eq!(read(object), whole);
    }

    #[test]
    fn absent_null_and_empty_maps_leave_no_field() {
        for data in [json!(null), json!({}), json!({"other": "eA=="})] {
            let s = read(json!({"metadata": {"name": "a"}, "data": data, "stringData": data}));
            assert_eq!((s.data, s.string_data), (None, None), "data {data}");
        }
        let s = read(json!({"metadata": {"name": "a"}}));
        assert_eq!((s.data, s.string_data), (None, None));
    }

    /// The values of other keys are skipped unread: one that is not base64 does not fail the Secret.
    /// One that isobar reads still has to be.
    #[test]
    fn only_the_read_keys_values_are_decoded() {
        let s = read(json!({"data": {"blob": "not base64!", "tls.crt": "Y2VydA=="}}));
        assert_eq!(keys(&s), ["tls.crt"]);
        let bad = json!({"data": {"tls.crt": "not base64!"}});
        assert!(serde_json::from_value::<ReadSecret>(bad).is_err());
    }
}
