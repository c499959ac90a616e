//! `isobar serve` as a running process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::CertPaths;
use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::http::{send, RequestSpec, Response};
use crate::process::ChildProcess;
use crate::wait::wait_for_async;

/// How long isobar may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `isobar serve` reads objects from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsobarSource {
    /// `--manifests DIR`: a directory of YAML.
    Manifests(PathBuf),
    /// `--kubeconfig FILE`: a Kubernetes API server.
    Kubeconfig(PathBuf),
}

impl IsobarSource {
    fn args(&self) -> [&std::ffi::OsStr; 2] {
        match self {
            IsobarSource::Manifests(dir) => ["--manifests".as_ref(), dir.as_os_str()],
            IsobarSource::Kubeconfig(file) => ["--kubeconfig".as_ref(), file.as_os_str()],
        }
    }
}

/// How to run `isobar serve`.
#[derive(Debug, Clone)]
pub struct IsobarOptions {
    /// The isobar binary (e.g. `env!("CARGO_BIN_EXE_isobar")`).
    pub bin: PathBuf,
    /// `--manifests DIR` or `--kubeconfig FILE`
    pub source: IsobarSource,
    /// Certificates for mTLS xDS; `None` runs with `--insecure`.
    pub certs: Option<CertPaths>,
    /// `--xds-port` (on 127.0.0.1)
    pub xds_port: u16,
    /// `--http-port`: `/healthz`, `/readyz`, `/metrics`
    pub http_port: u16,
    /// `--debug-http-port`: `/debug/*`
    pub debug_port: u16,
    /// `--envoy-service-http-port`: Envoy's plain HTTP listener
    pub envoy_http_port: u16,
    /// `--envoy-service-https-port`: Envoy's HTTPS listener
    pub envoy_https_port: u16,
    /// Where logs go.
    pub work_dir: PathBuf,
    /// Further arguments, appended verbatim.
    pub extra_args: Vec<String>,
}

/// A running `isobar serve`; dropping it stops the process.
#[derive(Debug)]
pub struct Isobar {
    process: ChildProcess,
    opts: IsobarOptions,
    xds_addr: SocketAddr,
    http_addr: SocketAddr,
    debug_addr: SocketAddr,
}

impl Isobar {
    /// Starts `isobar serve` and waits (30 s) until `/healthz` answers 200; fails early with
    /// the log tail if the process exits.
    ///
    /// isobar binds its xDS port before its ops port, so a healthy `/healthz` means the xDS port
    /// listens. The xDS port itself is not probed: a bare TCP connect counts as a refused TLS
    /// handshake in isobar's `tls_handshake_failures`, which tests assert on.
    pub async fn start(opts: IsobarOptions) -> Result<Isobar> {
        let process = Self::spawn(&opts)?;
        let isobar = Isobar {
            process,
            xds_addr: SocketAddr::from(([127, 0, 0, 1], opts.xds_port)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], opts.http_port)),
            debug_addr: SocketAddr::from(([127, 0, 0, 1], opts.debug_port)),
            opts,
        };
        isobar.wait_healthy(READY_TIMEOUT).await?;
        Ok(isobar)
    }

    /// Kills the process at once (SIGKILL, like a crash: no graceful shutdown) and starts
    /// `isobar serve` again with the same options (same ports, certificates and source), then
    /// waits until `/healthz` answers 200. Logs of the new process go to `isobar-N.*.log`.
    /// A process that already exited (e.g. after [`ChildProcess::terminate`]) is just started
    /// again.
    pub async fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.process.kill_now()?;
        }
        self.process = Self::spawn(&self.opts)?;
        self.wait_healthy(READY_TIMEOUT).await
    }

    /// The options it was started with.
    pub fn options(&self) -> &IsobarOptions {
        &self.opts
    }

    fn spawn(opts: &IsobarOptions) -> Result<ChildProcess> {
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("serve")
            .args(opts.source.args())
            .args(["--xds-address", "127.0.0.1"])
            .args(["--xds-port", &opts.xds_port.to_string()]);
        match &opts.certs {
            Some(c) => {
                cmd.arg("--ca-file")
                    .arg(&c.ca_cert)
                    .arg("--cert-file")
                    .arg(&c.isobar_cert)
                    .arg("--key-file")
                    .arg(&c.isobar_key);
            }
            None => {
                cmd.arg("--insecure");
            }
        }
        cmd.args(["--envoy-service-http-address", "127.0.0.1"])
            .args([
                "--envoy-service-http-port",
                &opts.envoy_http_port.to_string(),
            ])
            .args(["--envoy-service-https-address", "127.0.0.1"])
            .args([
                "--envoy-service-https-port",
                &opts.envoy_https_port.to_string(),
            ])
            .args(["--http-address", "127.0.0.1"])
            .args(["--http-port", &opts.http_port.to_string()])
            .args(["--debug-http-address", "127.0.0.1"])
            .args(["--debug-http-port", &opts.debug_port.to_string()])
            .args(&opts.extra_args);
        if !opts.bin.is_file() {
            return Err(Error::MissingComponent {
                what: format!("the isobar binary {}", opts.bin.display()),
                how: "build it with `cargo build --bin isobar`".into(),
            });
        }
        ChildProcess::spawn_in(Runtime::from_env()?, "isobar", cmd, &opts.work_dir)
    }

    /// Polls until `/healthz` answers 200 (the process serves), failing at `timeout` or when it
    /// has exited.
    async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        wait_for_async(timeout, "isobar's /healthz to answer 200", || async {
            self.process.ensure_running()?;
            Ok(match self.request("/healthz").await {
                Ok(r) if r.status == 200 => Some(()),
                _ => None,
            })
        })
        .await
        .map_err(|e| e.with_log(self.log_tail(40)))
    }

    /// The xDS address (127.0.0.1:xds_port).
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// The health and metrics address (127.0.0.1:http_port): `/healthz`, `/readyz`, `/metrics`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The debug address (127.0.0.1:debug_port): `/debug/*`.
    pub fn debug_addr(&self) -> SocketAddr {
        self.debug_addr
    }

    /// Where isobar serves `path`: `/debug/*` on the debug address, the rest on the health and
    /// metrics address.
    pub fn addr_for(&self, path: &str) -> SocketAddr {
        if path.starts_with("/debug/") {
            self.debug_addr
        } else {
            self.http_addr
        }
    }

    /// `GET path` on the address that serves it ([`Isobar::addr_for`]), any status.
    pub async fn request(&self, path: &str) -> Result<Response> {
        let addr = self.addr_for(path);
        send(&RequestSpec::get(addr, &addr.to_string(), path)).await
    }

    /// `GET path` on the address that serves it; non-2xx is an error.
    pub async fn get(&self, path: &str) -> Result<String> {
        let r = self.request(path).await?;
        if !(200..300).contains(&r.status) {
            return Err(Error::Http(format!(
                "isobar GET {path}: status {}: {}",
                r.status,
                r.text()
            )));
        }
        Ok(r.text())
    }

    /// Polls until `/readyz` answers 200 (the first configuration is built), failing at `deadline`
    /// or when the process has exited.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<()> {
        wait_for_async(deadline, "isobar's /readyz to answer 200", || async {
            self.process.ensure_running()?;
            Ok(self
                .request("/readyz")
                .await
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ()))
        })
        .await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        self.get("/metrics").await
    }

    /// The last `n` lines of isobar's output.
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// The underlying process.
    pub fn process(&self) -> &ChildProcess {
        &self.process
    }

    /// The process's log directory.
    pub fn log_dir(&self) -> Option<&Path> {
        self.process.stdout_path().parent()
    }
}
