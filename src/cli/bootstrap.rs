use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::bootstrap::{self, BootstrapOptions, EnvoyTlsFiles, XdsApi};

/// `isobar bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Where to write the bootstrap (JSON).
    pub path: PathBuf,
    /// isobar's xDS address as Envoy reaches it (an IP or a DNS name).
    #[arg(long, default_value = "127.0.0.1")]
    pub xds_address: String,
    #[arg(long, default_value_t = 8001)]
    pub xds_port: u16,
    /// CA that issued isobar's certificate.
    #[arg(long)]
    pub envoy_cafile: Option<PathBuf>,
    /// Envoy's client certificate.
    #[arg(long)]
    pub envoy_cert_file: Option<PathBuf>,
    /// Envoy's client key.
    #[arg(long)]
    pub envoy_key_file: Option<PathBuf>,
    /// Envoy's admin address.
    #[arg(long, default_value = "127.0.0.1")]
    pub admin_address: String,
    /// Envoy's admin port (0 picks a free one; see Envoy's --admin-address-path).
    #[arg(long, default_value_t = 9001)]
    pub admin_port: u16,
    /// The DNS name Envoy requires in isobar's certificate (also sent as SNI).
    #[arg(long, default_value = "isobar")]
    pub xds_server_name: String,
    /// Envoy's node id.
    #[arg(long, default_value = "envoy")]
    pub node_id: String,
    /// Envoy's node cluster.
    #[arg(long, default_value = "isobar")]
    pub node_cluster: String,
    /// Write Envoy's client certificate and CA as file-based SDS resources into this directory, so Envoy
    /// reloads them when the files change (certificate rotation without restarting Envoy).
    #[arg(long)]
    pub resources_dir: Option<PathBuf>,
    /// The xDS protocol variant of Envoy's ADS stream: `sotw` (state of the world, `GRPC`; every
    /// Envoy speaks it) or `delta` (incremental, `DELTA_GRPC`; only changed listeners and clusters
    /// travel too, for many listeners or clusters).
    #[arg(long, value_enum, default_value_t = XdsApiArg::Sotw)]
    pub xds_api: XdsApiArg,
    /// Connect to isobar in plaintext (no certificates). Only for a local test.
    #[arg(long)]
    pub insecure: bool,
}

/// `--xds-api` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdsApiArg {
    Sotw,
    Delta,
}

impl From<XdsApiArg> for XdsApi {
    fn from(a: XdsApiArg) -> XdsApi {
        match a {
            XdsApiArg::Sotw => XdsApi::Sotw,
            XdsApiArg::Delta => XdsApi::Delta,
        }
    }
}

pub fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let tls = match (args.envoy_cafile, args.envoy_cert_file, args.envoy_key_file, args.insecure) {
        (Some(ca_file), Some(cert_file), Some(key_file), false) => Some(EnvoyTlsFiles {
            ca_file,
            cert_file,
            key_file,
        }),
        (None, None, None, true) => None,
        (_, _, _, true) => bail!("--insecure can't be combined with --envoy-cafile/--envoy-cert-file/--envoy-key-file"),
        (None, None, None, false) => bail!(
            "xDS must be secured: give --envoy-cafile, --envoy-cert-file and --envoy-key-file (see `isobar certgen`), or --insecure for plaintext"
        ),
        _ => bail!("give all three of --envoy-cafile, --envoy-cert-file and --envoy-key-file"),
    };
    let options = BootstrapOptions {
        xds_address: args.xds_address,
        xds_port: args.xds_port,
        admin_address: args.admin_address,
        admin_port: args.admin_port,
        tls,
        xds_server_name: args.xds_server_name,
        node_id: args.node_id,
        node_cluster: args.node_cluster,
        resources_dir: args.resources_dir,
        xds_api: args.xds_api.into(),
    };
    bootstrap::write(&options, &args.path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// `isobar bootstrap OUT --insecure FLAGS...` run for real; the `ads_config` of the file it wrote.
    fn written_ads_config(flags: &[&str]) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("envoy.json");
        let out_arg = out.display().to_string();
        let argv = ["isobar", "bootstrap", out_arg.as_str(), "--insecure"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Bootstrap(args)) => run(args).unwrap(),
            other => panic!("{flags:?} parsed as {other:?}"),
        }
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        written["dynamic_resources"]["ads_config"].clone()
    }

    #[test]
    fn xds_api_selects_sotw_or_delta_ads_and_defaults_to_sotw() {
        for (flags, api_type) in [
            (&[][..], "GRPC"),
            (&["--xds-api", "sotw"][..], "GRPC"),
            (&["--xds-api=delta"][..], "DELTA_GRPC"),
        ] {
            let ads = written_ads_config(flags);
            assert_eq!(ads["api_type"], api_type, "{flags:?}: {ads}");
            assert_eq!(ads["transport_api_version"], "V3", "{flags:?}: {ads}");
            assert_eq!(
                ads["grpc_services"][0]["envoy_grpc"]["cluster_name"], "isobar",
                "{flags:?}: {ads}"
            );
        }
    }

    #[test]
    fn an_unknown_xds_api_is_refused() {
        let err = Cli::try_parse_from([
            "isobar",
            "bootstrap",
            "out.json",
            "--xds-api",
            "incremental",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("sotw") && err.contains("delta"), "{err}");
    }
}
