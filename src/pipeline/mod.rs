//! The builder: from a snapshot to the xDS cache (DAG, translation, publication) on a thread of its
//! own, fed by a coalescing [`Signal`]: the async runtime that serves xDS, the watches and the HTTP
//! endpoints never waits for a build, and a build never waits for a hold-off.

pub mod signal;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub use signal::{Pending, Signal};

use crate::controller::ControllerState;
use crate::dag::{self, Dag, DagOptions, ObjectKind, ObjectStatus, Validity};
use crate::isolation::{self, Isolation};
use crate::source::Change;
use crate::status;
use crate::store::Snapshot;
use crate::xds::cache::{CacheDiff, XdsCache};
use crate::xds::stats::XdsStats;
use crate::xds::translate::{self, ListenerConfig};
use crate::xds::type_url;

/// What the builder reads when it is signalled: the source's current objects and the errors it has
/// to report, or `None` when they can't be read now (logged by the source; the last configuration
/// stays in force).
pub type Input = Box<dyn FnMut() -> Option<(Snapshot, Vec<String>)> + Send>;

/// Runs `pipeline` on a blocking thread until `signal` is closed. Each wake-up takes all the work that
/// arrived meanwhile, reads the input once, and rebuilds (a routing change) or refreshes endpoints;
/// then runs `after` (the status writer's kick).
pub fn spawn_builder(
    signal: Arc<Signal>,
    mut pipeline: Pipeline,
    mut input: Input,
    after: impl Fn() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        while let Some(work) = signal.wait() {
            if let Some(seen) = work.seen {
                pipeline.change_seen(seen);
            }
            match work.change {
                Some(Change::Routing) => {
                    if let Some((snapshot, errors)) = input() {
                        pipeline.rebuild(snapshot, errors);
                    }
                }
                Some(Change::Endpoints) => {
                    if let Some((snapshot, _)) = input() {
                        pipeline.refresh_endpoints(snapshot);
                    }
                }
                Some(Change::StatusOnly) | None => {}
            }
            if work.verdict {
                pipeline.on_verdict();
            }
            after();
        }
    })
}

/// Build, translate, publish; keeps the last DAG so an endpoint change only recomputes EDS.
pub struct Pipeline {
    pub listeners: ListenerConfig,
    pub dag_options: DagOptions,
    pub cache: Arc<XdsCache>,
    pub state: Arc<ControllerState>,
    pub dag: Arc<Dag>,
    /// Envoy's verdicts, for NACK isolation.
    pub stats: Arc<XdsStats>,
    pub isolation: Isolation,
    /// What the last build computed, reused for what did not change.
    memo: dag::Memo,
    translation: translate::TranslationMemo,
    fingerprints: isolation::FingerprintMemo,
    /// The last input, to rebuild when a verdict moves the isolation on.
    last_input: Option<(Snapshot, Vec<String>)>,
    /// NACKs already looked at.
    seen_nacks: u64,
    /// When the source first saw the change(s) the next rebuild or refresh carries.
    change_seen: Option<Instant>,
}

impl Pipeline {
    pub fn new(
        listeners: ListenerConfig,
        dag_options: DagOptions,
        cache: Arc<XdsCache>,
        state: Arc<ControllerState>,
        stats: Arc<XdsStats>,
    ) -> Pipeline {
        Pipeline {
            listeners,
            dag_options,
            cache,
            state,
            dag: Arc::new(Dag::default()),
            stats,
            isolation: Isolation::default(),
            memo: dag::Memo::default(),
            translation: translate::TranslationMemo::default(),
            fingerprints: isolation::FingerprintMemo::default(),
            last_input: None,
            seen_nacks: 0,
            change_seen: None,
        }
    }

    /// Envoy said something: a NACK of the last push starts or narrows a bisection, an ACK moves it
    /// on; either may call for a rebuild without (or with) some objects.
    pub fn on_verdict(&mut self) {
        let mut moved = false;
        let nacks = XdsStats::get(&self.stats.nacks);
        if nacks != self.seen_nacks {
            self.seen_nacks = nacks;
            if let Some(n) = self.stats.last_nack() {
                moved |= self
                    .isolation
                    .rejected(&n.type_url, n.generation, &n.message);
            }
        }
        // A type is accepted as of the oldest generation every Envoy that subscribes to it ACKed.
        for t in type_url::ALL {
            if let Some(generation) = self.stats.acked_generation(t) {
                moved |= self.isolation.accepted(t, generation);
            }
        }
        if moved {
            if let Some((snapshot, errors)) = self.last_input.take() {
                self.rebuild(snapshot, errors);
            }
        }
    }

    /// One full pass. Logs what changed in objects' statuses. The snapshot is kept (not copied) for
    /// a rebuild that Envoy's verdicts may call for.
    /// The source saw a change at `at`: the next rebuild or endpoint refresh carries it (the
    /// earliest of several counts).
    pub fn change_seen(&mut self, at: Instant) {
        self.change_seen = Some(self.change_seen.map_or(at, |t| t.min(at)));
    }

    /// Records how long the change took to reach the cache, if this update carried one to Envoy.
    fn pushed(&mut self, changed: bool) {
        if let Some(since) = self.change_seen.take() {
            if changed {
                self.state.latency.pushed(since);
            }
        }
    }

