//! A Kubernetes API for a test: a local cluster the harness starts, or an existing one named by
//! `ISOBAR_E2E_KUBECONFIG`.

use std::path::{Path, PathBuf};

use super::client::KubeClient;
use super::kubeconfig::{KubeAuth, KubeEndpoint};
use super::local::{KubeClusterOptions, LocalCluster};
use crate::error::{Error, Result};

/// Environment variable naming the kubeconfig of an existing cluster to test against instead of
/// starting one (e.g. kind, or a cluster made from envtest binaries).
pub const E2E_KUBECONFIG_ENV: &str = "ISOBAR_E2E_KUBECONFIG";

/// A running API server and an admin client for it. Dropping a local cluster stops
/// kube-controller-manager, kube-apiserver and etcd, in that order, and removes its temp dir.
#[derive(Debug)]
pub struct KubeCluster {
    client: KubeClient,
    kubeconfig: PathBuf,
    local: Option<LocalCluster>,
}

impl KubeCluster {
    /// Starts a local cluster: etcd, kube-apiserver and, if `opts.controller_manager`,
    /// kube-controller-manager, each on free loopback ports in a fresh temp dir.
    ///
    /// Provisions the binaries first if needed (see [`super::kube_binaries`]; a cold build takes
    /// minutes). Processes are spawned on the calling thread and die with it: call this from the
    /// test's own thread or runtime, never from `spawn_blocking`.
    pub async fn start(opts: KubeClusterOptions) -> Result<KubeCluster> {
        let (local, endpoint) = LocalCluster::start(&opts).await?;
        Ok(KubeCluster {
            client: KubeClient::new(endpoint)?,
            kubeconfig: local.kubeconfig_path(),
            local: Some(local),
        })
    }

    /// Uses the cluster of the kubeconfig at `path` (no processes are started).
    pub fn external(path: &Path) -> Result<KubeCluster> {
        Ok(KubeCluster {
            client: KubeClient::from_kubeconfig(path)?,
            kubeconfig: path.to_path_buf(),
            local: None,
        })
    }

    /// The cluster named by `$ISOBAR_E2E_KUBECONFIG` if set, else [`KubeCluster::start`].
    pub async fn from_env_or_start(opts: KubeClusterOptions) -> Result<KubeCluster> {
        match std::env::var_os(E2E_KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Self::external(Path::new(&path)),
            None => Self::start(opts).await,
        }
    }

    /// Whether this is an existing cluster from a kubeconfig (not started by the harness).
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// A client with the admin credentials.
    pub fn client(&self) -> &KubeClient {
        &self.client
    }

    /// The admin kubeconfig (for a local cluster, everything is embedded in it).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT` for a local cluster.
    pub fn server_url(&self) -> &str {
        &self.client.endpoint().server_url
    }

    /// The CA that signed the API server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.client.endpoint().ca_pem
    }

    /// The admin credentials (a `system:masters` client certificate for a local cluster).
    pub fn admin_identity(&self) -> &KubeAuth {
        &self.client.endpoint().auth
    }

    /// The static admin bearer token, if started with `static_admin_token`.
    pub fn admin_token(&self) -> Option<&str> {
        self.local.as_ref().and_then(|l| l.admin_token.as_deref())
    }

    /// The local cluster's temp dir (PKI, etcd data, `logs/`); `None` for an external cluster.
    pub fn work_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir())
    }

    /// Writes a kubeconfig for this server that authenticates with bearer `token` (so a
    /// process using it has exactly the permissions RBAC grants that identity).
    pub fn write_kubeconfig_for_token(&self, path: &Path, token: &str) -> Result<()> {
        KubeEndpoint {
            auth: KubeAuth::Token(token.to_string()),
            ..self.client.endpoint().clone()
        }
        .write_kubeconfig(path)
    }

    /// Stops kube-apiserver (etcd and the controller-manager keep running). Blocking (≤ 5 s).
    pub fn stop_apiserver(&mut self) -> Result<()> {
        self.local_mut("stop_apiserver")?.stop_apiserver()
    }

    /// Starts kube-apiserver again on the same port with the same certificates and etcd, and
    /// waits for `/readyz` = ok.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        let client = self.client.clone();
        self.local_mut("start_apiserver")?
            .start_apiserver(&client)
            .await
    }

    /// The last `n` log lines of each process (empty for an external cluster).
    pub fn log_tails(&self, n: usize) -> String {
        self.local
            .as_ref()
            .map(|l| l.log_tails(n))
            .unwrap_or_default()
    }

    fn local_mut(&mut self, what: &str) -> Result<&mut LocalCluster> {
        self.local.as_mut().ok_or_else(|| {
            Error::Invalid(format!(
                "{what} is not supported on an external cluster (${E2E_KUBECONFIG_ENV})"
            ))
        })
    }
}
