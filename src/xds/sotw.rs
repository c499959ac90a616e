//! State-of-the-world ADS (`StreamAggregatedResources`) on the wire.
//!
//! Listeners and clusters are sent whole (leaving one out removes it); routes, endpoints and secrets
//! only as they change, which the protocol allows for those types. A client that reconnects with
//! the `version_info` of exactly what would be sent is sent nothing.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::report::Reporter;
use super::sequence::{Sequence, Update};
use super::stream::Wire;
use super::type_url;

/// The state-of-the-world protocol.
pub struct Sotw;

impl Wire for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(request: &DiscoveryRequest) -> &str {
        &request.type_url
    }

    fn read(
        seq: &mut Sequence,
        report: &mut Reporter<'_>,
        type_url: &'static str,
        request: DiscoveryRequest,
    ) {
        let mut asks_again = false;
        if !request.response_nonce.is_empty() {
            match seq.last_nonce(type_url) {
                Some((last, true)) if last == request.response_nonce => {
                    let error = request.error_detail.as_ref().map(|e| e.message.as_str());
                    if let Some(answer) =
                        seq.answer(type_url, &request.response_nonce, error.is_some())
                    {
                        report.answer(type_url, answer, error.unwrap_or_default());
                    }
                }
                // A second request for a response already answered: Envoy sends one when it adds
                // a watch on resources it holds (an updated cluster's endpoints).
                Some((last, false)) if last == request.response_nonce => asks_again = true,
                // A reply to a response that has since been superseded: the newer one is in
                // flight, and its answer will carry the names.
                _ => return,
            }
        }
        seq.sotw_request(
            type_url,
            request.resource_names,
            &request.version_info,
            asks_again,
        );
    }

    /// The whole state for listeners and clusters, the changed resources for the other types.
    fn encode(update: &Update) -> DiscoveryResponse {
        let whole = matches!(update.type_url, type_url::LISTENER | type_url::CLUSTER);
        let resources: Vec<_> = if whole {
            update
                .state
                .values()
                .map(|r| r.any(update.type_url))
                .collect()
        } else {
            update
                .upserts
                .iter()
                .map(|r| r.any(update.type_url))
                .collect()
        };
        DiscoveryResponse {
            version_info: update.version.clone(),
            resources,
            type_url: update.type_url.to_string(),
            nonce: update.nonce.clone(),
            ..Default::default()
        }
    }
}
