//! A child process that cannot outlive the test: logs to files, dies with its parent,
//! and is terminated (SIGTERM, then SIGKILL) and reaped when dropped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::container::{self, ContainerSpec, RunningContainer, Runtime};
use crate::error::{Error, Result};

/// How long a process gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A spawned process whose stdout and stderr go to `<work_dir>/<name>.stdout.log` / `.stderr.log`.
///
/// The child runs in its own process group (so signals reach its children too) and has
/// `PR_SET_PDEATHSIG(SIGKILL)`. Note that the kernel delivers the death signal when the
/// *thread* that spawned the child exits: spawn from a long-lived thread (the test's own
/// thread), not from a `spawn_blocking` pool thread.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Mutex<Child>,
    pid: u32,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    /// Set when the program runs in a container ([`Runtime::Container`]); `child` is then a
    /// placeholder that has already exited.
    container: Option<RunningContainer>,
}

impl ChildProcess {
    /// Runs `cmd` as [`ChildProcess::spawn`] does, in `runtime`: a container runs the same program
    /// with the same arguments and environment, its output in the same log files.
    pub fn spawn_in(
        runtime: Runtime,
        name: &str,
        cmd: Command,
        work_dir: &Path,
    ) -> Result<ChildProcess> {
        match runtime {
            Runtime::Process => ChildProcess::spawn(name, cmd, work_dir),
            Runtime::Container => ChildProcess::spawn_container(name, &cmd, work_dir),
        }
    }

    fn spawn_container(name: &str, cmd: &Command, work_dir: &Path) -> Result<ChildProcess> {
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let program = PathBuf::from(cmd.get_program());
        let image = container::block({
            let program = program.clone();
            async move { container::image::for_binary(&program).await }
        })??;
        let spec = ContainerSpec {
            image,
            entrypoint: None,
            command: std::iter::once(text(program.as_os_str()))
                .chain(cmd.get_args().map(text))
                .collect(),
            env: cmd
                .get_envs()
                .filter_map(|(k, v)| Some((text(k), text(v?))))
                .collect(),
            mounts: container::shared_dirs(work_dir),
            user: Some("0".into()),
        };
        ChildProcess::run_container(name, spec, work_dir)
    }

    /// Runs a container of `spec` as a [`ChildProcess`]: its output in `<work_dir>/<name>.*.log`,
    /// stopped and removed when dropped.
    pub fn run_container(name: &str, spec: ContainerSpec, work_dir: &Path) -> Result<ChildProcess> {
        let (stdout_log, stderr_log, stdout, stderr) = log_files(work_dir, name)?;
        let running = RunningContainer::start(spec, stdout, stderr)?;
        let pid = running.host_pid.load(std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(name, id = %running.id, pid, "container started");
        // A child that has exited at once stands in for the process: every method asks the
        // container instead.
        let placeholder = Command::new("true")
            .spawn()
            .map_err(|e| Error::io("spawning a placeholder", e))?;
        Ok(ChildProcess {
            name: name.to_string(),
            pid,
            child: Mutex::new(placeholder),
            stdout_log,
            stderr_log,
            container: Some(running),
        })
    }

    /// Restarts a container (stop with the grace period, then start): the same container, a new
    /// process, as a kubelet restarts a pod's container. Processes have no such thing: an error.
    pub fn restart_container(&self) -> Result<()> {
        let Some(c) = &self.container else {
            return Err(Error::io(
                format!("restarting {}: not a container", self.name),
                std::io::ErrorKind::Unsupported.into(),
            ));
        };
        c.stop(TERM_GRACE)?;
        let append = |p: &Path| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(p)
                .map_err(|e| Error::io(format!("opening {}", p.display()), e))
        };
        c.start_again(append(&self.stdout_log)?, append(&self.stderr_log)?)?;
        Ok(())
    }

    /// Spawns `cmd` (stdin closed, output to log files in `work_dir`). `name` labels the
    /// log files and error messages; a suffix is added if its log files already exist.
    pub fn spawn(name: &str, mut cmd: Command, work_dir: &Path) -> Result<ChildProcess> {
        let (stdout_log, stderr_log, stdout, stderr) = log_files(work_dir, name)?;
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
        // functions (prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect: then nobody would kill us.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("spawning {name} ({program})"), e))?;
        tracing::debug!(name, pid = child.id(), log = %stderr_log.display(), "spawned");
        Ok(ChildProcess {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            stdout_log,
            stderr_log,
            container: None,
        })
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        match &self.container {
            Some(c) => c.host_pid.load(std::sync::atomic::Ordering::Relaxed),
            None => self.pid,
        }
    }

