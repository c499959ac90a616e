//! The scale bench's command line.

use std::path::PathBuf;

use anyhow::bail;

/// Which workloads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    Both,
    File,
    Kube,
}

#[derive(Debug, Clone)]
pub struct Args {
    /// The isobar binary measured.
    pub isobar: PathBuf,
    /// Printed in the table header (e.g. `before`, `after`).
    pub label: String,
    /// Ingresses of each file-source run.
    pub sizes: Vec<usize>,
    /// IngressRoutes present before isobar starts (kube run).
    pub ingressroutes: usize,
    /// Unrelated Secrets present before isobar starts (kube run).
    pub secrets: usize,
    pub only: Only,
    /// Latency samples per workload; `None`: 30 below 5,000 objects, 20 from there.
    pub samples: Option<usize>,
    /// Small changes between the two RSS readings of a file-source run.
    pub changes: usize,
    /// `isobar serve` arguments appended verbatim (`--isobar-arg`, repeatable).
    pub isobar_args: Vec<String>,
}

impl Args {
    /// The samples for a workload of `objects` objects.
    pub fn samples_for(&self, objects: usize) -> usize {
        self.samples
            .unwrap_or(if objects >= 5_000 { 20 } else { 30 })
    }
}

/// The command line (clap); [`parse`] resolves it into [`Args`].
#[derive(Debug, clap::Parser)]
#[command(
    about = "Scale, end to end: a real Envoy and a real API server around the isobar binary \
                   under test, at thousands of objects (a Markdown table)."
)]
struct Cli {
    #[command(flatten)]
    common: crate::cli::Common,
    /// The isobar binary measured (default: `ISOBAR_BIN`, else the one built with the bench).
    #[arg(long, default_value_os_t = crate::cli::default_isobar())]
    isobar: PathBuf,
    /// Printed in the table header (e.g. `before`, `after`).
    #[arg(long, default_value = "-")]
    label: String,
    /// Ingresses of each file-source run (default 1000,10000; 50 with --quick).
    #[arg(long, value_delimiter = ',', value_parser = crate::cli::count)]
    sizes: Option<Vec<usize>>,
    /// IngressRoutes present before isobar starts, kube run (default 3000; 50 with --quick).
    #[arg(long, value_parser = crate::cli::count)]
    ingressroutes: Option<usize>,
    /// Unrelated Secrets present before isobar starts, kube run (default 10000; 50 with --quick).
    #[arg(long, value_parser = crate::cli::count)]
    secrets: Option<usize>,
    /// Only this workload.
    #[arg(long, value_enum)]
    only: Option<Workload>,
    /// Latency samples per workload (default 30 below 5,000 objects, 20 from there; 3 with --quick).
    #[arg(long, value_parser = crate::cli::count)]
    samples: Option<usize>,
    /// An `isobar serve` argument appended verbatim (repeatable).
    #[arg(long = "isobar-arg", value_name = "ARG", allow_hyphen_values = true)]
    isobar_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Workload {
    File,
    Kube,
}

pub fn parse() -> anyhow::Result<Args> {
    let cli = <Cli as clap::Parser>::parse();
    let quick = cli.common.quick;
    // Small enough for CI to keep the bench building and working in well under a minute.
    let (sizes, ingressroutes, secrets, samples, changes) = if quick {
        (vec![50], 50, 50, Some(3), 3)
    } else {
        (vec![1_000, 10_000], 3_000, 10_000, None, 30)
    };
    let args = Args {
        isobar: cli.isobar,
        label: cli.label,
        sizes: cli.sizes.unwrap_or(sizes),
        ingressroutes: cli.ingressroutes.unwrap_or(ingressroutes),
        secrets: cli.secrets.unwrap_or(secrets),
        only: match cli.only {
            None => Only::Both,
            Some(Workload::File) => Only::File,
            Some(Workload::Kube) => Only::Kube,
        },
        samples: cli.samples.or(samples),
        changes,
        isobar_args: cli.isobar_args,
    };
    if args.samples == Some(0) {
        bail!("--samples must be at least 1");
    }
    if let Some(&n) = args.sizes.iter().find(|&&n| n < 2) {
        bail!("--sizes {n}: a file run needs 2 Ingresses at least");
    }
    if args.ingressroutes == 0 {
        bail!("--ingressroutes must be at least 1");
    }
    Ok(args)
}
