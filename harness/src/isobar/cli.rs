//! One-shot isobar subcommands: `certgen` and `bootstrap`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The six files `isobar certgen` writes.
#[derive(Debug, Clone)]
pub struct CertPaths {
    /// `ca.crt`
    pub ca_cert: PathBuf,
    /// `ca.key`
    pub ca_key: PathBuf,
    /// `isobar.crt` (the xDS server's certificate)
    pub isobar_cert: PathBuf,
    /// `isobar.key`
    pub isobar_key: PathBuf,
    /// `envoy.crt` (Envoy's client certificate)
    pub envoy_cert: PathBuf,
    /// `envoy.key`
    pub envoy_key: PathBuf,
}

impl CertPaths {
    /// The paths certgen uses in `dir`.
    pub fn in_dir(dir: &Path) -> CertPaths {
        CertPaths {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            isobar_cert: dir.join("isobar.crt"),
            isobar_key: dir.join("isobar.key"),
            envoy_cert: dir.join("envoy.crt"),
            envoy_key: dir.join("envoy.key"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.isobar_cert,
            &self.isobar_key,
            &self.envoy_cert,
            &self.envoy_key,
        ]
    }
}

/// Runs `isobar certgen --output-dir DIR` and checks the six files exist.
pub fn certgen(isobar_bin: &Path, dir: &Path) -> Result<CertPaths> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut cmd = Command::new(isobar_bin);
    cmd.arg("certgen").arg("--output-dir").arg(dir);
    run(isobar_bin, &mut cmd, "isobar certgen")?;
    let paths = CertPaths::in_dir(dir);
    if let Some(missing) = paths.all().into_iter().find(|p| !p.is_file()) {
        return Err(Error::Invalid(format!(
            "isobar certgen succeeded but did not write {}",
            missing.display()
        )));
    }
    Ok(paths)
}

/// Arguments of `isobar bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapArgs {
    /// `--xds-address`
    pub xds_address: String,
    /// `--xds-port`
    pub xds_port: u16,
    /// `--envoy-cafile` (omitted with `None`, for an insecure xDS connection)
    pub envoy_cafile: Option<PathBuf>,
    /// `--envoy-cert-file`
    pub envoy_cert_file: Option<PathBuf>,
    /// `--envoy-key-file`
    pub envoy_key_file: Option<PathBuf>,
    /// `--admin-address`
    pub admin_address: String,
    /// `--admin-port` (0: Envoy picks one; the harness reads it from `--admin-address-path`)
    pub admin_port: u16,
    /// `--xds-server-name`
    pub xds_server_name: Option<String>,
    /// `--resources-dir`: Envoy's client certificate and CA as file-based SDS resources written
    /// there, which Envoy reloads when the certificate files are moved into place.
    pub resources_dir: Option<PathBuf>,
    /// Further arguments, appended verbatim.
    pub extra_args: Vec<String>,
}

impl BootstrapArgs {
    /// mTLS to isobar on 127.0.0.1:`xds_port` with certgen's Envoy certificate; admin on 127.0.0.1:0.
    pub fn mtls(xds_port: u16, certs: &CertPaths) -> BootstrapArgs {
        BootstrapArgs {
            xds_address: "127.0.0.1".into(),
            xds_port,
            envoy_cafile: Some(certs.ca_cert.clone()),
            envoy_cert_file: Some(certs.envoy_cert.clone()),
            envoy_key_file: Some(certs.envoy_key.clone()),
            admin_address: "127.0.0.1".into(),
            admin_port: 0,
            xds_server_name: None,
            resources_dir: None,
            extra_args: Vec::new(),
        }
    }
}

/// Runs `isobar bootstrap OUT ...`; a non-zero exit is an error carrying its stderr.
pub fn write_bootstrap(isobar_bin: &Path, out: &Path, args: &BootstrapArgs) -> Result<()> {
    let mut cmd = Command::new(isobar_bin);
    cmd.arg("bootstrap")
        .arg(out)
        .args(["--xds-address", &args.xds_address])
        .args(["--xds-port", &args.xds_port.to_string()]);
    for (flag, value) in [
        ("--envoy-cafile", &args.envoy_cafile),
        ("--envoy-cert-file", &args.envoy_cert_file),
        ("--envoy-key-file", &args.envoy_key_file),
    ] {
        if let Some(v) = value {
            cmd.arg(flag).arg(v);
        }
    }
    cmd.args(["--admin-address", &args.admin_address])
        .args(["--admin-port", &args.admin_port.to_string()]);
    if let Some(name) = &args.xds_server_name {
        cmd.args(["--xds-server-name", name]);
    }
    if let Some(dir) = &args.resources_dir {
        cmd.arg("--resources-dir").arg(dir);
    }
    cmd.args(&args.extra_args);
    run(isobar_bin, &mut cmd, "isobar bootstrap")?;
    if !out.is_file() {
        return Err(Error::Invalid(format!(
            "isobar bootstrap succeeded but did not write {}",
            out.display()
        )));
    }
    Ok(())
}

fn run(bin: &Path, cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingComponent {
                what: format!("the isobar binary {}", bin.display()),
                how: "build it with `cargo build --bin isobar`".into(),
            }
        } else {
            Error::io(format!("running {what}"), e)
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Process {
        what: what.to_string(),
        detail: out.status.to_string(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
