//! A running Envoy process and its admin endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::wait::wait_for_async;

/// How long Envoy may take to bring its admin endpoint up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinguishes Envoys started by this process (for `--base-id`).
static STARTED: AtomicU32 = AtomicU32::new(0);

/// How to run Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The Envoy binary (see [`super::envoy_binary`]).
    pub binary: PathBuf,
    /// The bootstrap file (JSON or YAML); its admin port should be 0.
    pub bootstrap: PathBuf,
    /// Where logs and the admin address file go.
    pub work_dir: PathBuf,
    /// Envoy's `--log-level` (e.g. `info`, `debug`).
    pub log_level: String,
    /// What Envoy does with fields of xDS resources it does not know.
    pub unknown_fields: UnknownFields,
    /// Further arguments appended to the command line.
    pub extra_args: Vec<String>,
}

impl EnvoyOptions {
    /// Options with log level `info`, unknown fields ignored as deployed, and no extra arguments.
    pub fn new(binary: PathBuf, bootstrap: PathBuf, work_dir: PathBuf) -> EnvoyOptions {
        EnvoyOptions {
            binary,
            bootstrap,
            work_dir,
            log_level: "info".into(),
            unknown_fields: UnknownFields::Ignore,
            extra_args: Vec::new(),
        }
    }
}

/// What Envoy does with fields of dynamic (xDS) configuration that its version does not know.
/// By default Envoy warns about them and counts them, for which it walks every field of every
/// resource it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    /// `--ignore-unknown-dynamic-fields`, as `deploy/` runs Envoy: no walk, so Envoy applies a
    /// large update sooner (BENCHMARKS.md has the figures), and an unknown field goes unnoticed.
    /// Envoy still validates every field it knows.
    Ignore,
    /// `--reject-unknown-dynamic-fields`: an unknown field makes Envoy refuse the update. The
    /// conformance suite runs this way, so each Envoy version it covers proves that isobar sends
    /// nothing `Ignore` would pass over.
    Reject,
}

impl UnknownFields {
    /// Envoy's command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            UnknownFields::Ignore => "--ignore-unknown-dynamic-fields",
            UnknownFields::Reject => "--reject-unknown-dynamic-fields",
        }
    }
}

/// A running Envoy; dropping it stops the process.
#[derive(Debug)]
pub struct Envoy {
    pub(super) process: ChildProcess,
    pub(super) admin: SocketAddr,
    work_dir: PathBuf,
}

impl Envoy {
    /// Starts Envoy and waits (30 s) until its admin endpoint answers.
    ///
    /// The admin port is learned from `--admin-address-path`. Each Envoy gets its own
    /// `--base-id` so parallel Envoys never share hot-restart shared memory.
    pub async fn start(opts: EnvoyOptions) -> Result<Envoy> {
        std::fs::create_dir_all(&opts.work_dir)
            .map_err(|e| Error::io(format!("creating work dir {}", opts.work_dir.display()), e))?;
        let admin_file = opts.work_dir.join("admin-address");
        // A stale file from an earlier run would point at a dead port.
        let _ = std::fs::remove_file(&admin_file);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let base_id = (std::process::id() % 100_000) * 1000 + n % 1000;

        let mut cmd = Command::new(&opts.binary);
        cmd.arg("-c")
            .arg(&opts.bootstrap)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--log-level", &opts.log_level])
            .arg(opts.unknown_fields.flag())
            .args(["--base-id", &base_id.to_string()])
            .args(&opts.extra_args);
        let process = ChildProcess::spawn_in(Runtime::from_env()?, "envoy", cmd, &opts.work_dir)?;

        let admin = wait_for_async(ADMIN_TIMEOUT, "Envoy's admin endpoint to answer", || {
            let process = &process;
            let admin_file = &admin_file;
            async move {
                process.ensure_running()?;
                let Some(addr) = read_admin_address(admin_file) else {
                    return Ok(None);
                };
                Ok(super::admin::get(addr, "/ready").await.ok().map(|_| addr))
            }
        })
        .await
        .map_err(|e| e.with_log(process.log_tail(30)))?;
        tracing::debug!(pid = process.pid(), %admin, "Envoy admin up");
        Ok(Envoy {
            process,
            admin,
            work_dir: opts.work_dir,
        })
    }

    /// The admin endpoint's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The admin endpoint as `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The last `n` lines of Envoy's output.
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// The work directory (logs, admin address file).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The underlying process (e.g. to kill it explicitly).
    pub fn process(&self) -> &ChildProcess {
        &self.process
    }

    /// Waits until `GET /ready` answers 200 `LIVE` (after the initial LDS/CDS fetch or its timeout).
    pub async fn wait_live(&self, timeout: Duration) -> Result<()> {
        wait_for_async(timeout, "Envoy /ready to say LIVE", || async {
            self.process.ensure_running()?;
            Ok(match super::admin::get(self.admin, "/ready").await {
                Ok(r) if r.status == 200 && r.text().trim() == "LIVE" => Some(()),
                _ => None,
            })
        })
        .await
        .map_err(|e| e.with_log(self.log_tail(30)))
    }
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