    /// Path of the stdout log.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_log
    }

    /// Path of the stderr log.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_log
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_status(&self) -> Option<ExitStatus> {
        if let Some(c) = &self.container {
            return c.status();
        }
        let mut child = self.lock();
        // An error here means the child was already reaped elsewhere: treat it as gone.
        match child.try_wait() {
            Ok(s) => s,
            Err(_) => Some(ExitStatus::default()),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Fails with the log tail if the process has exited.
    pub fn ensure_running(&self) -> Result<()> {
        match self.try_status() {
            None => Ok(()),
            Some(status) => Err(Error::Process {
                what: self.name.clone(),
                detail: format!("exited unexpectedly ({status})"),
                log: self.log_tail(40),
            }),
        }
    }

    /// The last `n` lines of stdout followed by the last `n` lines of stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for (label, path) in [("stdout", &self.stdout_log), ("stderr", &self.stderr_log)] {
            let tail = file_tail(path, n);
            if !tail.is_empty() {
                out.push_str(&format!("[{} {label}]\n{tail}\n", self.name));
            }
        }
        out
    }

    /// Terminates the process group: SIGTERM, up to 5 s to exit, then SIGKILL; then reaps.
    pub fn kill(&self) -> Result<ExitStatus> {
        if let Some(c) = &self.container {
            c.stop(TERM_GRACE)?;
            return Ok(c.status().unwrap_or_default());
        }
        let mut child = self.lock();
        if let Ok(Some(status)) = child.try_wait() {
            // Children of the group may still linger (e.g. a shell's child).
            signal_group(self.pid, libc::SIGKILL);
            return Ok(status);
        }
        signal_group(self.pid, libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < TERM_GRACE {
            match child.try_wait() {
                Ok(Some(status)) => {
                    signal_group(self.pid, libc::SIGKILL);
                    return Ok(status);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(Error::io(format!("waiting for {}", self.name), e)),
            }
        }
        signal_group(self.pid, libc::SIGKILL);
        child
            .wait()
            .map_err(|e| Error::io(format!("reaping {}", self.name), e))
    }

    /// Sends SIGTERM to the process (not its group) and returns at once: the process is
    /// reaped by [`ChildProcess::try_status`], so a test can time its graceful shutdown.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Stops the process (SIGSTOP) until [`ChildProcess::resume`]: a client that reads nothing and
    /// answers nothing, as a slow or overloaded one does.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Continues a process [`ChildProcess::pause`] stopped (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.container {
            c.signal(sig);
            return;
        }
        // Only an unreaped child (checked under the lock) still owns its pid.
        let mut child = self.lock();
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on our own, still unreaped, child's pid.
            unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            }
        }
    }

    /// Kills the process group at once (SIGKILL, no grace period) and reaps the process: for
    /// servers whose graceful shutdown is slow and irrelevant to the test (kube-apiserver
    /// stops listening at SIGTERM but takes more than 30 s to exit).
    pub fn kill_now(&self) -> Result<ExitStatus> {
        if let Some(c) = &self.container {
            c.signal(libc::SIGKILL);
            c.stop(Duration::from_secs(1))?;
            return Ok(c.status().unwrap_or_default());
        }
        let mut child = self.lock();
        signal_group(self.pid, libc::SIGKILL);
        child
            .wait()
            .map_err(|e| Error::io(format!("reaping {}", self.name), e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        // A panic while holding the lock leaves the Child intact: keep using it.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            tracing::warn!(name = %self.name, error = %e, "could not stop child process");
        }
        if let Some(c) = &self.container {
            if let Err(e) = c.remove() {
                tracing::warn!(name = %self.name, error = %e, "could not remove container");
            }
        }
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group we created at spawn.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// `<work_dir>/<name>.stdout.log` and `.stderr.log` (a suffix added if taken), created.
fn log_files(work_dir: &Path, name: &str) -> Result<(PathBuf, PathBuf, File, File)> {
    std::fs::create_dir_all(work_dir)
        .map_err(|e| Error::io(format!("creating work dir {}", work_dir.display()), e))?;
    let (stdout_log, stderr_log) = unique_log_paths(work_dir, name);
    let stdout = File::create(&stdout_log)
        .map_err(|e| Error::io(format!("creating {}", stdout_log.display()), e))?;
    let stderr = File::create(&stderr_log)
        .map_err(|e| Error::io(format!("creating {}", stderr_log.display()), e))?;
    Ok((stdout_log, stderr_log, stdout, stderr))
}

fn unique_log_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let mut n = 1;
    loop {
        let stem = if n == 1 {
            name.to_string()
        } else {
            format!("{name}-{n}")
        };
        let out = dir.join(format!("{stem}.stdout.log"));
        if !out.exists() {
            return (out, dir.join(format!("{stem}.stderr.log")));
        }
        n += 1;
    }
}

/// The last `n` lines of a file (empty if unreadable).
pub fn file_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::wait_for;

    #[test]
    fn logs_output_and_kills_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo oops >&2; exec sleep 600"]);
        let p = ChildProcess::spawn("sh", cmd, dir.path()).unwrap();
        wait_for(Duration::from_secs(5), "sh to print", || {
            let t = p.log_tail(5);
            (t.contains("hello") && t.contains("oops")).then_some(())
        })
        .unwrap();
        assert!(p.is_running());
        let pid = p.pid();
        drop(p);
        // SAFETY: signal 0 only checks existence.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive, "child {pid} survived drop");
    }

    #[test]
    fn ensure_running_reports_exit_with_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo failing-now >&2; exit 3"]);
        let p = ChildProcess::spawn("failer", cmd, dir.path()).unwrap();
        wait_for(Duration::from_secs(5), "exit", || {
            (!p.is_running()).then_some(())
        })
        .unwrap();
        let msg = p.ensure_running().unwrap_err().to_string();
        assert!(msg.contains("failing-now"), "{msg}");
    }
}
