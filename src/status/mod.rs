//! The status writer: Ingress `status.loadBalancer` and IngressRoute `status.currentStatus/description`.
//!
//! Only the leader writes (a Lease in `coordination.k8s.io/v1`), writes are batched, and they run on
//! their own task, never on the rebuild path. What to write is computed by a pure function
//! ([`pending_writes`]) from the statuses, the objects as last seen and the load balancer address, so
//! an object already carrying the right status is never written again.

pub mod events;
mod leader;
mod pending;
pub mod transitions;

pub use events::{EventReason, IngressEvent, ReportedIngresses};
pub use leader::{elect, LeaderElection, LeaderHandle};
pub use pending::{pending_writes, LoadBalancerAddress, StatusWrite};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use tokio::sync::watch;

use crate::crd::IngressRoute;
use crate::dag::ObjectStatus;
use crate::store::{ObjectKey, Snapshot};

/// Where the Ingress address comes from.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// A fixed address (`--ingress-status-address`), IP or host name.
    pub ingress_status_address: Option<String>,
    /// Otherwise the load balancer addresses of this Service (Envoy's).
    pub envoy_service: ObjectKey,
}

/// Counters of the status writer.
#[derive(Debug, Default)]
pub struct StatusStats {
    pub writes: AtomicU64,
    pub failures: AtomicU64,
}

/// How many writes run at once.
const CONCURRENT_WRITES: usize = 8;
/// Hold-off that batches bursts of status changes into one pass.
const BATCH: Duration = Duration::from_millis(200);

/// Runs the writer until the inputs close.
pub async fn run(
    client: Client,
    config: StatusConfig,
    snapshot: Arc<Mutex<Snapshot>>,
    mut statuses: watch::Receiver<Arc<Vec<ObjectStatus>>>,
    mut leader: watch::Receiver<bool>,
    mut kicks: watch::Receiver<u64>,
    stats: Arc<StatusStats>,
) {
    loop {
        tokio::select! {
            r = statuses.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            r = kicks.changed() => if r.is_err() { return },
        }
        tokio::time::sleep(BATCH).await;
        if !*leader.borrow_and_update() {
            continue;
        }
        let current = statuses.borrow_and_update().clone();
        kicks.borrow_and_update();
        let writes = match snapshot.lock() {
            Ok(s) => {
                let address = LoadBalancerAddress::resolve(&config, &s);
                pending_writes(&s, &current, &address)
            }
            Err(_) => return,
        };
        if writes.is_empty() {
            continue;
        }
        tracing::debug!(writes = writes.len(), "writing statuses");
        let results = futures::stream::iter(writes.into_iter().map(|w| write(client.clone(), w)))
            .buffer_unordered(CONCURRENT_WRITES)
            .collect::<Vec<_>>()
            .await;
        for result in results {
            match result {
                Ok(()) => stats.writes.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "status not written; retried on the next change");
                    stats.failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }
}

async fn write(client: Client, write: StatusWrite) -> Result<(), kube::Error> {
    match write {
        StatusWrite::Ingress { object, status } => {
            patch_status::<Ingress>(client, &object, status).await
        }
        StatusWrite::IngressRoute { object, status } => {
            patch_status::<IngressRoute>(client, &object, status).await
        }
    }
}

/// Merges `status` into the status subresource of `object`.
async fn patch_status<K>(
    client: Client,
    object: &ObjectKey,
    status: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client, &object.namespace);
    let patch = Patch::Merge(serde_json::json!({ "status": status }));
    api.patch_status(&object.name, &PatchParams::default(), &patch)
        .await
        .map(|_| ())
}