    pub fn rebuild(&mut self, snapshot: Snapshot, source_errors: Vec<String>) {
        let started = Instant::now();
        for e in &source_errors {
            tracing::error!(error = %e, "manifest not applied; the file's last good objects stay in force");
        }
        let objects = self.fingerprints.objects_of(&snapshot);
        let exclusions = self.isolation.exclusions(&objects);
        let filtered;
        let input = if exclusions.is_empty() {
            &snapshot
        } else {
            filtered = isolation::without(&snapshot, &exclusions);
            &filtered
        };
        let (dag, mut statuses, _) = dag::build_memoised(input, &self.dag_options, &mut self.memo);
        self.publish_gateway_status(&snapshot, &exclusions);
        for ((kind, key), why) in &exclusions {
            if *kind == ObjectKind::HttpRoute {
                // Reported in its Gateway API status.
                continue;
            }
            let status = ObjectStatus {
                kind: *kind,
                object: key.clone(),
                validity: Validity::Invalid,
                description: why.to_string(),
            };
            statuses.insert((*kind, key.clone()), status);
        }
        let before = self.cache.current();
        let diff = translate::translate_changes(
            &dag,
            input,
            &self.listeners,
            &mut self.translation,
            &before,
        );
        let changed = self.cache.apply(diff);
        let after = self.cache.current();
        let changed_types: Vec<&str> = type_url::ALL
            .iter()
            .copied()
            .filter(|t| !before.same(&after, t))
            .collect();
        let mut included = objects;
        for id in exclusions.keys() {
            included.remove(id);
        }
        self.isolation
            .pushed(included, &changed_types, after.generation);
        self.last_input = Some((snapshot, source_errors.clone()));
        self.state.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.state
            .latency
            .rebuild
            .observe(started.elapsed().as_secs_f64());
        self.pushed(changed);
        let first = self.state.health.mark_ready();
        if first {
            tracing::info!("first configuration built and in the xDS cache: ready");
        }
        let previous = self.state.statuses.borrow().clone();
        let transitions = status::transitions::changed(&previous, &statuses);
        for s in &transitions {
            match s.validity {
                // At start every object is new: only the ones needing attention get a line.
                Validity::Valid if first => {}
                Validity::Valid => {
                    tracing::info!(object = %s.object, kind = %s.kind, "{}", s.description)
                }
                _ => {
                    tracing::warn!(object = %s.object, kind = %s.kind, status = %s.validity, "{}", s.description)
                }
            }
        }
        let status_changes = transitions.len();
        if status_changes > 0 || previous.len() != statuses.len() {
            self.state.statuses.send_replace(statuses);
        }
        if let Ok(mut e) = self.state.source_errors.lock() {
            *e = source_errors;
        }
        // One line per configuration Envoy gets; rebuilds that change nothing stay at debug.
        let (virtual_hosts, secure_virtual_hosts, clusters) = (
            dag.virtual_hosts.len(),
            dag.secure_virtual_hosts.len(),
            dag.clusters.len(),
        );
        if changed {
            tracing::info!(
                virtual_hosts,
                secure_virtual_hosts,
                clusters,
                status_changes,
                "configuration rebuilt"
            );
        } else {
            tracing::debug!(
                virtual_hosts,
                secure_virtual_hosts,
                clusters,
                status_changes,
                "configuration rebuilt (unchanged)"
            );
        }
        self.dag = Arc::new(dag);
        if let Ok(mut shared) = self.state.dag.lock() {
            *shared = Arc::clone(&self.dag);
        }
    }

    /// The Gateway API statuses of the last build, with the HTTPRoutes left out of it (Envoy
    /// rejected them, or they are held back while isobar finds what Envoy rejected) said so.
    fn publish_gateway_status(
        &mut self,
        snapshot: &Snapshot,
        exclusions: &std::collections::BTreeMap<isolation::ObjectId, isolation::Exclusion>,
    ) {
        let built = self.memo.gateway_status();
        let routes: Vec<_> = exclusions
            .iter()
            .filter(|((kind, _), _)| *kind == ObjectKind::HttpRoute)
            .collect();
        if routes.is_empty() {
            // The common case: the build's statuses as they are, copied only when they changed.
            self.state.gateway_statuses.send_if_modified(|current| {
                let changed = **current != *built;
                if changed {
                    *current = Arc::new(built.clone());
                }
                changed
            });
            return;
        }
        let mut gateway = built.clone();
        // The routes' parents as they are with the routes in (rare: only during a NACK).
        let full = dag::gateway::status::gateway_api_status(snapshot, &self.dag_options.gateway);
        for ((_, key), why) in routes {
            let reason = match why {
                isolation::Exclusion::Rejected(_) => "RejectedByEnvoy",
                isolation::Exclusion::Suspect(_) => "Pending",
            };
            gateway.set_aside(&full, key, reason, &why.to_string());
        }
        self.state.gateway_statuses.send_if_modified(|current| {
            let changed = **current != gateway;
            if changed {
                *current = Arc::new(gateway);
            }
            changed
        });
    }

    /// Only endpoints changed: recompute EDS for the clusters of the last DAG; other types untouched.
    pub fn refresh_endpoints(&mut self, snapshot: Snapshot) {
        let mut diff = CacheDiff::default();
        self.translation.endpoints(&snapshot, &mut diff);
        if let Some((last, _)) = self.last_input.as_mut() {
            *last = snapshot;
        }
        let changed = self.cache.apply(diff);
        self.pushed(changed);
        self.state
            .endpoint_refreshes
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(changed, "endpoints refreshed");
    }
}
