//! `isobar serve`: the pipeline from a source to Envoy.
//!
//! source ──► snapshot ──► dag::build ──► xds::translate ──► xds::cache ──► ADS server ──► Envoy

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::dag::{self, DagOptions, ObjectStatus, Validity};
use crate::source::file::{self, Loaded, ManifestDir};
use crate::tls::server::{ReloadingServerConfig, TlsFiles};
use crate::xds::cache::XdsCache;
use crate::xds::server::{self, AdsService};
use crate::xds::stats::XdsStats;
use crate::xds::translate::{self, ListenerConfig};
use crate::{Error, Result};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub manifests: PathBuf,
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
#[derive(Debug, Default)]
pub struct ControllerState {
    pub statuses: Mutex<Vec<ObjectStatus>>,
    pub source_errors: Mutex<Vec<String>>,
    pub rebuilds: AtomicU64,
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

    let mut manifests = ManifestDir::new(&config.manifests);
    let loaded = manifests.load()?;
    rebuild(loaded, &config, &cache, &state);

    let (watcher, mut changes) =
        file::watch_dir(&config.manifests, config.debounce.0, config.debounce.1)?;
    {
        let (config, cache, state) = (config.clone(), Arc::clone(&cache), Arc::clone(&state));
        tokio::spawn(async move {
            let _watcher = watcher;
            while changes.recv().await.is_some() {
                match manifests.load() {
                    Ok(loaded) => rebuild(loaded, &config, &cache, &state),
                    Err(e) => {
                        tracing::error!(error = %e, "manifest directory not readable; the last configuration stays in force")
                    }
                }
            }
        });
    }

    tokio::spawn(crate::ops::serve(
        http_listener,
        Arc::clone(&stats),
        Arc::clone(&state),
        Arc::clone(&cache),
    ));
    tracing::info!(xds = %config.xds_address, http = %config.http_address, manifests = %config.manifests.display(),
        mtls = tls.is_some(), "isobar serving");
    server::serve(xds_listener, tls, AdsService::new(cache, stats), shutdown).await
}

/// One pass of the pipeline: build, translate, publish. Logs what changed in objects' statuses.
pub fn rebuild(loaded: Loaded, config: &ServeConfig, cache: &XdsCache, state: &ControllerState) {
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    for e in &errors {
        tracing::error!(error = %e, "manifest not applied; the file's last good objects stay in force");
    }
    let (dag, statuses) = dag::build(&loaded.snapshot, &config.dag);
    let resources = translate::translate(&dag, &loaded.snapshot, &config.listeners);
    let changed = cache.set(resources.by_type());
    state.rebuilds.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut previous) = state.statuses.lock() {
        for s in &statuses {
            if !previous.contains(s) {
                match s.validity {
                    Validity::Valid => {
                        tracing::info!(object = %s.object, kind = %s.kind, "{}", s.description)
                    }
                    _ => {
                        tracing::warn!(object = %s.object, kind = %s.kind, status = %s.validity, "{}", s.description)
                    }
                }
            }
        }
        *previous = statuses;
    }
    if let Ok(mut e) = state.source_errors.lock() {
        *e = errors;
    }
    tracing::info!(
        virtual_hosts = dag.virtual_hosts.len(),
        secure_virtual_hosts = dag.secure_virtual_hosts.len(),
        clusters = dag.clusters.len(),
        changed,
        "configuration rebuilt"
    );
}
