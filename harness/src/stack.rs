//! The whole system on loopback: isobar (mTLS xDS) + Envoy, in a temp work dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::echo::EchoBackend;
use crate::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions, UnknownFields};
use crate::error::{Error, Result};
use crate::isobar::{
    add_xds_endpoints, certgen, write_bootstrap, BootstrapArgs, CertPaths, Isobar, IsobarOptions,
    IsobarSource, XdsApi,
};
use crate::ports::free_port;
use crate::wait::wait_for_async;

/// How long Envoy may take to fetch its initial LDS/CDS and go LIVE.
const LIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the stack runs.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The isobar binary.
    pub isobar_bin: PathBuf,
    /// The echo binary (for [`Stack::start_echo`]).
    pub echo_bin: PathBuf,
    /// Where isobar reads objects: a manifests directory or a kubeconfig.
    pub source: IsobarSource,
    /// Further `isobar serve` arguments, appended verbatim.
    pub isobar_args: Vec<String>,
    /// Envoy version; `None` uses [`default_envoy_version`].
    pub envoy_version: Option<String>,
    /// Bootstrap Envoy with `--resources-dir` (the `sds` dir of the work dir): its client
    /// certificate and CA become file-based SDS resources it reloads when the files in the
    /// certificates' directory are replaced by a rename.
    pub envoy_sds_files: bool,
    /// State-of-the-world or delta ADS for the stack's Envoy; `None` takes `$ISOBAR_XDS_API`
    /// ([`XdsApi::from_env`]: unset is SotW, an unknown value fails [`Stack::start`]).
    pub xds_api: Option<XdsApi>,
    /// How many isobar processes serve the stack (at least 1): the first is [`Stack::isobar`],
    /// the others [`Stack::replicas`], each with the same source, certificates and arguments on
    /// ports of its own. Envoy's `isobar` cluster lists every one's xDS address.
    pub isobar_replicas: usize,
    /// What the stack's Envoy does with fields it does not know (as deployed: ignores them).
    pub envoy_unknown_fields: UnknownFields,
}

/// The ports the stack uses, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct StackPorts {
    /// isobar's xDS port.
    pub xds: u16,
    /// isobar's health and metrics port.
    pub isobar_http: u16,
    /// isobar's debug port (`/debug/*`).
    pub isobar_debug: u16,
    /// Envoy's HTTP listener.
    pub envoy_http: u16,
    /// Envoy's HTTPS listener.
    pub envoy_https: u16,
}

/// A running isobar + Envoy pair. Fields drop in order: Envoy, isobar (and its replicas), then the
/// work dir.
#[derive(Debug)]
pub struct Stack {
    /// The Envoy data plane.
    pub envoy: Envoy,
    /// The controller.
    pub isobar: Isobar,
    /// Further isobar processes Envoy may connect to ([`StackOptions::isobar_replicas`]).
    pub replicas: Vec<Isobar>,
    certs: CertPaths,
    ports: StackPorts,
    xds_api: XdsApi,
    echo_bin: PathBuf,
    work_dir: tempfile::TempDir,
}

/// What Envoy logs when isobar ends its ADS stream with gRPC status 12, UNIMPLEMENTED (e.g. delta
/// ADS asked of an isobar without it).
const ADS_UNIMPLEMENTED: &str = "gRPC config stream to isobar closed: 12,";

/// Waits until Envoy's `/ready` says `LIVE`. Fails at once if isobar refused Envoy's ADS stream
/// as UNIMPLEMENTED: Envoy would retry that until its initial fetch timeout and go LIVE with
/// nothing, and every test would then fail later, slowly and obscurely.
async fn wait_envoy_live(envoy: &Envoy, xds_api: XdsApi) -> Result<()> {
    let what = format!("Envoy /ready to say LIVE (Envoy bootstrapped with {xds_api} ADS)");
    wait_for_async(LIVE_TIMEOUT, &what, || async {
        envoy.process().ensure_running()?;
        if let Some(line) = envoy
            .log_tail(100)
            .lines()
            .find(|l| l.contains(ADS_UNIMPLEMENTED))
        {
            // Envoy's message without its log prefix (`[time][thread][level][logger] [file:line] `).
            let message = line.rsplit_once("] ").map_or(line, |(_, m)| m).trim();
            return Err(Error::Xds(format!(
                "isobar answered Envoy's {xds_api} ADS stream with UNIMPLEMENTED: {message}"
            )));
        }
        Ok(match envoy.admin_request("/ready").await {
            Ok(r) if r.status == 200 && r.text().trim() == "LIVE" => Some(()),
            _ => None,
        })
    })
    .await
}

impl StackOptions {
    /// isobar serving the YAML in `dir`, default Envoy version.
    pub fn manifests(isobar_bin: PathBuf, echo_bin: PathBuf, dir: PathBuf) -> StackOptions {
        StackOptions {
            isobar_bin,
            echo_bin,
            source: IsobarSource::Manifests(dir),
            isobar_args: Vec::new(),
            envoy_version: None,
            envoy_sds_files: false,
            xds_api: None,
            isobar_replicas: 1,
            envoy_unknown_fields: UnknownFields::Ignore,
        }
    }
}

