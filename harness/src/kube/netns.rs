//! Backends at non-loopback addresses: the API server rejects 127.0.0.0/8 in Endpoints, so
//! tests put backends in a network namespace reached over a veth pair with TEST-NET-1
//! (192.0.2.0/24) addresses — never any other address.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::echo::EchoBackend;
use crate::error::{Error, Result};
use crate::process::ChildProcess;

use super::testnet::lock_free_block;

/// Distinguishes namespaces made by this process.
static CREATED: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair to the host: host side `192.0.2.(4k+1)/30`, namespace
/// side `192.0.2.(4k+2)/30`, with `k` unique across processes (a lock file per block) and
/// chosen clear of any address the machine itself uses (see `testnet`).
/// Dropping it deletes the namespace and the veth pair. Needs root and `ip` (iproute2).
#[derive(Debug)]
pub struct NetnsBackendHost {
    name: String,
    host_if: String,
    block: u8,
    // Held (flock) for the host's lifetime; the kernel releases it if the process dies.
    _lock: File,
}

impl NetnsBackendHost {
    /// Creates the namespace `isobar-<pid>-<n>`, the veth pair, the addresses, and brings the
    /// links (and the namespace's loopback) up. `label` only appears in logs.
    pub fn create(label: &str) -> Result<NetnsBackendHost> {
        check_prerequisites()?;
        let (block, lock) = lock_free_block(remove_stale_veth)?;
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let host = NetnsBackendHost {
            name: format!("isobar-{pid}-{n}"),
            host_if: format!("vi{pid}{n}h"),
            block,
            _lock: lock,
        };
        let ns_if = format!("vi{pid}{n}n");
        if host.host_if.len() > 15 {
            return Err(Error::Invalid(format!(
                "interface name {} is longer than 15 characters",
                host.host_if
            )));
        }
        // From here on, Drop cleans up whatever part was made.
        let host_cidr = format!("{}/30", host.host_ip());
        let ns_cidr = format!("{}/30", host.ns_ip());
        let (ns, hi) = (host.name.as_str(), host.host_if.as_str());
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", hi, "type", "veth", "peer", "name", &ns_if, "netns", ns,
        ])?;
        ip(&["addr", "add", &host_cidr, "dev", hi])?;
        ip(&["link", "set", hi, "up"])?;
        ip(&["-n", ns, "addr", "add", &ns_cidr, "dev", &ns_if])?;
        ip(&["-n", ns, "link", "set", &ns_if, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        tracing::debug!(label, netns = ns, ip = %host.ns_ip(), "network namespace created");
        Ok(host)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address inside the namespace, where backends listen: `192.0.2.(4k+2)`.
    pub fn ns_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 4 * self.block + 2)
    }

    /// The host side of the veth pair: `192.0.2.(4k+1)`.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 4 * self.block + 1)
    }

    /// Turns `cmd` into `ip netns exec NAME <cmd>` (same arguments, environment, directory).
    pub fn command_in_ns(&self, cmd: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.name])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        wrapped
    }

    /// Spawns `cmd` inside the namespace as a [`ChildProcess`] (`ip netns exec` execs the
    /// command, so killing the child kills it). Drop the process before this host.
    pub fn spawn_in_ns(&self, name: &str, cmd: &Command, work_dir: &Path) -> Result<ChildProcess> {
        ChildProcess::spawn(name, self.command_in_ns(cmd), work_dir)
    }

    /// Starts an echo backend (the harness's echo binary) listening on `ns_ip():0`.
    pub fn start_echo(&self, echo_bin: &Path, name: &str, work_dir: &Path) -> Result<EchoBackend> {
        let listen = format!("{}:0", self.ns_ip());
        EchoBackend::start_wrapped(echo_bin, name, &listen, work_dir, |cmd| {
            self.command_in_ns(&cmd)
        })
    }
}

impl Drop for NetnsBackendHost {
    fn drop(&mut self) {
        // Deleting the namespace removes its veth end and with it the host end, unless a
        // process still runs inside: delete the host end explicitly to free the address.
        let _ = ip(&["link", "del", &self.host_if]);
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete network namespace");
        }
    }
}

fn check_prerequisites() -> Result<()> {
    if Command::new("ip").arg("-V").output().is_err() {
        return Err(Error::MissingComponent {
            what: "`ip` (iproute2) for backend network namespaces".into(),
            how: "apt-get install iproute2 (or run ci/install-prerequisites.sh)".into(),
        });
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::MissingComponent {
            what: "root (CAP_NET_ADMIN) to create network namespaces for backends".into(),
            how: "run the Kubernetes e2e tests as root (e.g. in the CI container)".into(),
        });
    }
    Ok(())
}

/// A test process that died without cleaning up may have left one of our veth interfaces
/// (`vi<digits>h`) with the block's host address: delete it (we hold the block's lock, so no
/// live test uses it). Interfaces with other names are never touched.
fn remove_stale_veth(host_ip: Ipv4Addr) {
    let Ok(out) = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "to", &format!("{host_ip}/32")])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "7: vi1234h    inet 192.0.2.253/30 ..."
        let Some(dev) = line.split_whitespace().nth(1) else {
            continue;
        };
        let dev = dev.split('@').next().unwrap_or(dev);
        if is_our_veth(dev) {
            tracing::warn!(dev, %host_ip, "removing a stale veth left by an earlier test");
            let _ = ip(&["link", "del", dev]);
        }
    }
}

/// Whether `dev` is named like the host side of a veth this module makes.
fn is_our_veth(dev: &str) -> bool {
    dev.strip_prefix("vi")
        .and_then(|r| r.strip_suffix('h'))
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io(format!("running ip {}", args.join(" ")), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Process {
        what: format!("ip {}", args.join(" ")),
        detail: out.status.to_string(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_veth_names_count_as_stale() {
        assert!(is_our_veth("vi12345h"));
        assert!(is_our_veth("vi123450h"));
        for other in ["eth0", "vih", "vi12n", "virbr0h", "lo"] {
            assert!(!is_our_veth(other), "{other}");
        }
    }
}
