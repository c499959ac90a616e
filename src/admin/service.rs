//! The admin gRPC service, and the stream of snapshots both it and the page's server-sent events
//! follow.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::snapshot::{self, Inputs};
use super::{json, v1};
use crate::controller::ControllerState;
use crate::xds::cache::XdsCache;
use crate::xds::stats::XdsStats;
use crate::xds::type_url;

/// Connects and disconnects of Envoys have no signal of their own: a watcher looks this often.
const POLL: Duration = Duration::from_secs(1);
/// At most one snapshot per this interval per watcher, however fast things change: a snapshot of
/// 10,000 hosts is megabytes.
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// What the admin API reads.
#[derive(Clone)]
pub struct AdminState {
    pub stats: Arc<XdsStats>,
    pub state: Arc<ControllerState>,
    pub cache: Arc<XdsCache>,
}

impl AdminState {
    /// The snapshot now.
    pub fn snapshot(&self) -> v1::Snapshot {
        let statuses = self.state.statuses.borrow().clone();
        let gateway = Arc::clone(&self.state.gateway_statuses.borrow());
        let dag = self.state.current_dag();
        let source_errors = self.state.current_source_errors();
        let cache = self.cache.current();
        let streams = self.stats.streams();
        let nacks = self.stats.nack_history();
        snapshot::snapshot(&Inputs {
            statuses: &statuses,
            gateway: &gateway,
            dag: &dag,
            cache: &cache,
            streams: &streams,
            nacks: &nacks,
            source_errors: &source_errors,
            counters: v1::Counters {
                rebuilds: XdsStats::get(&self.state.rebuilds),
                nacks: XdsStats::get(&self.stats.nacks),
                acks: XdsStats::get(&self.stats.acks),
                responses_sent: XdsStats::get(&self.stats.responses_sent),
                tls_handshake_failures: XdsStats::get(&self.stats.handshake_failures),
            },
        })
    }

    /// The current snapshot, then each different one after a rebuild, a status change, an ACK or
    /// NACK, or an Envoy connecting or leaving.
    pub fn changes(self) -> impl Stream<Item = v1::Snapshot> + Send + 'static {
        let watcher = Watcher {
            statuses: self.state.statuses.subscribe(),
            gateway_statuses: self.state.gateway_statuses.subscribe(),
            verdicts: self.stats.subscribe_verdicts(),
            cache: self.cache.subscribe(),
            last: None,
            admin: self,
        };
        futures::stream::unfold(watcher, |mut w| async move {
            let next = w.next().await?;
            Some((next, w))
        })
    }

    /// Every resource in the cache, private keys replaced by their fingerprint.
    pub fn resources(&self) -> v1::Resources {
        let cache = self.cache.current();
        let resources = type_url::ALL
            .iter()
            .flat_map(|t| {
                cache
                    .all(t)
                    .into_iter()
                    .flat_map(move |m| m.values().map(move |r| (*t, r)))
            })
            .map(|(t, r)| v1::Resource {
                type_url: t.to_string(),
                name: r.name.clone(),
                value: json::redacted(t, &r.value).unwrap_or_else(|| r.value.clone()),
            })
            .collect();
        v1::Resources { resources }
    }
}

/// One follower of [`AdminState::changes`].
struct Watcher {
    admin: AdminState,
    statuses: tokio::sync::watch::Receiver<crate::dag::StatusMap>,
    gateway_statuses:
        tokio::sync::watch::Receiver<Arc<crate::dag::gateway::status::GatewayApiStatus>>,
    verdicts: tokio::sync::watch::Receiver<u64>,
    cache: tokio::sync::watch::Receiver<Arc<crate::xds::cache::CacheSnapshot>>,
    last: Option<v1::Snapshot>,
}

impl Watcher {
    async fn next(&mut self) -> Option<v1::Snapshot> {
        if self.last.is_some() {
            tokio::time::sleep(MIN_INTERVAL).await;
        }
        loop {
            let snapshot = self.admin.snapshot();
            if self.last.as_ref() != Some(&snapshot) {
                self.last = Some(snapshot.clone());
                return Some(snapshot);
            }
            tokio::select! {
                r = self.statuses.changed() => r.ok()?,
                r = self.gateway_statuses.changed() => r.ok()?,
                r = self.verdicts.changed() => r.ok()?,
                r = self.cache.changed() => r.ok()?,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// The gRPC face of [`AdminState`].
pub struct AdminService(pub AdminState);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<v1::Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl v1::admin_server::Admin for AdminService {
    async fn get_snapshot(
        &self,
        _: Request<v1::GetSnapshotRequest>,
    ) -> Result<Response<v1::Snapshot>, Status> {
        Ok(Response::new(self.0.snapshot()))
    }

    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        _: Request<v1::WatchRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        use futures::StreamExt;
        Ok(Response::new(Box::pin(self.0.clone().changes().map(Ok))))
    }

    async fn get_resources(
        &self,
        _: Request<v1::GetResourcesRequest>,
    ) -> Result<Response<v1::Resources>, Status> {
        Ok(Response::new(self.0.resources()))
    }
}

/// The admin service as a route to merge into the debug listener's router. Routed by its own path
/// prefix only: tonic's own router answers every unknown path with a gRPC "unimplemented" (HTTP
/// 200), which would hide the debug listener's 404s.
pub fn router(admin: AdminState) -> axum::Router {
    use tonic::server::NamedService;
    type Server = v1::admin_server::AdminServer<AdminService>;
    axum::Router::new().route_service(
        &format!("/{}/{{*method}}", Server::NAME),
        Server::new(AdminService(admin)),
    )
}