impl Stack {
    /// certgen → free ports → isobar (ready) → bootstrap → Envoy (LIVE).
    ///
    /// Set `ISOBAR_KEEP_WORK_DIR=1` to keep the work dir (logs, bootstrap) after the test.
    pub async fn start(opts: StackOptions) -> Result<Stack> {
        let xds_api = match opts.xds_api {
            Some(api) => api,
            None => XdsApi::from_env()?,
        };
        let mut work_dir = tempfile::Builder::new()
            .prefix("isobar-stack-")
            .tempdir()
            .map_err(|e| Error::io("creating the stack's work dir", e))?;
        if std::env::var_os("ISOBAR_KEEP_WORK_DIR").is_some() {
            work_dir.disable_cleanup(true);
            tracing::info!(dir = %work_dir.path().display(), "keeping the stack's work dir");
        }
        let work = work_dir.path().to_path_buf();

        let version = opts
            .envoy_version
            .clone()
            .unwrap_or_else(default_envoy_version);
        // Provisioning blocks (pip, hashing); the child processes themselves are spawned on
        // this thread so their parent-death signal is tied to the test thread.
        let envoy_bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
            .await
            .map_err(|e| Error::Invalid(format!("Envoy provisioning task failed: {e}")))??;

        let certs = certgen(&opts.isobar_bin, &work.join("certs"))?;
        let ports = StackPorts {
            xds: free_port()?,
            isobar_http: free_port()?,
            isobar_debug: free_port()?,
            envoy_http: free_port()?,
            envoy_https: free_port()?,
        };
        let isobar = Isobar::start(IsobarOptions {
            bin: opts.isobar_bin.clone(),
            source: opts.source.clone(),
            certs: Some(certs.clone()),
            xds_port: ports.xds,
            http_port: ports.isobar_http,
            debug_port: ports.isobar_debug,
            envoy_http_port: ports.envoy_http,
            envoy_https_port: ports.envoy_https,
            work_dir: work.clone(),
            extra_args: opts.isobar_args.clone(),
        })
        .await?;
        let mut replicas = Vec::new();
        for _ in 1..opts.isobar_replicas {
            let mut replica = isobar.options().clone();
            replica.xds_port = free_port()?;
            replica.http_port = free_port()?;
            replica.debug_port = free_port()?;
            replicas.push(Isobar::start(replica).await?);
        }

        let bootstrap = work.join("envoy-bootstrap.json");
        let mut bootstrap_args = BootstrapArgs::mtls(ports.xds, &certs);
        bootstrap_args.xds_api = xds_api;
        if opts.envoy_sds_files {
            bootstrap_args.resources_dir = Some(work.join("sds"));
        }
        write_bootstrap(&opts.isobar_bin, &bootstrap, &bootstrap_args)?;
        if !replicas.is_empty() {
            let ports: Vec<u16> = replicas.iter().map(|r| r.xds_addr().port()).collect();
            add_xds_endpoints(&bootstrap, "127.0.0.1", &ports)?;
        }
        let mut envoy_opts = EnvoyOptions::new(envoy_bin, bootstrap, work.join("envoy"));
        envoy_opts.unknown_fields = opts.envoy_unknown_fields;
        let envoy = Envoy::start(envoy_opts).await?;
        wait_envoy_live(&envoy, xds_api)
            .await
            .map_err(|e| e.with_log(format!("{}\n{}", envoy.log_tail(30), isobar.log_tail(30))))?;
        Ok(Stack {
            envoy,
            isobar,
            replicas,
            certs,
            ports,
            xds_api,
            echo_bin: opts.echo_bin,
            work_dir,
        })
    }

    /// Envoy's HTTP listener address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.envoy_http))
    }

    /// Envoy's HTTPS listener address.
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.envoy_https))
    }

    /// All ports.
    pub fn ports(&self) -> StackPorts {
        self.ports
    }

    /// The xDS protocol variant the stack's Envoy speaks.
    pub fn xds_api(&self) -> XdsApi {
        self.xds_api
    }

    /// `isobar bootstrap` arguments like the stack's Envoy's (mTLS to its isobar, its xDS API
    /// variant), for further Envoys.
    pub fn bootstrap_args(&self) -> BootstrapArgs {
        let mut args = BootstrapArgs::mtls(self.ports.xds, &self.certs);
        args.xds_api = self.xds_api;
        args
    }

    /// The certificates from certgen.
    pub fn certs(&self) -> &CertPaths {
        &self.certs
    }

    /// The temp work dir (logs, certs, bootstrap).
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// Starts an echo backend logging into the work dir.
    pub fn start_echo(&self, name: &str) -> Result<EchoBackend> {
        EchoBackend::start(&self.echo_bin, name, &self.work_dir.path().join("echo"))
    }

    /// Kills isobar (SIGKILL) and starts it again on the same ports with the same certificates
    /// and source; Envoy is left alone (it reconnects by itself).
    pub async fn restart_isobar(&mut self) -> Result<()> {
        self.isobar.restart().await
    }

    /// Starts another isobar like the stack's (same source, certificates and Envoy listener
    /// ports, `extra_args` appended) on fresh xDS, health and debug ports, e.g. a second replica for
    /// leader election. No Envoy connects to it.
    pub async fn start_isobar_replica(&self, extra_args: &[String]) -> Result<Isobar> {
        let mut opts = self.isobar.options().clone();
        opts.xds_port = free_port()?;
        opts.http_port = free_port()?;
        opts.debug_port = free_port()?;
        opts.extra_args.extend(extra_args.iter().cloned());
        Isobar::start(opts).await
    }

    /// Envoy's and isobar's log tails, for assertion messages.
    pub fn log_tails(&self, n: usize) -> String {
        format!("{}\n{}", self.envoy.log_tail(n), self.isobar.log_tail(n))
    }
}
