//! `isobar serve`: the pipeline from a source to Envoy.
//!
//! source ──► snapshot ──► dag::build ──► xds::translate ──► xds::cache ──► ADS server ──► Envoy
//!                                  └──► statuses ──► status writer (leader only, own task)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::dag::{self, Dag, DagOptions, ObjectStatus, Validity};
use crate::health::Health;
use crate::isolation::{self, Isolation};
use crate::latency::Latency;
use crate::source::file::{self, ManifestDir};
use crate::source::{kube as kube_source, Change};
use crate::status::{self, LeaderElection, LeaderHandle, StatusConfig, StatusStats};
use crate::store::Snapshot;
use crate::supervisor::{Supervisor, TaskError, TaskResult};
use crate::tls::client_san::ClientSanAllowlist;
use crate::tls::server::{ReloadingServerConfig, TlsFiles};
use crate::xds::cache::XdsCache;
use crate::xds::limits::XdsServerLimits;
use crate::xds::server::{self, AdsService};
use crate::xds::stats::XdsStats;
use crate::xds::tls_incoming::XdsTls;
use crate::xds::translate::{self, ListenerConfig};
use crate::xds::type_url;
use crate::{Error, Result};

/// Where objects come from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A directory of YAML, re-read when it changes.
    Manifests(PathBuf),
    /// A Kubernetes API server: the kubeconfig at this path, or the usual inference (in-cluster
    /// service account, `KUBECONFIG`, `~/.kube/config`) when `None`.
    Kube {
        kubeconfig: Option<PathBuf>,
        status: StatusConfig,
        /// `None` disables leader election: this process always writes statuses.
        leader_election: Option<LeaderElection>,
    },
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub source: SourceConfig,
    pub xds_address: SocketAddr,
    /// `None` only with `--insecure`.
    pub tls: Option<TlsFiles>,
    pub tls_reload_interval: Duration,
    /// SAN DNS names a client certificate must include one of (`--xds-client-san`); empty: any.
    pub xds_client_sans: ClientSanAllowlist,
    /// Bounds on the xDS port (handshakes, streams, message size).
    pub xds_limits: XdsServerLimits,
    pub listeners: ListenerConfig,
    pub dag: DagOptions,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http_address: SocketAddr,
    /// `/debug/*` (loopback by default: it shows every object and Envoy's errors).
    pub debug_http_address: SocketAddr,
    /// Hold-off after a change before rebuilding, and the longest a burst of changes can delay one.
    pub debounce: (Duration, Duration),
}

/// What the controller knows about its own state, for `/metrics` and `/debug`.
#[derive(Debug)]
pub struct ControllerState {
    pub statuses: watch::Sender<Arc<Vec<ObjectStatus>>>,
    pub source_errors: Mutex<Vec<String>>,
    pub rebuilds: AtomicU64,
    pub endpoint_refreshes: AtomicU64,
    pub status: Arc<StatusStats>,
    /// The DAG of the last rebuild, for `/debug/dag`.
    pub dag: Mutex<Arc<Dag>>,
    /// The xDS server's TLS, for the certificate expiry metrics.
    pub tls: Mutex<Option<Arc<ReloadingServerConfig>>>,
    /// Alive and ready, for `/healthz` and `/readyz`.
    pub health: Arc<Health>,
    /// Rebuild and change-to-push histograms, for `/metrics`.
    pub latency: Latency,
}

impl Default for ControllerState {
    fn default() -> Self {
        ControllerState {
            statuses: watch::Sender::new(Arc::new(Vec::new())),
            source_errors: Mutex::new(Vec::new()),
            rebuilds: AtomicU64::new(0),
            endpoint_refreshes: AtomicU64::new(0),
            status: Arc::new(StatusStats::default()),
            dag: Mutex::new(Arc::new(Dag::default())),
            tls: Mutex::new(None),
            health: Arc::new(Health::default()),
            latency: Latency::default(),
        }
    }
}

