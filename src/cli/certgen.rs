use std::path::PathBuf;

use clap::Args;

use crate::tls::certgen::{self, CertgenOptions, DEFAULT_NAMESPACE};

/// `isobar certgen`.
#[derive(Debug, Args)]
pub struct CertgenArgs {
    /// Directory to write ca.crt, ca.key, isobar.crt, isobar.key, envoy.crt and envoy.key into.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Namespace isobar runs in; it appears in the certificates' DNS names.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Lifetime of the isobar and envoy certificates.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub lifetime_days: u32,
    /// Lifetime of the CA.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub ca_lifetime_days: u32,
    /// Replace existing files.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: CertgenArgs) -> anyhow::Result<()> {
    let options = CertgenOptions {
        namespace: args.namespace,
        lifetime_days: args.lifetime_days,
        ca_lifetime_days: args.ca_lifetime_days,
    };
    let certs = certgen::generate(&options, time::OffsetDateTime::now_utc())?;
    let paths = certgen::write_to_dir(&certs, &args.output_dir, args.overwrite)?;
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}
