//! Getting verified kube-apiserver, kube-controller-manager and etcd binaries:
//! `ISOBAR_KUBE_BIN_DIR`, or `ci/provision-kube.sh` (which builds them once into the cache).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::envoy::cache_dir;
use crate::error::{Error, Result};
use crate::process::file_tail;

/// Environment variable naming a directory holding `kube-apiserver`, `kube-controller-manager`
/// and `etcd`, used instead of running the provisioning script.
pub const KUBE_BIN_DIR_ENV: &str = "ISOBAR_KUBE_BIN_DIR";

/// The provisioning script, located relative to this crate so it works from any working dir.
const PROVISION_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/provision-kube.sh");

/// Binaries already verified by this process.
static VERIFIED: Mutex<Option<KubeBinaries>> = Mutex::new(None);

/// Paths of the three binaries a local cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeBinaries {
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

impl KubeBinaries {
    /// The binaries in `dir`, checked to exist and be executable.
    pub fn in_dir(dir: &Path) -> Result<KubeBinaries> {
        let bins = KubeBinaries {
            apiserver: dir.join("kube-apiserver"),
            controller_manager: dir.join("kube-controller-manager"),
            etcd: dir.join("etcd"),
        };
        for bin in [&bins.apiserver, &bins.controller_manager, &bins.etcd] {
            check_executable(bin)?;
        }
        Ok(bins)
    }
}

/// Returns verified kube binaries, provisioning them if needed.
///
/// `$ISOBAR_KUBE_BIN_DIR` wins if set. Otherwise `ci/provision-kube.sh` runs (a no-op that
/// verifies checksums when warm; a ~8 minute build on 2 cores when cold) and its last stdout
/// line names the directory. Memoized per process; concurrent test processes are serialized
/// by a file lock in the cache dir, so a cold build never runs twice at once.
/// Blocking: in async code call it through `tokio::task::spawn_blocking`.
pub fn kube_binaries() -> Result<KubeBinaries> {
    // Held during provisioning so concurrent callers in this process wait for one build.
    let mut memo = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = memo.as_ref() {
        return Ok(b.clone());
    }
    let bins = match std::env::var_os(KUBE_BIN_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => {
            KubeBinaries::in_dir(Path::new(&dir)).map_err(|e| Error::MissingComponent {
                what: format!("kube binaries in ${KUBE_BIN_DIR_ENV}"),
                how: format!(
                    "{e}; unset {KUBE_BIN_DIR_ENV} to build them with ci/provision-kube.sh"
                ),
            })?
        }
        None => KubeBinaries::in_dir(&provision()?)?,
    };
    *memo = Some(bins.clone());
    Ok(bins)
}

fn provision() -> Result<PathBuf> {
    let script = Path::new(PROVISION_SCRIPT);
    if !script.is_file() {
        return Err(Error::MissingComponent {
            what: format!("the provisioning script {}", script.display()),
            how: format!("set {KUBE_BIN_DIR_ENV} to a directory with kube-apiserver, kube-controller-manager and etcd, or ISOBAR_E2E_KUBECONFIG to an existing cluster"),
        });
    }
    let dir = cache_dir()?.join("kube");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let _lock = lock_file(&dir.join(".provision.lock"))?;
    let log_path = dir.join("provision.log");
    let log = File::create(&log_path)
        .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
    tracing::info!(script = %script.display(), log = %log_path.display(), "provisioning kube binaries (a cold build takes ~8 minutes)");
    let out = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stderr(log)
        .output()
        .map_err(|e| Error::io(format!("running {}", script.display()), e))?;
    let tail = || file_tail(&log_path, 30);
    if !out.status.success() {
        return Err(Error::Process {
            what: format!("{} (provisioning kube-apiserver, kube-controller-manager, etcd)", script.display()),
            detail: format!("{}; run it by hand as root, set {KUBE_BIN_DIR_ENV}, or point ISOBAR_E2E_KUBECONFIG at a cluster", out.status),
            log: tail(),
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => Ok(PathBuf::from(line.trim())),
        None => Err(Error::Process {
            what: script.display().to_string(),
            detail: "printed no directory on stdout".into(),
            log: tail(),
        }),
    }
}

/// Opens and exclusively locks `path` (released when the file is dropped).
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(file)
}

fn check_executable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::MissingComponent {
        what: path.display().to_string(),
        how: format!("({e}) run ci/provision-kube.sh, or set {KUBE_BIN_DIR_ENV}"),
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::Verification {
            path: path.to_path_buf(),
            detail: "not an executable file".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_dir_requires_all_three_executables() {
        let dir = tempfile::tempdir().unwrap();
        let err = KubeBinaries::in_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("kube-apiserver"), "{err}");
        for name in ["kube-apiserver", "kube-controller-manager", "etcd"] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
        }
        let err = KubeBinaries::in_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not an executable"), "{err}");
        for name in ["kube-apiserver", "kube-controller-manager", "etcd"] {
            let p = dir.path().join(name);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let bins = KubeBinaries::in_dir(dir.path()).unwrap();
        assert_eq!(bins.etcd, dir.path().join("etcd"));
    }
}