/// How long the xDS server gets at shutdown to finish in-flight responses before it is aborted. The
/// Lease is released meanwhile (at most 3 s), so isobar exits within 5 s of SIGTERM.
const XDS_DRAIN: Duration = Duration::from_secs(4);
/// How often the file source retries a manifests directory it can't read yet.
const MANIFESTS_RETRY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` completes (`Ok`) or a supervised task dies (`Err`, see [`crate::supervisor`]).
pub async fn run(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Controller::start(config).await?.run_until(shutdown).await
}

/// The addresses the controller listens on; a port given as 0 is the one the OS picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddresses {
    pub xds: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: SocketAddr,
    /// `/debug/*`.
    pub debug_http: SocketAddr,
}

/// A started controller: every listener bound, every task running under supervision.
#[derive(Debug)]
pub struct Controller {
    supervisor: Supervisor,
    leadership: Option<LeaderHandle>,
    addresses: BoundAddresses,
}

impl Controller {
    /// Binds the listeners and starts the source, the pipeline, the status writer (kube source), the
    /// HTTP servers and the xDS server.
    pub async fn start(config: ServeConfig) -> Result<Controller> {
        let cache = Arc::new(XdsCache::new());
        let stats = Arc::new(XdsStats::default());
        let state = Arc::new(ControllerState::default());
        let mut supervisor = Supervisor::new(Arc::clone(&state.health));
        let tls = match &config.tls {
            Some(files) => {
                let reloading = Arc::new(ReloadingServerConfig::load(files.clone())?);
                supervisor.adopt(
                    "TLS reloader",
                    Arc::clone(&reloading).spawn_watch(config.tls_reload_interval),
                );
                Some(reloading)
            }
            None => {
                tracing::warn!("xDS is served in PLAINTEXT (--insecure): any client that can reach the port gets the configuration, secrets included");
                None
            }
        };
        let xds_listener = bind(config.xds_address, "xDS").await?;
        let http_listener = bind(config.http_address, "HTTP").await?;
        let debug_listener = bind(config.debug_http_address, "debug HTTP").await?;
        let addresses = BoundAddresses {
            xds: local_addr(&xds_listener)?,
            http: local_addr(&http_listener)?,
            debug_http: local_addr(&debug_listener)?,
        };

        if let Ok(mut t) = state.tls.lock() {
            t.clone_from(&tls);
        }
        let pipeline = Pipeline::new(
            config.listeners.clone(),
            config.dag.clone(),
            Arc::clone(&cache),
            Arc::clone(&state),
            Arc::clone(&stats),
        );
        let leadership = match &config.source {
            SourceConfig::Manifests(dir) => {
                supervisor.spawn(
                    PIPELINE_TASK,
                    file_pipeline(dir.clone(), config.debounce, pipeline),
                );
                None
            }
            SourceConfig::Kube {
                kubeconfig,
                status,
                leader_election,
            } => {
                let client = kube_client(kubeconfig.as_deref()).await?;
                start_kube_source(
                    client,
                    status.clone(),
                    leader_election.clone(),
                    config.debounce,
                    pipeline,
                    &mut supervisor,
                )
                .await
            }
        };

        let routers =
            crate::ops::OpsRouters::new(Arc::clone(&stats), Arc::clone(&state), Arc::clone(&cache));
        supervisor.spawn("HTTP server", async move {
            Ok(crate::ops::serve(http_listener, routers.main).await?)
        });
        supervisor.spawn("debug HTTP server", async move {
            Ok(crate::ops::serve(debug_listener, routers.debug).await?)
        });
        let mtls = tls.is_some();
        let service = AdsService::new(cache, stats);
        let xds_tls = tls.map(|server_config| XdsTls {
            server_config,
            client_sans: config.xds_client_sans.clone(),
        });
        let xds_limits = config.xds_limits.clone();
        supervisor.spawn_graceful("xDS server", |stop| async move {
            Ok(server::serve(xds_listener, xds_tls, &xds_limits, service, stop.stopped()).await?)
        });
        tracing::info!(xds = %addresses.xds, http = %addresses.http, debug_http = %addresses.debug_http, mtls, "isobar serving");
        Ok(Controller {
            supervisor,
            leadership,
            addresses,
        })
    }

    /// Where it listens.
    pub fn addresses(&self) -> BoundAddresses {
        self.addresses
    }

    /// The names of the supervised tasks.
    pub fn task_names(&self) -> Vec<String> {
        self.supervisor.task_names().map(str::to_string).collect()
    }

    /// TEST HOOK: the abort handle of the supervised task named `task`, so a test can kill it as if it
    /// had crashed and watch the controller notice. Nothing in isobar calls it.
    #[doc(hidden)]
    pub fn abort_handle(&self, task: &str) -> Option<tokio::task::AbortHandle> {
        self.supervisor.abort_handle(task)
    }

    /// Serves until `shutdown` completes (`Ok`) or a supervised task dies (`Err` naming it; `/healthz`
    /// answers 503 meanwhile). Either way the xDS server drains, the other tasks stop and the
    /// leader-election Lease is given up.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            death = self.supervisor.first_death() => Err(Error::TaskDied(death)),
        };
        // The Lease is given up while the xDS server drains, so neither waits for the other.
        let release = async {
            if let Some(leadership) = self.leadership {
                leadership.release().await;
            }
        };
        tokio::join!(self.supervisor.stop(XDS_DRAIN), release);
        outcome
    }
}

/// The supervised task that builds and publishes configurations.
pub const PIPELINE_TASK: &str = "pipeline";

async fn bind(address: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| Error::Config(format!("binding the {what} address {address}: {e}")))
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| Error::Config(format!("reading a bound listener's address: {e}")))
}

/// The file source: waits until the directory can be read (it may not exist yet, e.g. before a
/// git-sync sidecar's first checkout; `/readyz` answers 503 meanwhile), serves its first load, then
/// rebuilds after every burst of changes.
async fn file_pipeline(
    dir: PathBuf,
    (quiet, max): (Duration, Duration),
    mut pipeline: Pipeline,
) -> TaskResult {
    let mut manifests = ManifestDir::new(&dir);
    let mut retry = tokio::time::interval(MANIFESTS_RETRY);
    let mut last_error: Option<String> = None;
    // The watch starts before the first read, so an edit in between is not missed.
    let (_watcher, mut changes, loaded) = loop {
        retry.tick().await;
        let attempt = file::watch_dir(&dir, quiet, max)
            .and_then(|(watcher, changes)| Ok((watcher, changes, manifests.load()?)));
        match attempt {
            Ok(ready) => break ready,
            Err(e) => {
                let message = e.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(dir = %dir.display(), error = %message,
                        "manifest directory not readable yet; nothing is served until it is");
                }
                last_error = Some(message);
            }
        }
    };
    if last_error.is_some() {
        tracing::info!(dir = %dir.display(), "manifest directory readable");
    }
    pipeline.rebuild(loaded.snapshot, errors_of(&loaded.errors));
    let mut verdicts = pipeline.stats.subscribe_verdicts();
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(seen) = change else {
                    break;
                };
                pipeline.change_seen(seen);
                match manifests.load() {
                    Ok(loaded) => {
                        let errors = errors_of(&loaded.errors);
                        pipeline.rebuild(loaded.snapshot, errors)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "manifest directory not readable; the last configuration stays in force")
                    }
                }
            }
            Ok(()) = verdicts.changed() => pipeline.on_verdict(),
        }
    }
    Err(TaskError::Stopped(
        "the manifest directory's change feed closed",
    ))
}

fn errors_of(errors: &[Error]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

/// A client for the kubeconfig at `kubeconfig`, or the usual inference (in-cluster, KUBECONFIG,
/// ~/.kube/config).
pub async fn kube_client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::KubeConfig(e.to_string()))?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn start_kube_source(
    client: kube::Client,
    status_config: StatusConfig,
    leader_election: Option<LeaderElection>,
    debounce: (Duration, Duration),
    pipeline: Pipeline,
    supervisor: &mut Supervisor,
) -> Option<LeaderHandle> {
    let source = kube_source::start(client.clone(), supervisor).await;
    let (kick_tx, kick_rx) = watch::channel(0u64);
    let (leader, always_leader, leadership) = match leader_election {
        Some(election) => {
            let (leader, handle) = status::elect(client.clone(), election);
            (leader, None, Some(handle))
        }
        None => {
            // Always the leader. The sender lives as long as the writer: a closed channel stops it.
            let (always, leader) = watch::channel(true);
            (leader, Some(always), None)
        }
    };
    let writer = status::run(
        client,
        status_config,
        Arc::clone(&source.snapshot),
        pipeline.state.statuses.subscribe(),
        leader,
        kick_rx,
        Arc::clone(&pipeline.state.status),
    );
    supervisor.spawn("status writer", async move {
        let _always_leader = always_leader;
        writer.await;
        Err(TaskError::Stopped("its inputs closed"))
    });
    supervisor.spawn(
        PIPELINE_TASK,
        kube_pipeline(source, debounce, pipeline, kick_tx),
    );
    leadership
}

/// The kube source's pipeline: the first build once every kind has been listed, then one per burst of
/// changes.
async fn kube_pipeline(
    source: kube_source::KubeSource,
    debounce: (Duration, Duration),
    mut pipeline: Pipeline,
    kick_tx: watch::Sender<u64>,
) -> TaskResult {
    let kube_source::KubeSource {
        snapshot,
        mut changes,
        mut synced,
        required,
    } = source;
    // Nothing is served before every kind has been listed once: a partial configuration would make
    // Envoy drop routes it has (after an isobar restart, say).
    loop {
        let missing: Vec<&str> = required
            .iter()
            .filter(|k| !synced.borrow().contains(*k))
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), synced.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(TaskError::Stopped(
                    "every watcher stopped before the initial lists completed",
                ))
            }
            Err(_) => tracing::warn!(
                ?missing,
                "still waiting for the initial lists; nothing is served until they arrive"
            ),
        }
    }
    let poisoned = || TaskError::Stopped("the snapshot lock is poisoned");
    let first = snapshot.lock().map_err(|_| poisoned())?.clone();
    pipeline.rebuild(first, Vec::new());
    let mut verdicts = pipeline.stats.subscribe_verdicts();
    loop {
        tokio::select! {
            // `recv` is cancel-safe: a verdict arriving first loses no change.
            first = changes.recv() => {
                let Some(first) = first else {
                    break;
                };
                let seen = Instant::now();
                let change = rest_of_burst(first, &mut changes, debounce).await;
                // Copied only for a change that needs it: isobar's own status writes come back as
                // status-only changes, thousands at start, and the watchers wait for the lock.
                let current = || snapshot.lock().map(|s| s.clone()).map_err(|_| poisoned());
                match change {
                    Change::Routing => {
                        pipeline.change_seen(seen);
                        pipeline.rebuild(current()?, Vec::new())
                    }
                    Change::Endpoints => {
                        pipeline.change_seen(seen);
                        pipeline.refresh_endpoints(current()?)
                    }
                    Change::StatusOnly => {}
                }
            }
            Ok(()) = verdicts.changed() => pipeline.on_verdict(),
        }
        kick_tx.send_modify(|n| *n += 1);
    }
    Err(TaskError::Stopped(
        "the change feed closed (every watcher stopped)",
    ))
}

/// Collects the burst that follows a first change (hold-off `quiet`, at most `max`), and returns
/// the most significant change in it.
async fn rest_of_burst(
    first: Change,
    changes: &mut mpsc::UnboundedReceiver<Change>,
    (quiet, max): (Duration, Duration),
) -> Change {
    let mut change = first;
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, changes.recv()).await {
            Ok(Some(c)) => change = change.max(c),
            Ok(None) => return change,
            Err(_) => return change,
        }
        if tokio::time::Instant::now() >= deadline {
            return change;
        }
    }
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
        let streams = self.stats.streams();
        for t in type_url::ALL {
            let acked = streams
                .iter()
                .filter_map(|s| s.types.get(t))
                .map(|st| st.acked_generation)
                .min();
            if let Some(generation) = acked {
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
        let objects = isolation::objects_of(&snapshot);
        let exclusions = self.isolation.exclusions(&objects);
        let filtered;
        let input = if exclusions.is_empty() {
            &snapshot
        } else {
            filtered = isolation::without(&snapshot, &exclusions);
            &filtered
        };
        let (dag, mut statuses) = dag::build(input, &self.dag_options);
        if !exclusions.is_empty() {
            statuses.extend(exclusions.iter().map(|((kind, key), why)| ObjectStatus {
                kind: *kind,
                object: key.clone(),
                validity: Validity::Invalid,
                description: why.to_string(),
            }));
            statuses.sort_by(|a, b| (a.kind, &a.object).cmp(&(b.kind, &b.object)));
        }
        let resources = translate::translate(&dag, input, &self.listeners);
        let before = self.cache.current();
        let changed = self.cache.set(resources.by_type());
        let after = self.cache.current();
        let changed_types: Vec<&str> = type_url::ALL
            .iter()
            .copied()
            .filter(|t| !before.same(&after, t))
            .collect();
        let included = objects
            .into_iter()
            .filter(|(id, _)| !exclusions.contains_key(id))
            .collect();
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
        self.state.statuses.send_if_modified(|current| {
            let modified = **current != statuses;
            if modified {
                *current = Arc::new(statuses);
            }
            modified
        });
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

    /// Only endpoints changed: recompute EDS for the clusters of the last DAG; other types untouched.
    pub fn refresh_endpoints(&mut self, snapshot: Snapshot) {
        let endpoints = translate::endpoints(&self.dag, &snapshot);
        if let Some((last, _)) = self.last_input.as_mut() {
            *last = snapshot;
        }
        let changed = self.cache.set([(type_url::ENDPOINT, endpoints)]);
        self.pushed(changed);
        self.state
            .endpoint_refreshes
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(changed, "endpoints refreshed");
    }
}
