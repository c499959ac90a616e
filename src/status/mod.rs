//! The status writer: Ingress `status.loadBalancer`, IngressRoute `status.currentStatus/description`,
//! and a Warning Event on an Ingress that becomes invalid.
//!
//! Only the leader writes (a Lease in `coordination.k8s.io/v1`). A change after a quiet spell is
//! written at once, a burst of changes in a few passes ([`pacing`]). Writes run on their own task,
//! never on the rebuild path, within a request budget ([`ClientBudget`]: a token bucket of
//! `--kube-client-burst` refilled at `--kube-client-qps`). What to write is computed by pure
//! functions ([`pending`], [`ReportedIngresses::due`]) from the statuses, the objects as last seen
//! and the load balancer address, so an object already carrying the right status is never written
//! again and an Ingress is told once per transition.

mod budget;
pub mod events;
pub mod gateway;
mod leader;
mod pacing;
mod pending;
pub mod transitions;

pub use budget::{ClientBudget, WriteBudget, DEFAULT_BURST, DEFAULT_QPS};
pub use events::{EventReason, IngressEvent, ReportedIngresses};
pub use leader::{elect, LeaderElection, LeaderHandle};
pub use pending::{pending, write_for, LoadBalancerAddress, StatusWrite};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::crd::gateway::{Gateway, GatewayClass, HttpRoute};
use crate::crd::IngressRoute;
use crate::dag::gateway::status::GatewayApiStatus;
use crate::dag::StatusMap;
use crate::store::{ObjectKey, Snapshot};
use gateway::GatewayStatusWrite;
use pacing::Pacing;

/// Where the Ingress address comes from.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// A fixed address (`--ingress-status-address`), IP or host name.
    pub ingress_status_address: Option<String>,
    /// Otherwise the load balancer addresses of this Service (Envoy's).
    pub envoy_service: ObjectKey,
    /// The `reportingInstance` of Events (the leader-election identity); `None`: `isobar`.
    pub reporting_instance: Option<String>,
    /// What status writes and Events may cost the API server.
    pub budget: ClientBudget,
}

/// What the writer follows: the statuses of each build, leadership, and kicks. The builder kicks after
/// every wake-up (a build, endpoints refreshed, an object's stored status changed), once that build's
/// statuses are published: the writer wakes on kicks, not on each status channel, so a pass sees a
/// build's Ingress and Gateway API statuses together.
pub struct StatusInputs {
    pub statuses: watch::Receiver<StatusMap>,
    pub gateway_statuses: watch::Receiver<Arc<GatewayApiStatus>>,
    /// `--gateway-controller-name`: the HTTPRoute `status.parents` entries isobar owns.
    pub gateway_controller_name: String,
    pub leader: watch::Receiver<bool>,
    pub kicks: watch::Receiver<u64>,
}

/// Counters of the status writer.
#[derive(Debug, Default)]
pub struct StatusStats {
    pub writes: AtomicU64,
    pub failures: AtomicU64,
    /// Events published, and Events the API server refused or that failed (retried next pass).
    pub events: AtomicU64,
    pub event_failures: AtomicU64,
}

