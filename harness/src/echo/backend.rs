//! An echo server running as a separate process (the `isobar-echo` binary).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::wait::try_wait_for;

/// How long an echo process may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running echo backend process; dropping it kills the process.
#[derive(Debug)]
pub struct EchoBackend {
    name: String,
    addr: SocketAddr,
    process: ChildProcess,
}

impl EchoBackend {
    /// Starts `echo_bin --name NAME --listen 127.0.0.1:0` and learns its address.
    pub fn start(echo_bin: &Path, name: &str, work_dir: &Path) -> Result<EchoBackend> {
        Self::start_with_tls(echo_bin, name, work_dir, None)
    }

    /// Like [`EchoBackend::start`], serving TLS with `(cert_pem_path, key_pem_path)` if given.
    pub fn start_with_tls(
        echo_bin: &Path,
        name: &str,
        work_dir: &Path,
        tls: Option<(&Path, &Path)>,
    ) -> Result<EchoBackend> {
        let mut cmd = echo_command(echo_bin, name, "127.0.0.1:0")?;
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        Self::spawn(Runtime::from_env()?, cmd, name, work_dir)
    }

    /// Starts `echo_bin --name NAME --listen LISTEN` through `wrap`, which may turn the
    /// command into another that execs it (e.g. `ip netns exec NS ...`).
    pub fn start_wrapped(
        echo_bin: &Path,
        name: &str,
        listen: &str,
        work_dir: &Path,
        wrap: impl FnOnce(Command) -> Command,
    ) -> Result<EchoBackend> {
        let cmd = echo_command(echo_bin, name, listen)?;
        // A wrapper (a network namespace) is a host matter: always a process.
        Self::spawn(Runtime::Process, wrap(cmd), name, work_dir)
    }

    fn spawn(runtime: Runtime, cmd: Command, name: &str, work_dir: &Path) -> Result<EchoBackend> {
        let process = ChildProcess::spawn_in(runtime, &format!("echo-{name}"), cmd, work_dir)?;
        let addr = try_wait_for(
            START_TIMEOUT,
            &format!("echo backend {name} to print its address"),
            || {
                let out = std::fs::read_to_string(process.stdout_path()).unwrap_or_default();
                if let Some(addr) = parse_listening_line(&out) {
                    return Ok(Some(addr));
                }
                process.ensure_running().map(|_| None)
            },
        )
        .map_err(|e| e.with_log(process.log_tail(20)))?;
        Ok(EchoBackend {
            name: name.to_string(),
            addr,
            process,
        })
    }

    /// The name the backend answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its listening address (127.0.0.1:port, or the address it was told to listen on).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The underlying process.
    pub fn process(&self) -> &ChildProcess {
        &self.process
    }
}

fn echo_command(echo_bin: &Path, name: &str, listen: &str) -> Result<Command> {
    if !echo_bin.is_file() {
        return Err(Error::MissingComponent {
            what: format!("the echo binary {}", echo_bin.display()),
            how: "build it with `cargo build --features e2e --bin isobar-echo`".into(),
        });
    }
    let mut cmd = Command::new(echo_bin);
    cmd.args(["--name", name, "--listen", listen]);
    Ok(cmd)
}

fn parse_listening_line(stdout: &str) -> Option<SocketAddr> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .and_then(|a| a.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        assert_eq!(
            parse_listening_line("listening on 127.0.0.1:4242\n"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(parse_listening_line("listening on 127.0.0"), None);
        assert_eq!(parse_listening_line(""), None);
    }
}
