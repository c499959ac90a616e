//! `isobar serve`: the pipeline from a source to Envoy.
//!
//! source ──► snapshot ──► dag::build ──► xds::translate ──► xds::cache ──► ADS server ──► Envoy
//!                                  └──► statuses ──► status writer (leader only, own task)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::dag::{self, Dag, DagOptions, ObjectStatus, Validity};
use crate::source::file::{self, ManifestDir};
use crate::source::{kube as kube_source, Change};
use crate::status::{self, LeaderElection, LeaderHandle, StatusConfig, StatusStats};
use crate::store::Snapshot;
use crate::tls::server::{ReloadingServerConfig, TlsFiles};
use crate::xds::cache::XdsCache;
use crate::xds::server::{self, AdsService};
use crate::xds::stats::XdsStats;
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
    pub listeners: ListenerConfig,
    pub dag: DagOptions,
    pub http_address: SocketAddr,
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
        }
    }
}

/// Runs until `shutdown` completes or a server fails.
pub async fn run(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let tls = match &config.tls {
        Some(files) => {
            let reloading = Arc::new(ReloadingServerConfig::load(files.clone())?);
            Arc::clone(&reloading).spawn_watch(config.tls_reload_interval);
            Some(reloading)
        }
        None => {
            tracing::warn!("xDS is served in PLAINTEXT (--insecure): any client that can reach the port gets the configuration, secrets included");
            None
        }
    };
    let xds_listener = TcpListener::bind(config.xds_address).await.map_err(|e| {
        Error::Config(format!(
            "binding the xDS address {}: {e}",
            config.xds_address
        ))
    })?;
    let http_listener = TcpListener::bind(config.http_address).await.map_err(|e| {
        Error::Config(format!(
            "binding the HTTP address {}: {e}",
            config.http_address
        ))
    })?;

    let cache = Arc::new(XdsCache::new());
    let stats = Arc::new(XdsStats::default());
    let state = Arc::new(ControllerState::default());
    if let Ok(mut t) = state.tls.lock() {
        t.clone_from(&tls);
    }
    let pipeline = Pipeline {
        listeners: config.listeners.clone(),
        dag_options: config.dag.clone(),
        cache: Arc::clone(&cache),
        state: Arc::clone(&state),
        dag: Arc::new(Dag::default()),
    };
    let leadership = match &config.source {
        SourceConfig::Manifests(dir) => {
            run_file_source(dir, &config, pipeline)?;
            None
        }
        SourceConfig::Kube {
            kubeconfig,
            status,
            leader_election,
        } => {
            let client = kube_client(kubeconfig.as_deref()).await?;
            run_kube_source(
                client,
                status.clone(),
                leader_election.clone(),
                &config,
                pipeline,
            )
            .await
        }
    };

    tokio::spawn(crate::ops::serve(
        http_listener,
        Arc::clone(&stats),
        Arc::clone(&state),
        Arc::clone(&cache),
    ));
    tracing::info!(xds = %config.xds_address, http = %config.http_address, mtls = tls.is_some(), "isobar serving");
    let served = server::serve(xds_listener, tls, AdsService::new(cache, stats), shutdown).await;
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    served
}

fn run_file_source(
    dir: &std::path::Path,
    config: &ServeConfig,
    mut pipeline: Pipeline,
) -> Result<()> {
    let mut manifests = ManifestDir::new(dir);
    let loaded = manifests.load()?;
    pipeline.rebuild(&loaded.snapshot, errors_of(&loaded.errors));
    let (watcher, mut changes) = file::watch_dir(dir, config.debounce.0, config.debounce.1)?;
    tokio::spawn(async move {
        let _watcher = watcher;
        while changes.recv().await.is_some() {
            match manifests.load() {
                Ok(loaded) => pipeline.rebuild(&loaded.snapshot, errors_of(&loaded.errors)),
                Err(e) => {
                    tracing::error!(error = %e, "manifest directory not readable; the last configuration stays in force")
                }
            }
        }
    });
    Ok(())
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

async fn run_kube_source(
    client: kube::Client,
    status_config: StatusConfig,
    leader_election: Option<LeaderElection>,
    config: &ServeConfig,
    mut pipeline: Pipeline,
) -> Option<LeaderHandle> {
    let source = kube_source::start(client.clone()).await;
    let kube_source::KubeSource {
        snapshot,
        mut changes,
        mut synced,
        required,
    } = source;
    let (kick_tx, kick_rx) = watch::channel(0u64);
    let (leader, leadership) = match leader_election {
        Some(election) => {
            let (leader, handle) = status::elect(client.clone(), election);
            (leader, Some(handle))
        }
        None => (watch::channel(true).1, None),
    };
    tokio::spawn(status::run(
        client,
        status_config,
        Arc::clone(&snapshot),
        pipeline.state.statuses.subscribe(),
        leader,
        kick_rx,
        Arc::clone(&pipeline.state.status),
    ));
    let debounce = config.debounce;
    tokio::spawn(async move {
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
                Ok(Err(_)) => return,
                Err(_) => tracing::warn!(
                    ?missing,
                    "still waiting for the initial lists; nothing is served until they arrive"
                ),
            }
        }
        let Ok(first) = snapshot.lock().map(|s| s.clone()) else {
            return;
        };
        pipeline.rebuild(&first, Vec::new());
        while let Some(change) = next_burst(&mut changes, debounce).await {
            let current = match snapshot.lock() {
                Ok(s) => s.clone(),
                Err(_) => return,
            };
            match change {
                Change::Routing => pipeline.rebuild(&current, Vec::new()),
                Change::Endpoints => pipeline.refresh_endpoints(&current),
                Change::StatusOnly => {}
            }
            kick_tx.send_modify(|n| *n += 1);
        }
    });
    leadership
}

/// Waits for a change, then collects the burst that follows (hold-off `quiet`, at most `max`), and
/// returns the most significant change in it.
async fn next_burst(
    changes: &mut mpsc::UnboundedReceiver<Change>,
    (quiet, max): (Duration, Duration),
) -> Option<Change> {
    let mut change = changes.recv().await?;
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, changes.recv()).await {
            Ok(Some(c)) => change = change.max(c),
            Ok(None) => return Some(change),
            Err(_) => return Some(change),
        }
        if tokio::time::Instant::now() >= deadline {
            return Some(change);
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
}

impl Pipeline {
    /// One full pass. Logs the objects whose status changed since the last pass (linear in the number of
    /// objects), not every object every time.
    pub fn rebuild(&mut self, snapshot: &Snapshot, source_errors: Vec<String>) {
        for e in &source_errors {
            tracing::error!(error = %e, "manifest not applied; the file's last good objects stay in force");
        }
        let (dag, statuses) = dag::build(snapshot, &self.dag_options);
        let resources = translate::translate(&dag, snapshot, &self.listeners);
        let changed = self.cache.set(resources.by_type());
        let first = self.state.rebuilds.fetch_add(1, Ordering::Relaxed) == 0;
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
    pub fn refresh_endpoints(&mut self, snapshot: &Snapshot) {
        let endpoints = translate::endpoints(&self.dag, snapshot);
        let changed = self.cache.set([(type_url::ENDPOINT, endpoints)]);
        self.state
            .endpoint_refreshes
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(changed, "endpoints refreshed");
    }
}
