//! Delta ADS (`DeltaAggregatedResources`) on the wire: subscriptions, ACKs and NACKs in; changed
//! resources plus removed names out.
//!
//! A resource's version is its content hash, so a client that reconnects with
//! `initial_resource_versions` equal to isobar's is sent nothing for those resources.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};

use super::report::Reporter;
use super::sequence::{Sequence, Update};
use super::stream::Wire;

/// The incremental protocol.
pub struct Delta;

impl Wire for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(request: &DeltaDiscoveryRequest) -> &str {
        &request.type_url
    }

    fn read(
        seq: &mut Sequence,
        report: &mut Reporter<'_>,
        type_url: &'static str,
        request: DeltaDiscoveryRequest,
    ) {
        if !request.response_nonce.is_empty() {
            // A reply to a superseded response is no answer; its subscription changes still count
            // (they are changes, not a state).
            let error = request.error_detail.as_ref().map(|e| e.message.as_str());
            if let Some(answer) = seq.answer(type_url, &request.response_nonce, error.is_some()) {
                report.answer(type_url, answer, error.unwrap_or_default());
            }
        }
        let initial: BTreeMap<String, String> =
            request.initial_resource_versions.into_iter().collect();
        seq.delta_request(
            type_url,
            &request.resource_names_subscribe,
            &request.resource_names_unsubscribe,
            &initial,
        );
    }

    /// Each changed resource with its content hash as its version, and the removed names.
    fn encode(update: &Update) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: update.version.clone(),
            resources: update
                .upserts
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.hash.to_string(),
                    resource: Some(r.any(update.type_url)),
                    ..Default::default()
                })
                .collect(),
            type_url: update.type_url.to_string(),
            removed_resources: update.removals.clone(),
            nonce: update.nonce.clone(),
            ..Default::default()
        }
    }
}
