//! A probe that talks to isobar's xDS port the way Envoy does with incremental (delta) ADS:
//! `DeltaAggregatedResources` over gRPC, optionally mTLS — the delta twin of [`crate::xds_client`].
//!
//! A first request for a type with no names subscribes to all of its resources (the legacy wildcard
//! Envoy uses for LDS and CDS); names subscribe to just those (EDS, RDS, SDS). Later requests carry
//! only the change: names added, names removed, or the nonce of the response they ACK or NACK.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::xds_client::{
    open_channel, Responses, XdsClientTls, GRPC_INTERNAL, NODE_CLUSTER, NODE_ID,
};

/// An open delta ADS stream.
#[derive(Debug)]
pub struct DeltaAdsStream {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Responses<DeltaDiscoveryResponse>,
    /// Per type URL: the names subscribed to (empty after a wildcard subscription).
    subscribed: HashMap<String, BTreeSet<String>>,
    /// Whether the node went out (Envoy sends it on the first request of a stream only).
    node_sent: bool,
}

/// Builds a DeltaDiscoveryRequest (node `test-envoy` / cluster `isobar-test` when `with_node`).
pub fn delta_request(
    type_url: &str,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
    error_detail: Option<String>,
    with_node: bool,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: with_node.then(|| Node {
            id: NODE_ID.to_string(),
            cluster: NODE_CLUSTER.to_string(),
            ..Default::default()
        }),
        type_url: type_url.to_string(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        error_detail: error_detail.map(|message| RpcStatus {
            code: GRPC_INTERNAL,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Opens a delta ADS stream to `addr`: plaintext HTTP/2 with `tls = None`, else TLS with ALPN h2.
///
/// Handshake failures surface here; a refusal the server only signals later (a TLS 1.3
/// client-certificate rejection, or `Unimplemented` from a server without delta ADS) surfaces on
/// the first [`DeltaAdsStream::recv`].
pub async fn connect_delta_ads(
    addr: SocketAddr,
    tls: Option<XdsClientTls>,
) -> Result<DeltaAdsStream> {
    let channel = open_channel(addr, tls).await?;
    let (tx, rx) = mpsc::channel(16);
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let call = tokio::spawn(async move {
        client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
    });
    Ok(DeltaAdsStream {
        tx,
        responses: Responses::new(call, "delta ADS", "DeltaDiscoveryResponse"),
        subscribed: HashMap::new(),
        node_sent: false,
    })
}

impl DeltaAdsStream {
    /// Sends a request as is (the node is added to the stream's first request).
    pub async fn send(&mut self, mut req: DeltaDiscoveryRequest) -> Result<()> {
        if !self.node_sent {
            if req.node.is_none() {
                req.node = delta_request("", &[], &[], "", None, true).node;
            }
            self.node_sent = true;
        }
        let names = self.subscribed.entry(req.type_url.clone()).or_default();
        names.extend(req.resource_names_subscribe.iter().cloned());
        for n in &req.resource_names_unsubscribe {
            names.remove(n);
        }
        self.tx
            .send(req)
            .await
            .map_err(|_| Error::Xds("the delta ADS request stream is closed".into()))
    }

    /// Subscribes to `names` of `type_url`; the first request of a type with no names subscribes
    /// to all of its resources (wildcard, as Envoy does for LDS and CDS).
    pub async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> Result<()> {
        self.send(delta_request(type_url, names, &[], "", None, false))
            .await
    }

    /// Unsubscribes from `names` of `type_url`.
    pub async fn unsubscribe(&mut self, type_url: &str, names: &[&str]) -> Result<()> {
        self.send(delta_request(type_url, &[], names, "", None, false))
            .await
    }

    /// The names subscribed to for `type_url` (empty for a wildcard subscription).
    pub fn subscribed(&self, type_url: &str) -> Vec<String> {
        self.subscribed
            .get(type_url)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Receives the next response, failing on timeout, stream end or a gRPC error.
    pub async fn recv(&mut self, timeout: Duration) -> Result<DeltaDiscoveryResponse> {
        self.responses.recv(timeout).await
    }

    /// ACKs `resp`: its type and nonce, no names (a delta ACK changes no subscription).
    pub async fn ack(&mut self, resp: &DeltaDiscoveryResponse) -> Result<()> {
        self.send(delta_request(
            &resp.type_url,
            &[],
            &[],
            &resp.nonce,
            None,
            false,
        ))
        .await
    }

    /// NACKs `resp` like Envoy: its type and nonce with an error detail.
    pub async fn nack(&mut self, resp: &DeltaDiscoveryResponse, message: &str) -> Result<()> {
        self.send(delta_request(
            &resp.type_url,
            &[],
            &[],
            &resp.nonce,
            Some(message.to_string()),
            false,
        ))
        .await
    }
}

/// Whether `err` is the server saying it has no delta ADS (gRPC `Unimplemented`).
pub fn is_unimplemented(err: &Error) -> bool {
    err.to_string().contains("Unimplemented")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds_client::CLUSTER_TYPE;

    #[test]
    fn delta_request_carries_names_nonce_and_error_detail() {
        let r = delta_request(CLUSTER_TYPE, &["a"], &["b"], "n1", Some("bad".into()), true);
        assert_eq!(r.node.unwrap().id, NODE_ID);
        assert_eq!(r.resource_names_subscribe, vec!["a".to_string()]);
        assert_eq!(r.resource_names_unsubscribe, vec!["b".to_string()]);
        assert_eq!(r.response_nonce, "n1");
        assert_eq!(r.error_detail.unwrap().message, "bad");
        assert!(delta_request(CLUSTER_TYPE, &[], &[], "", None, false)
            .node
            .is_none());
    }

    #[tokio::test]
    async fn first_request_carries_the_node_and_subscriptions_are_tracked() {
        // No server: the request channel is read directly.
        let (tx, mut rx) = mpsc::channel(4);
        let mut stream = DeltaAdsStream {
            tx,
            responses: Responses::none("delta ADS", "DeltaDiscoveryResponse"),
            subscribed: HashMap::new(),
            node_sent: false,
        };
        stream.subscribe(CLUSTER_TYPE, &["x", "y"]).await.unwrap();
        stream.unsubscribe(CLUSTER_TYPE, &["x"]).await.unwrap();
        assert!(rx.recv().await.unwrap().node.is_some());
        assert!(rx.recv().await.unwrap().node.is_none());
        assert_eq!(stream.subscribed(CLUSTER_TYPE), vec!["y".to_string()]);
    }
}
