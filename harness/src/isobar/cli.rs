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

/// The environment variable that picks the xDS protocol variant of every harness stack whose
/// options leave it open: `sotw` (also when unset or empty) or `delta`.
pub const XDS_API_ENV: &str = "ISOBAR_XDS_API";

/// The xDS protocol variant of Envoy's ADS stream (`isobar bootstrap --xds-api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdsApi {
    /// State of the world (`ads_config.api_type: GRPC`).
    #[default]
    Sotw,
    /// Incremental (`DELTA_GRPC`).
    Delta,
}

impl XdsApi {
    /// Both variants, SotW first.
    pub const ALL: [XdsApi; 2] = [XdsApi::Sotw, XdsApi::Delta];

    /// The value of `isobar bootstrap --xds-api`: `sotw` or `delta`.
    pub fn as_flag(self) -> &'static str {
        match self {
            XdsApi::Sotw => "sotw",
            XdsApi::Delta => "delta",
        }
    }

    /// The variant `$ISOBAR_XDS_API` names: unset or empty is [`XdsApi::Sotw`]; any other value
    /// but `sotw` and `delta` is an error (a typo must not quietly test the other variant).
    pub fn from_env() -> Result<XdsApi> {
        match std::env::var(XDS_API_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(XdsApi::Sotw),
            Err(std::env::VarError::NotUnicode(v)) => Err(Error::Invalid(format!(
                "{XDS_API_ENV}={v:?}: expected `sotw` or `delta`"
            ))),
            Ok(v) if v.trim().is_empty() => Ok(XdsApi::Sotw),
            Ok(v) => v.parse(),
        }
    }
}

impl std::fmt::Display for XdsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_flag())
    }
}

impl std::str::FromStr for XdsApi {
    type Err = Error;

    fn from_str(s: &str) -> Result<XdsApi> {
        match s.trim() {
            "sotw" => Ok(XdsApi::Sotw),
            "delta" => Ok(XdsApi::Delta),
            other => Err(Error::Invalid(format!(
                "{XDS_API_ENV}={other:?}: expected `sotw` or `delta`"
            ))),
        }
    }
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
    /// `--xds-api`: state-of-the-world or delta ADS.
    pub xds_api: XdsApi,
    /// Further arguments, appended verbatim.
    pub extra_args: Vec<String>,
}

impl BootstrapArgs {
    /// mTLS to isobar on 127.0.0.1:`xds_port` with certgen's Envoy certificate; admin on
    /// 127.0.0.1:0; state-of-the-world ADS (a stack's own variant: [`crate::Stack::bootstrap_args`]).
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
            xds_api: XdsApi::Sotw,
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
    cmd.args(["--xds-api", args.xds_api.as_flag()]);
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

/// Adds `address`:`port` for each of `ports` to the endpoints of the static `isobar` cluster in
/// the bootstrap JSON at `path` (as `isobar bootstrap` wrote it), so Envoy may reach any of several
/// isobar replicas: it connects to one, and to another when that one goes away.
pub fn add_xds_endpoints(path: &Path, address: &str, ports: &[u16]) -> Result<()> {
    let what = format!("the bootstrap {}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let mut bootstrap: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| Error::Json {
            context: what.clone(),
            source,
        })?;
    let lb_endpoints = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .and_then(|clusters| clusters.iter_mut().find(|c| c["name"] == "isobar"))
        .and_then(|c| c["load_assignment"]["endpoints"][0]["lb_endpoints"].as_array_mut())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{what} has no static cluster `isobar` with load_assignment.endpoints[0].lb_endpoints"
            ))
        })?;
    for port in ports {
        lb_endpoints.push(
            serde_json::json!({"endpoint": {"address": {"socket_address": {
                "address": address, "port_value": port
            }}}}),
        );
    }
    let text = serde_json::to_string_pretty(&bootstrap).map_err(|source| Error::Json {
        context: what.clone(),
        source,
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {what}"), e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xds_api_parses_its_flags_and_nothing_else() {
        for api in XdsApi::ALL {
            assert_eq!(api.as_flag().parse::<XdsApi>().unwrap(), api);
            assert_eq!(api.to_string(), api.as_flag());
        }
        let err = "Delta2".parse::<XdsApi>().unwrap_err().to_string();
        assert!(
            err.contains(XDS_API_ENV) && err.contains("Delta2") && err.contains("sotw"),
            "{err}"
        );
        assert_eq!(XdsApi::default(), XdsApi::Sotw);
    }

    #[test]
    fn further_xds_endpoints_join_the_isobar_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.json");
        let endpoint = |port: u16| {
            serde_json::json!({"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port
            }}}})
        };
        let bootstrap = serde_json::json!({"static_resources": {"clusters": [
            {"name": "other", "load_assignment": {"endpoints": [{"lb_endpoints": []}]}},
            {"name": "isobar", "load_assignment": {"endpoints": [{"lb_endpoints": [endpoint(8001)]}]}}
        ]}});
        std::fs::write(&path, bootstrap.to_string()).unwrap();
        add_xds_endpoints(&path, "127.0.0.1", &[8002, 8003]).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let clusters = &written["static_resources"]["clusters"];
        assert_eq!(
            clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"],
            serde_json::json!([endpoint(8001), endpoint(8002), endpoint(8003)])
        );
        assert_eq!(
            clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"],
            serde_json::json!([])
        );
        std::fs::write(&path, "{}").unwrap();
        assert!(add_xds_endpoints(&path, "127.0.0.1", &[8002]).is_err());
    }
}
