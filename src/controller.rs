//! `isobar serve`: the pipeline from a source to Envoy.
//!
//! source ──► snapshot ──► dag::build ──► xds::translate ──► xds::cache ──► ADS server ──► Envoy
//!                                  └──► statuses ──► status writer (leader only, own task)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::dag::gateway::status::GatewayApiStatus;
use crate::dag::{Dag, DagOptions, StatusMap};
use crate::health::Health;
use crate::latency::Latency;
use crate::pipeline::{self, Pipeline, Signal};
use crate::source::file;
use crate::source::manifest_dir::ManifestDir;
use crate::source::{kube as kube_source, Change};
use crate::status::{self, LeaderElection, LeaderHandle, StatusConfig, StatusStats};
use crate::supervisor::{Supervisor, TaskError, TaskResult};
use crate::tls::client_san::ClientSanAllowlist;
use crate::tls::server::{ReloadingServerConfig, TlsFiles};
use crate::xds::cache::XdsCache;
use crate::xds::limits::XdsServerLimits;
use crate::xds::server::{self, AdsService};
use crate::xds::stats::XdsStats;
use crate::xds::tls_incoming::XdsTls;
use crate::xds::translate::ListenerConfig;
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
}

/// What the controller knows about its own state, for `/metrics` and `/debug`.
#[derive(Debug)]
pub struct ControllerState {
    pub statuses: watch::Sender<StatusMap>,
    /// The Gateway API statuses of the last rebuild.
    pub gateway_statuses: watch::Sender<Arc<GatewayApiStatus>>,
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

impl ControllerState {
    /// The DAG of the last rebuild.
    pub fn current_dag(&self) -> Arc<Dag> {
        self.dag.lock().map(|d| Arc::clone(&d)).unwrap_or_default()
    }

    /// What the source could not read, as it last reported.
    pub fn current_source_errors(&self) -> Vec<String> {
        self.source_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }
}

impl Default for ControllerState {
    fn default() -> Self {
        ControllerState {
            statuses: watch::Sender::new(StatusMap::new()),
            gateway_statuses: watch::Sender::new(Arc::default()),
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
                supervisor.spawn(PIPELINE_TASK, file_pipeline(dir.clone(), pipeline));
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
        supervisor.spawn(
            "heap trimmer",
            crate::heap_trim::run(Arc::clone(&stats), cache.subscribe()),
        );
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
/// git-sync sidecar's first checkout; `/readyz` answers 503 meanwhile), then has the builder load it
/// once and again whenever the watcher sees a change.
async fn file_pipeline(dir: PathBuf, pipeline: Pipeline) -> TaskResult {
    let signal = Arc::new(Signal::default());
    let mut retry = tokio::time::interval(MANIFESTS_RETRY);
    let mut last_error: Option<String> = None;
    let mut manifests = ManifestDir::new(&dir);
    // The watch starts before the first read, so an edit in between is not missed.
    let _watcher = loop {
        retry.tick().await;
        let attempt = manifests
            .watch(Arc::clone(&signal))
            .and_then(|watcher| file::manifest_files(&dir).map(|_| watcher));
        match attempt {
            Ok(watcher) => break watcher,
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
    let input: pipeline::Input = Box::new(move || match manifests.load() {
        Ok(loaded) => Some((loaded.snapshot, errors_of(&loaded.errors))),
        Err(e) => {
            tracing::error!(error = %e, "manifest directory not readable; the last configuration stays in force");
            None
        }
    });
    let mut verdicts = pipeline.stats.subscribe_verdicts();
    signal.change(Change::Routing, Instant::now());
    let builder = BuilderTask::spawn(Arc::clone(&signal), pipeline, input, || {});
    builder
        .run(async {
            while verdicts.changed().await.is_ok() {
                signal.verdict();
            }
        })
        .await
}

fn errors_of(errors: &[Arc<Error>]) -> Vec<String> {
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
        status::StatusInputs {
            statuses: pipeline.state.statuses.subscribe(),
            gateway_statuses: pipeline.state.gateway_statuses.subscribe(),
            gateway_controller_name: pipeline.dag_options.gateway.controller_name.clone(),
            leader,
            kicks: kick_rx,
        },
        Arc::clone(&pipeline.state.status),
    );
    supervisor.spawn("status writer", async move {
        let _always_leader = always_leader;
        writer.await;
        Err(TaskError::Stopped("its inputs closed"))
    });
    supervisor.spawn(PIPELINE_TASK, kube_pipeline(source, pipeline, kick_tx));
    leadership
}

/// The kube source's pipeline: the first build once every kind has been listed, then the builder is
/// signalled for every change; it copies the snapshot (pointers) once per build.
async fn kube_pipeline(
    source: kube_source::KubeSource,
    pipeline: Pipeline,
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
    let signal = Arc::new(Signal::default());
    let input: pipeline::Input = Box::new(move || match snapshot.lock() {
        Ok(s) => Some((s.clone(), Vec::new())),
        Err(_) => {
            tracing::error!("the snapshot lock is poisoned; nothing more is built");
            None
        }
    });
    let mut verdicts = pipeline.stats.subscribe_verdicts();
    signal.change(Change::Routing, Instant::now());
    // The status writer looks again after every wake-up of the builder, status-only changes (isobar's
    // own writes coming back) included.
    let builder = BuilderTask::spawn(Arc::clone(&signal), pipeline, input, move || {
        kick_tx.send_modify(|n| *n += 1)
    });
    builder
        .run(async {
            loop {
                tokio::select! {
                    // `recv` is cancel-safe: a verdict arriving first loses no change.
                    change = changes.recv() => {
                        let Some(change) = change else { break };
                        signal.change(change, Instant::now());
                    }
                    Ok(()) = verdicts.changed() => signal.verdict(),
                }
            }
        })
        .await
}

/// The builder thread of a source's pipeline task: stopped (its signal closed) when the task ends or is
/// aborted, and its death is the task's.
struct BuilderTask {
    signal: Arc<Signal>,
    thread: tokio::task::JoinHandle<()>,
}

impl BuilderTask {
    fn spawn(
        signal: Arc<Signal>,
        pipeline: Pipeline,
        input: pipeline::Input,
        after: impl Fn() + Send + 'static,
    ) -> BuilderTask {
        let thread = pipeline::spawn_builder(Arc::clone(&signal), pipeline, input, after);
        BuilderTask { signal, thread }
    }

    /// Feeds the builder with `source` until the source ends (an error: its feed closed) or the
    /// builder dies.
    async fn run(mut self, source: impl std::future::Future<Output = ()>) -> TaskResult {
        tokio::select! {
            () = source => Err(TaskError::Stopped("the change feed closed")),
            joined = &mut self.thread => Err(match joined {
                Err(e) if e.is_panic() => TaskError::Stopped("the builder thread panicked"),
                _ => TaskError::Stopped("the builder thread stopped"),
            }),
        }
    }
}

impl Drop for BuilderTask {
    fn drop(&mut self) {
        self.signal.close();
    }
}
