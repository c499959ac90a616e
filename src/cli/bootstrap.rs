use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::bootstrap::{self, BootstrapOptions, EnvoyTlsFiles};

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
    /// Connect to isobar in plaintext (no certificates). Only for a local test.
    #[arg(long)]
    pub insecure: bool,
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
    };
    bootstrap::write(&options, &args.path)?;
    Ok(())
}
