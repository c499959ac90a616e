//! Secrets: the certificates of secure virtual hosts, served over SDS.

use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, Secret, TlsCertificate,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use super::Named;
use crate::dag::{Dag, TlsSecret};

/// One Secret per certificate a secure virtual host uses.
pub fn secrets(dag: &Dag) -> Named {
    dag.secrets
        .values()
        .map(|s| (s.name.clone(), secret(s)))
        .collect()
}

/// The SDS Secret of one certificate.
pub(super) fn secret(s: &TlsSecret) -> Any {
    let inline = |bytes: &[u8]| DataSource {
        specifier: Some(Specifier::InlineBytes(bytes.to_vec())),
        ..Default::default()
    };
    pack_any(Secret {
        name: s.name.clone(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&s.cert_chain)),
            private_key: Some(inline(&s.private_key)),
            ..Default::default()
        })),
    })
}
