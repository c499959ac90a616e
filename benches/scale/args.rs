//! The scale bench's command line.

use std::path::PathBuf;

use anyhow::{bail, Context};

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
    pub quick: bool,
}

const USAGE: &str =
    "usage: [--isobar PATH] [--label L] [--sizes 1000,10000] [--ingressroutes 3000] \
    [--secrets 10000] [--only file|kube] [--samples N] [--isobar-arg ARG]... [--quick]";

impl Args {
    /// The samples for a workload of `objects` objects.
    pub fn samples_for(&self, objects: usize) -> usize {
        self.samples
            .unwrap_or(if objects >= 5_000 { 20 } else { 30 })
    }
}

fn count_list(value: &str, flag: &str) -> anyhow::Result<Vec<usize>> {
    value
        .split(',')
        .map(|s| s.trim().replace('_', "").parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{flag} {value}"))
}

fn count(value: &str, flag: &str) -> anyhow::Result<usize> {
    value
        .replace('_', "")
        .parse()
        .with_context(|| format!("{flag} {value}"))
}

pub fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        isobar: std::env::var_os("ISOBAR_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_isobar"))),
        label: "-".into(),
        sizes: vec![1_000, 10_000],
        ingressroutes: 3_000,
        secrets: 10_000,
        only: Only::Both,
        samples: None,
        changes: 30,
        isobar_args: Vec::new(),
        quick: false,
    };
    // Explicit sizes win over --quick's, whatever their order.
    let (mut sizes, mut ingressroutes, mut secrets) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => continue,
            "--quick" => {
                args.quick = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--isobar" => args.isobar = PathBuf::from(value),
            "--label" => args.label = value,
            "--sizes" => sizes = Some(count_list(&value, &flag)?),
            "--ingressroutes" => ingressroutes = Some(count(&value, &flag)?),
            "--secrets" => secrets = Some(count(&value, &flag)?),
            "--samples" => args.samples = Some(count(&value, &flag)?),
            "--isobar-arg" => args.isobar_args.push(value),
            "--only" => {
                args.only = match value.as_str() {
                    "file" => Only::File,
                    "kube" => Only::Kube,
                    other => bail!("--only {other:?}: file or kube"),
                }
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    if args.quick {
        // Small enough for CI to keep the bench building and working in well under a minute.
        args.sizes = vec![50];
        args.ingressroutes = 50;
        args.secrets = 50;
        args.samples = args.samples.or(Some(3));
        args.changes = 3;
    }
    args.sizes = sizes.unwrap_or(args.sizes);
    args.ingressroutes = ingressroutes.unwrap_or(args.ingressroutes);
    args.secrets = secrets.unwrap_or(args.secrets);
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
