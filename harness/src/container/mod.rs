//! The harness's second runtime: its roles (Envoy, isobar, echo backends) as containers, through the
//! Docker API at `DOCKER_HOST` (podman's here, Docker's elsewhere), with testcontainers. Chosen with
//! `ISOBAR_E2E_RUNTIME=container`; processes stay the default.
//!
//! A role's program runs unchanged: its image holds the same binary at the same path plus the shared
//! libraries it links, built locally (nothing is pulled), and the container shares the host's network
//! (the tests' loopback addresses and ports work as they are) and sees the test directories at their
//! own paths.

mod engine;
pub mod image;
mod once;

use std::path::Path;

pub use engine::{block, BindMount, ContainerSpec, RunningContainer};
pub use once::{run_once, Finished};

use crate::error::{Error, Result};

/// Chooses the runtime: `process` (default) or `container`.
pub const RUNTIME_ENV: &str = "ISOBAR_E2E_RUNTIME";

/// Where the harness runs a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A child process of the test (the default).
    Process,
    /// A container of a Docker-compatible engine.
    Container,
}

impl Runtime {
    /// `$ISOBAR_E2E_RUNTIME`; any value other than `process`, `container` or empty is an error, so a
    /// typo never runs the wrong suite silently.
    pub fn from_env() -> Result<Runtime> {
        Runtime::parse(&std::env::var(RUNTIME_ENV).unwrap_or_default())
    }

    /// A value of [`RUNTIME_ENV`].
    pub fn parse(value: &str) -> Result<Runtime> {
        match value.trim() {
            "" | "process" => Ok(Runtime::Process),
            "container" => Ok(Runtime::Container),
            other => Err(Error::MissingComponent {
                what: format!("a known {RUNTIME_ENV} (got {other:?})"),
                how: format!("set {RUNTIME_ENV} to `process` (the default) or `container`"),
            }),
        }
    }
}

/// The directories a role's container sees at their host paths: the temp dir (every test's work,
/// manifests and certificate directories), and the role's work dir if it lives elsewhere.
pub fn shared_dirs(work_dir: &Path) -> Vec<BindMount> {
    let mut dirs = vec![std::env::temp_dir()];
    if !work_dir.starts_with(std::env::temp_dir()) {
        dirs.push(work_dir.to_path_buf());
    }
    dirs.into_iter().map(BindMount::same_path).collect()
}

/// The uid isobar's and Envoy's images run as (`nonroot`).
pub const IMAGE_UID: u32 = 65532;

/// Hands `path` (and what is under it) to `uid`, as a kubelet's `fsGroup` makes a volume readable:
/// a container running as another user than the test can then read and write it. Needs root (the
/// tests run as root on these machines and in CI).
pub fn hand_to(path: &Path, uid: u32) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| Error::io(format!("{}", path.display()), std::io::Error::other(e)))?;
    // SAFETY: chown(2) on a NUL-terminated path.
    if unsafe { libc::chown(c.as_ptr(), uid, uid) } != 0 {
        return Err(Error::io(
            format!("chown {} to {uid} (needs root)", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        for entry in entries.flatten() {
            hand_to(&entry.path(), uid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_process_by_default_and_a_typo_is_an_error() {
        assert_eq!(Runtime::parse("").unwrap(), Runtime::Process);
        assert_eq!(Runtime::parse("process").unwrap(), Runtime::Process);
        assert_eq!(Runtime::parse(" container ").unwrap(), Runtime::Container);
        assert!(Runtime::parse("containers").is_err());
    }

    #[test]
    fn an_image_holds_the_libraries_a_binary_links() {
        let libs = image::shared_libraries(Path::new("/bin/true")).unwrap();
        assert!(libs.iter().any(|l| l.ends_with("libc.so.6")), "{libs:?}");
        assert!(libs.iter().all(|l| l.is_absolute()), "{libs:?}");
    }
}
