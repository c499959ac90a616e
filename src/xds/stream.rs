//! One ADS stream, whichever the protocol: reads requests into the [`Sequence`], and sends the
//! updates it says are due, on every request and on every new snapshot. A protocol ([`Wire`]) only
//! says how a request reads into the sequence and how an update is put on the wire.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::cache::CacheSnapshot;
use super::report::Reporter;
use super::sequence::{Sequence, Update};
use super::stats::XdsStats;
use super::type_url;

/// An ADS protocol variant (state of the world or delta).
pub trait Wire {
    type Request: Send + 'static;
    type Response: prost::Message + Send + 'static;

    /// The client's node id, if the request carries one.
    fn node(request: &Self::Request) -> Option<&Node>;

    /// The request's type URL.
    fn type_url(request: &Self::Request) -> &str;

    /// Reads a request of `type_url` (a type isobar serves) into the sequence.
    fn read(
        seq: &mut Sequence,
        report: &mut Reporter<'_>,
        type_url: &'static str,
        request: Self::Request,
    );

    /// The response carrying an update.
    fn encode(update: &Update) -> Self::Response;
}

/// Serves one stream until the client goes away.
pub async fn run<W: Wire>(
    mut requests: Streaming<W::Request>,
    responses: mpsc::Sender<Result<W::Response, Status>>,
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
    stats: Arc<XdsStats>,
    stream_id: u64,
) {
    let mut seq = Sequence::new(cache.borrow_and_update().clone());
    let mut report = Reporter::new(&stats, stream_id);
    loop {
        tokio::select! {
            request = requests.message() => {
                let request = match request {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        // A request over --xds-max-message-bytes lands here (OUT_OF_RANGE): say so
                        // in the log, and tell the client why its stream ends.
                        if status.code() == tonic::Code::OutOfRange {
                            tracing::warn!(%status, node = report.node, "xDS request refused; stream closed");
                        } else {
                            tracing::debug!(%status, node = report.node, "xDS stream ended");
                        }
                        let _ = responses.send(Err(status)).await;
                        break;
                    }
                };
                report.node(W::node(&request));
                let Some(type_url) = type_url::ALL.iter().copied().find(|t| *t == W::type_url(&request)) else {
                    tracing::warn!(node = report.node, type_url = W::type_url(&request), "request for a type isobar does not serve");
                    continue;
                };
                W::read(&mut seq, &mut report, type_url, request);
            }
            changed = cache.changed() => {
                if changed.is_err() {
                    break;
                }
                seq.retarget(cache.borrow_and_update().clone());
            }
        }
        if !send_all::<W>(&responses, &mut seq, &mut report).await {
            break;
        }
    }
}

/// Sends every response due; false when the client went away.
async fn send_all<W: Wire>(
    responses: &mpsc::Sender<Result<W::Response, Status>>,
    seq: &mut Sequence,
    report: &mut Reporter<'_>,
) -> bool {
    let updates = seq.step();
    report.resumed(seq.take_resumed());
    for update in updates {
        let response = W::encode(&update);
        let bytes = prost::Message::encoded_len(&response);
        if responses.send(Ok(response)).await.is_err() {
            return false;
        }
        report.sent(&update, seq.names_if_changed(update.type_url), bytes);
    }
    true
}
