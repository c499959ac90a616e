//! A local cluster: etcd, kube-apiserver and optionally kube-controller-manager as child
//! processes on 127.0.0.1, with free ports and everything in one temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::binaries::{kube_binaries, KubeBinaries};
use super::client::KubeClient;
use super::flags::{apiserver_args, has_insecure_port_flag, kcm_args};
use super::kubeconfig::{KubeAuth, KubeEndpoint};
use super::pki::ClusterPki;
use crate::error::{Error, Result};
use crate::http::{send, RequestSpec};
use crate::ports::free_port;
use crate::process::ChildProcess;
use crate::wait::wait_for_async;

/// How long etcd may take to report healthy.
const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long kube-apiserver may take to report `/readyz` = ok (5–6 s alone on 2 cores).
const APISERVER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long kube-controller-manager may take to create the `default` service account.
const KCM_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts at starting a process whose free port was taken by someone else meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// The issuer of service-account tokens (and, by default, their audience).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How to start a local cluster.
#[derive(Debug, Clone, Default)]
pub struct KubeClusterOptions {
    /// Also run kube-controller-manager (namespace deletion, garbage collection, service
    /// accounts and their token secrets).
    pub controller_manager: bool,
    /// Also accept a static admin bearer token (`--token-auth-file`), see
    /// [`super::KubeCluster::admin_token`].
    pub static_admin_token: bool,
    /// Further kube-apiserver arguments.
    pub extra_apiserver_args: Vec<String>,
}

/// The processes and files of a local cluster.
///
/// Dropping it kills the controller-manager and the apiserver at once (their graceful
/// shutdown is slow), then stops etcd (SIGTERM), then removes the temp dir.
pub(crate) struct LocalCluster {
    kcm: Option<ChildProcess>,
    apiserver: Option<ChildProcess>,
    etcd: ChildProcess,
    apiserver_args: Vec<String>,
    bins: KubeBinaries,
    pub(crate) admin_token: Option<String>,
    dir: TempDir,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for p in [self.kcm.take(), self.apiserver.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = p.kill_now() {
                tracing::warn!(name = p.name(), error = %e, "could not kill");
            }
        }
        // etcd, then the temp dir, drop after this in field order.
    }
}

