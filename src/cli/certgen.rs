use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use crate::tls::certgen::{self, CertgenOptions, DEFAULT_NAMESPACE};
use crate::tls::kube_secrets;

/// `isobar certgen`.
#[derive(Debug, Args)]
pub struct CertgenArgs {
    /// Directory to write ca.crt, ca.key, isobar.crt, isobar.key, envoy.crt and envoy.key into.
    #[arg(long, required_unless_present = "kube", conflicts_with = "kube")]
    pub output_dir: Option<PathBuf>,
    /// Create or update the Secrets isobar-ca, isobar-cert and envoy-cert in --namespace instead.
    /// Idempotent: valid certificates are kept; leaves expiring within --renew-before are re-issued
    /// from the kept CA; a CA expiring within it is rolled over through a bundle of the old and new CA.
    #[arg(long)]
    pub kube: bool,
    /// Kubeconfig for --kube (default: in-cluster, KUBECONFIG or ~/.kube/config).
    #[arg(long, requires = "kube")]
    pub kubeconfig: Option<PathBuf>,
    /// Accepted for Contour's command lines; in-cluster is the default without --kubeconfig.
    #[arg(long, requires = "kube")]
    pub incluster: bool,
    /// Namespace isobar runs in; it appears in the certificates' DNS names (and holds the Secrets).
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Lifetime of the isobar and envoy certificates.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub lifetime_days: u32,
    /// Lifetime of the CA.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub ca_lifetime_days: u32,
    /// With --kube: re-issue certificates that expire within this time (e.g. 30d, 720h).
    #[arg(long, default_value = "30d", value_parser = parse_renew_before)]
    pub renew_before: time::Duration,
    /// Replace existing files, or with --kube re-issue everything (a new CA).
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_renew_before(s: &str) -> Result<time::Duration, String> {
    if let Some(days) = s.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 30d or 720h"))?;
        return Ok(time::Duration::days(days));
    }
    let d = crate::dag::parse_duration(s)?;
    time::Duration::try_from(d).map_err(|e| e.to_string())
}

pub fn run(args: CertgenArgs) -> anyhow::Result<()> {
    let options = CertgenOptions {
        namespace: args.namespace,
        lifetime_days: args.lifetime_days,
        ca_lifetime_days: args.ca_lifetime_days,
    };
    if args.renew_before >= time::Duration::days(i64::from(args.lifetime_days)) {
        bail!("--renew-before must be shorter than --lifetime-days, or every run would re-issue");
    }
    if args.kube {
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        let changes = runtime.block_on(async {
            let client = crate::controller::kube_client(args.kubeconfig.as_deref()).await?;
            kube_secrets::apply(client, &options, args.renew_before, args.overwrite).await
        })?;
        if changes.any() {
            println!(
                "updated Secrets {}, {}, {} in {}: new CA: {}, isobar certificate re-issued: {}, envoy certificate re-issued: {}, expired CAs dropped from the bundle: {}",
                kube_secrets::CA_SECRET, kube_secrets::ISOBAR_SECRET, kube_secrets::ENVOY_SECRET, options.namespace,
                changes.new_ca, changes.isobar_reissued, changes.envoy_reissued, changes.dropped_expired_cas
            );
        } else {
            println!(
                "certificates in {} are valid; nothing to do",
                options.namespace
            );
        }
        return Ok(());
    }
    let Some(dir) = args.output_dir else {
        bail!("give --output-dir or --kube");
    };
    let certs = certgen::generate(&options, time::OffsetDateTime::now_utc())?;
    let paths = certgen::write_to_dir(&certs, &dir, args.overwrite)?;
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}
