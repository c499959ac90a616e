//! JSON of protobuf messages, from their descriptors: Envoy's resources (for `isobar diff`) and the
//! admin snapshot (for the operator page). prost's generated types carry no reflection, so the
//! descriptor sets compiled in by `build.rs` are decoded once, on first use; `serve` pays for that
//! only when someone opens the page.

use std::sync::OnceLock;

use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, Secret};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use sha2::{Digest, Sha256};

use super::v1;
use crate::xds::type_url;

static ENVOY_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor.bin"));
static ADMIN_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin_descriptor.bin"));

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("the compiled-in descriptors do not decode: {0}")]
    Descriptors(String),
    #[error("unknown message type {0}")]
    UnknownType(String),
    #[error("{type_name} does not decode: {message}")]
    Decode { type_name: String, message: String },
    #[error("{0}")]
    Serialize(#[from] serde_json::Error),
}

fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(ENVOY_DESCRIPTORS).map_err(|e| e.to_string())?;
        pool.decode_file_descriptor_set(ADMIN_DESCRIPTORS)
            .map_err(|e| e.to_string())?;
        Ok(pool)
    })
    .as_ref()
    .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// `bytes`, a message of `type_url` (`type.googleapis.com/…` or a bare full name), as JSON.
fn value(
    type_url: &str,
    bytes: &[u8],
    options: &SerializeOptions,
) -> Result<serde_json::Value, JsonError> {
    let type_name = type_url.rsplit('/').next().unwrap_or(type_url);
    let descriptor = pool()?
        .get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType(type_name.to_string()))?;
    let message = DynamicMessage::decode(descriptor, bytes).map_err(|e| JsonError::Decode {
        type_name: type_name.to_string(),
        message: e.to_string(),
    })?;
    Ok(message.serialize_with_options(serde_json::value::Serializer, options)?)
}

/// An Envoy resource as JSON, field names as in Envoy's YAML (`route_config_name`), default values
/// left out, private keys replaced by their fingerprint.
pub fn envoy_resource(type_url: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    let redacted = redacted(type_url, bytes);
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    value(type_url, redacted.as_deref().unwrap_or(bytes), &options)
}

/// The admin snapshot as JSON, as the page reads it: camelCase names, every field present, 64-bit
/// numbers as numbers (none of them come near 2^53), enums by name.
pub fn admin_snapshot(snapshot: &v1::Snapshot) -> Result<serde_json::Value, JsonError> {
    let options = SerializeOptions::new()
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    value(
        "isobar.admin.v1.Snapshot",
        &snapshot.encode_to_vec(),
        &options,
    )
}

/// What a redacted private key reads, before its fingerprint.
const REDACTED: &str = "redacted sha256:";

/// A Secret whose private key is replaced by `redacted sha256:<fingerprint>`, so that a changed key
/// still shows as a change; `None` for other types or a Secret without an inline key.
pub fn redacted(type_url: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    if type_url != type_url::SECRET {
        return None;
    }
    let mut secret = Secret::decode(bytes).ok()?;
    let Some(secret::Type::TlsCertificate(cert)) = secret.r#type.as_mut() else {
        return None;
    };
    let key = cert.private_key.as_mut()?;
    let material: &[u8] = match &key.specifier {
        Some(Specifier::InlineBytes(b)) => b,
        // Already redacted (`diff` compares redacted resources, then renders them): keep the
        // key's fingerprint rather than take one of the fingerprint.
        Some(Specifier::InlineString(s)) if s.starts_with(REDACTED) => return None,
        Some(Specifier::InlineString(s)) => s.as_bytes(),
        _ => return None,
    };
    let fingerprint = hex::encode(&Sha256::digest(material)[..8]);
    *key = DataSource {
        specifier: Some(Specifier::InlineString(format!("{REDACTED}{fingerprint}"))),
        ..Default::default()
    };
    Some(secret.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;

    use super::*;

    #[test]
    fn an_envoy_cluster_renders_with_envoys_field_names() {
        let cluster = Cluster {
            name: "default/web/80/da39a3ee5e".into(),
            ..Default::default()
        };
        let json = envoy_resource(type_url::CLUSTER, &cluster.encode_to_vec()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "default/web/80/da39a3ee5e"})
        );
    }

    #[test]
    fn a_private_key_never_renders_but_its_change_shows() {
        let secret = |key: &[u8]| Secret {
            name: "default/tls".into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                private_key: Some(DataSource {
                    specifier: Some(Specifier::InlineBytes(key.to_vec())),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        };
        let render = |key: &[u8]| {
            envoy_resource(type_url::SECRET, &secret(key).encode_to_vec())
                .unwrap()
                .to_string()
        };
        let a = render(b"-----BEGIN PRIVATE KEY-----secret-a");
        let b = render(b"-----BEGIN PRIVATE KEY-----secret-b");
        assert!(!a.contains("PRIVATE KEY") && !a.contains("secret-a"), "{a}");
        assert!(a.contains("redacted sha256:"), "{a}");
        assert_ne!(a, b);
        // Rendering a redacted Secret again shows the same fingerprint, the key's.
        let once = redacted(type_url::SECRET, &secret(b"key").encode_to_vec()).unwrap();
        assert_eq!(redacted(type_url::SECRET, &once), None);
    }

    #[test]
    fn the_admin_snapshot_renders_camel_case_with_enum_names() {
        let snapshot = v1::Snapshot {
            objects: vec![v1::Object {
                kind: "Ingress".into(),
                status: v1::Validity::Invalid as i32,
                ..Default::default()
            }],
            cache_generation: 7,
            ..Default::default()
        };
        let json = admin_snapshot(&snapshot).unwrap();
        assert_eq!(json["objects"][0]["status"], "INVALID");
        assert_eq!(json["cacheGeneration"], 7);
        assert_eq!(json["envoys"], serde_json::json!([]));
    }

    #[test]
    fn an_unknown_type_is_an_error_not_a_panic() {
        assert!(matches!(
            envoy_resource("type.googleapis.com/no.such.Type", b""),
            Err(JsonError::UnknownType(_))
        ));
    }
}