impl LocalCluster {
    /// Starts etcd and kube-apiserver (and kube-controller-manager if asked), waits until they
    /// are ready, writes the admin kubeconfig to `<dir>/admin.kubeconfig`, and returns the
    /// cluster with its admin endpoint.
    pub(crate) async fn start(opts: &KubeClusterOptions) -> Result<(LocalCluster, KubeEndpoint)> {
        let bins = tokio::task::spawn_blocking(kube_binaries)
            .await
            .map_err(|e| Error::Invalid(format!("provisioning task failed: {e}")))??;
        let dir = tempfile::Builder::new()
            .prefix("isobar-kube-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster's temp dir", e))?;
        let pki = ClusterPki::generate(&dir.path().join("pki"))?;
        let etcd = start_etcd(&bins.etcd, dir.path()).await?;
        let etcd_url = etcd.1.clone();
        let admin_token = opts.static_admin_token.then(random_token).transpose()?;
        if let Some(t) = &admin_token {
            super::pki::write(
                &dir.path().join("pki/tokens.csv"),
                &format!("{t},admin,admin,system:masters\n"),
                true,
            )?;
        }
        let mut cluster = LocalCluster {
            kcm: None,
            apiserver: None,
            etcd: etcd.0,
            apiserver_args: Vec::new(),
            bins,
            admin_token,
            dir,
        };
        let endpoint = KubeEndpoint {
            server_url: String::new(),
            ca_pem: pki.ca_pem.clone(),
            auth: KubeAuth::ClientCert {
                cert_pem: pki.admin_cert_pem.clone(),
                key_pem: pki.admin_key_pem.clone(),
            },
        };
        let endpoint = cluster
            .first_apiserver_start(&pki, &etcd_url, opts, endpoint)
            .await?;
        let kubeconfig = cluster.kubeconfig_path();
        endpoint.write_kubeconfig(&kubeconfig)?;
        if opts.controller_manager {
            cluster.start_kcm(&pki, &endpoint).await?;
        }
        Ok((cluster, endpoint))
    }

    /// `<dir>/admin.kubeconfig`.
    pub(crate) fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The temp dir holding PKI, data and logs.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn first_apiserver_start(
        &mut self,
        pki: &ClusterPki,
        etcd_url: &str,
        opts: &KubeClusterOptions,
        mut endpoint: KubeEndpoint,
    ) -> Result<KubeEndpoint> {
        let insecure_port = has_insecure_port_flag(&self.bins.apiserver).await;
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            self.apiserver_args =
                apiserver_args(self.dir.path(), pki, etcd_url, port, opts, insecure_port);
            endpoint.server_url = format!("https://127.0.0.1:{port}");
            match self
                .start_apiserver(&KubeClient::new(endpoint.clone())?)
                .await
            {
                Ok(()) => return Ok(endpoint),
                Err(e) if is_port_clash(&e) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Invalid("no apiserver attempt".into())))
    }

    /// Spawns kube-apiserver with the arguments of the first start (same port, certs, etcd)
    /// and waits for `/readyz` = ok.
    pub(crate) async fn start_apiserver(&mut self, admin: &KubeClient) -> Result<()> {
        if self.apiserver.is_some() {
            return Err(Error::Invalid("kube-apiserver is already running".into()));
        }
        let mut cmd = Command::new(&self.bins.apiserver);
        cmd.args(&self.apiserver_args);
        let process = ChildProcess::spawn("kube-apiserver", cmd, &self.dir.path().join("logs"))?;
        let ready = wait_for_async(
            APISERVER_TIMEOUT,
            "kube-apiserver /readyz to be ok",
            || async {
                match admin.raw("GET", "/readyz").await {
                    Ok((200, body)) if body.trim() == "ok" => Ok(Some(())),
                    _ => process.ensure_running().map(|_| None),
                }
            },
        )
        .await;
        match ready {
            Ok(()) => {
                self.apiserver = Some(process);
                Ok(())
            }
            Err(e) => Err(e.with_log(process.log_tail(30))),
        }
    }

    /// Kills kube-apiserver (SIGKILL: its graceful shutdown takes over 30 s) and reaps it.
    pub(crate) fn stop_apiserver(&mut self) -> Result<()> {
        match self.apiserver.take() {
            Some(p) => p.kill_now().map(|_| ()),
            None => Err(Error::Invalid("kube-apiserver is not running".into())),
        }
    }

    async fn start_kcm(&mut self, pki: &ClusterPki, endpoint: &KubeEndpoint) -> Result<()> {
        let admin = KubeClient::new(endpoint.clone())?;
        let kubeconfig = self.kubeconfig_path();
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut cmd = Command::new(&self.bins.controller_manager);
            cmd.args(kcm_args(self.dir.path(), pki, &kubeconfig, free_port()?));
            let process = ChildProcess::spawn(
                "kube-controller-manager",
                cmd,
                &self.dir.path().join("logs"),
            )?;
            let ready = wait_for_async(
                KCM_TIMEOUT,
                "kube-controller-manager to create ServiceAccount default/default",
                || async {
                    let sa = admin
                        .get_json("/api/v1/namespaces/default/serviceaccounts/default")
                        .await;
                    match sa {
                        Ok(Some(_)) => Ok(Some(())),
                        _ => process.ensure_running().map(|_| None),
                    }
                },
            )
            .await
            .map_err(|e| e.with_log(process.log_tail(30)));
            match ready {
                Ok(()) => {
                    self.kcm = Some(process);
                    return Ok(());
                }
                Err(e) if is_port_clash(&e) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Invalid("no controller-manager attempt".into())))
    }

    /// Log tails of all processes.
    pub(crate) fn log_tails(&self, n: usize) -> String {
        [self.kcm.as_ref(), self.apiserver.as_ref(), Some(&self.etcd)]
            .into_iter()
            .flatten()
            .map(|p| p.log_tail(n))
            .collect()
    }
}

/// Starts etcd on two free loopback ports and waits for `/health`; returns it and its client URL.
async fn start_etcd(etcd: &Path, dir: &Path) -> Result<(ChildProcess, String)> {
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data = dir.join("etcd-data");
        let _ = std::fs::remove_dir_all(&data);
        let mut cmd = Command::new(etcd);
        cmd.args(["--name", "test", "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg(format!("--initial-cluster=test={peer_url}"))
            .args(["--unsafe-no-fsync=true", "--quota-backend-bytes=2147483648"]);
        let process = ChildProcess::spawn("etcd", cmd, &dir.join("logs"))?;
        let addr = ([127, 0, 0, 1], client).into();
        let healthy = wait_for_async(ETCD_TIMEOUT, "etcd /health", || async {
            let req = RequestSpec {
                timeout: Duration::from_secs(2),
                ..RequestSpec::get(addr, "127.0.0.1", "/health")
            };
            match send(&req).await {
                Ok(r) if r.status == 200 && r.json()["health"] == "true" => Ok(Some(())),
                _ => process.ensure_running().map(|_| None),
            }
        })
        .await
        .map_err(|e| e.with_log(process.log_tail(30)));
        match healthy {
            Ok(()) => return Ok((process, client_url)),
            Err(e) if is_port_clash(&e) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Invalid("no etcd attempt".into())))
}

/// Whether a start failed because another process took the port first.
fn is_port_clash(e: &Error) -> bool {
    matches!(e, Error::Process { log, .. } if log.contains("address already in use"))
}

/// 24 random bytes, hex.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|e| Error::Invalid(format!("random token: {e:?}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