/// Runs the writer until the inputs close.
pub async fn run(
    client: Client,
    config: StatusConfig,
    snapshot: Arc<Mutex<Snapshot>>,
    inputs: StatusInputs,
    stats: Arc<StatusStats>,
) {
    let StatusInputs {
        statuses,
        gateway_statuses,
        gateway_controller_name,
        mut leader,
        mut kicks,
    } = inputs;
    let reporter = Reporter {
        controller: events::REPORTING_CONTROLLER.to_string(),
        instance: config.reporting_instance.clone(),
    };
    let mut reported = ReportedIngresses::default();
    let budget = WriteBudget::new(config.budget);
    let mut settled_routes = gateway::SettledRoutes::default();
    let mut pacing = Pacing::default();
    loop {
        tokio::select! {
            r = leader.changed() => if r.is_err() { return },
            r = kicks.changed() => if r.is_err() { return },
        }
        tokio::time::sleep_until(pacing.start_at(Instant::now())).await;
        pacing.space_from(Instant::now());
        if !*leader.borrow_and_update() {
            continue;
        }
        // Read, not awaited: the kick says when they changed.
        let current = statuses.borrow().clone();
        let gateway_current = Arc::clone(&gateway_statuses.borrow());
        kicks.borrow_and_update();
        reported.forget_resolved(current.values());
        // Under the lock only what must read the snapshot; the writes are made after it.
        let (due, address, events, gateway_due) = match snapshot.lock() {
            Ok(s) => {
                let address = LoadBalancerAddress::resolve(&config, &s);
                // The reference carries the uid, which `kubectl describe` matches Events by; an
                // Ingress not in the snapshot yet is retried on the next pass.
                let events: Vec<(IngressEvent, ObjectReference)> = reported
                    .due(current.values())
                    .into_iter()
                    .filter_map(|e| {
                        let reference = s.ingresses.get(&e.object)?.object_ref(&());
                        Some((e, reference))
                    })
                    .collect();
                let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                );
                let gateway_due = gateway::gateway_writes(
                    &s,
                    &gateway_current,
                    &gateway_controller_name,
                    &now,
                    &mut settled_routes,
                );
                (
                    pending(&s, current.values(), &address),
                    address,
                    events,
                    gateway_due,
                )
            }
            Err(_) => return,
        };
        let writes: Vec<StatusWrite> = due
            .into_iter()
            .filter_map(|s| write_for(s, &address))
            .collect();
        if writes.is_empty() && events.is_empty() && gateway_due.is_empty() {
            continue;
        }
        tracing::debug!(
            writes = writes.len(),
            events = events.len(),
            "writing statuses"
        );
        let tasks: Vec<BoxFuture<'_, Outcome>> = writes
            .into_iter()
            .map(|w| write(&budget, client.clone(), w).boxed())
            .chain(events.into_iter().map(|(e, reference)| {
                publish(&budget, client.clone(), reporter.clone(), e, reference).boxed()
            }))
            .chain(
                gateway_due
                    .into_iter()
                    .map(|w| write_gateway(&budget, client.clone(), w).boxed()),
            )
            .collect();
        let outcomes = futures::stream::iter(tasks)
            .buffer_unordered(config.budget.in_flight())
            .collect::<Vec<_>>()
            .await;
        pacing.space_from(Instant::now());
        for outcome in outcomes {
            match outcome {
                Outcome::Written(Ok(())) => stats.writes.fetch_add(1, Ordering::Relaxed),
                Outcome::Written(Err(e)) => {
                    tracing::warn!(error = %e, "status not written; retried on the next change");
                    stats.failures.fetch_add(1, Ordering::Relaxed)
                }
                Outcome::Published(event, Ok(())) => {
                    reported.published(&event);
                    stats.events.fetch_add(1, Ordering::Relaxed)
                }
                Outcome::Published(event, Err(e)) => {
                    tracing::warn!(error = %e, object = %event.object, reason = %event.reason,
                        "Event not published; retried on the next change");
                    stats.event_failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }
}

/// What one write of a pass came to.
enum Outcome {
    Written(Result<(), kube::Error>),
    Published(IngressEvent, Result<(), kube::Error>),
}

/// Publishes a Warning Event on an Ingress (events.k8s.io/v1).
async fn publish(
    budget: &WriteBudget,
    client: Client,
    reporter: Reporter,
    event: IngressEvent,
    reference: ObjectReference,
) -> Outcome {
    // A Recorder per Event: its cache turns a repeat of (object, reason) into a count on the earlier
    // Event, keeping that Event's note, so a new description under the same reason would show the old
    // one. Repeats are already ruled out by `ReportedIngresses`.
    let recorder = Recorder::new(client, reporter);
    budget.acquire().await;
    let result = recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: event.reason.to_string(),
                note: Some(event.note()),
                action: events::ACTION.to_string(),
                secondary: None,
            },
            &reference,
        )
        .await;
    Outcome::Published(event, result)
}

async fn write(budget: &WriteBudget, client: Client, write: StatusWrite) -> Outcome {
    budget.acquire().await;
    Outcome::Written(match write {
        StatusWrite::Ingress { object, status } => {
            patch_status::<Ingress>(client, &object, status).await
        }
        StatusWrite::IngressRoute { object, status } => {
            patch_status::<IngressRoute>(client, &object, status).await
        }
    })
}

async fn write_gateway(budget: &WriteBudget, client: Client, write: GatewayStatusWrite) -> Outcome {
    budget.acquire().await;
    Outcome::Written(match write {
        GatewayStatusWrite::GatewayClass { name, status } => {
            let api: Api<GatewayClass> = Api::all(client);
            let patch = Patch::Merge(serde_json::json!({ "status": status }));
            api.patch_status(&name, &PatchParams::default(), &patch)
                .await
                .map(|_| ())
        }
        GatewayStatusWrite::Gateway { object, status } => {
            patch_status::<Gateway>(client, &object, status).await
        }
        GatewayStatusWrite::HttpRoute { object, status } => {
            patch_status::<HttpRoute>(client, &object, status).await
        }
    })
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
