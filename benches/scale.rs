//! Scale, end to end: a real Envoy and a real API server around the isobar binary under test, at
//! thousands of objects. File source: N Ingresses (each with its host, Service and Endpoints) in a
//! directory, a new Ingress timed from its file's rename to the first 200 through Envoy, and
//! isobar's memory after the load and after small changes. Kubernetes: N IngressRoutes and M
//! unrelated 4 KB Secrets before isobar starts; isobar's memory, the time until every IngressRoute
//! has its status, and a new IngressRoute timed from its creation to the first 200. Writes a
//! Markdown table.
//!
//! ```text
//! cargo bench --features e2e --bench scale -- [--isobar PATH] [--label L] [--sizes 1000,10000] \
//!     [--ingressroutes 3000] [--secrets 10000] [--only file|kube] [--samples N] \
//!     [--isobar-arg ARG]... [--quick]
//! ```
//!
//! The isobar binary is `--isobar`, else `$ISOBAR_BIN`, else the one this workspace built. Envoy is
//! the harness's (`ENVOY_BIN`, `ISOBAR_ENVOY_VERSION`); the API server is the harness's local one.
//! `--quick` runs tiny sizes so CI keeps the bench working. Figures go in BENCHMARKS.md.

#[path = "scale/args.rs"]
mod args;
#[path = "common/cli.rs"]
mod cli;
#[path = "scale/file_run.rs"]
mod file_run;
#[path = "scale/fixture.rs"]
mod fixture;
#[path = "scale/kube_objects.rs"]
mod kube_objects;
#[path = "scale/kube_run.rs"]
mod kube_run;
#[path = "scale/measure.rs"]
mod measure;
#[path = "scale/proxy.rs"]
mod proxy;
#[path = "scale/rss.rs"]
mod rss;
#[path = "scale/shares.rs"]
mod shares;

use std::path::Path;
use std::time::Instant;

use isobar_harness::echo::EchoBackend;
use isobar_harness::envoy::{default_envoy_version, envoy_binary, reported_version};

use args::{Args, Only};
use file_run::FileFigures;
use kube_run::KubeFigures;

/// Echo backends the Services' endpoints are spread over.
const BACKENDS: usize = 4;

/// `1,000`
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(args: &Args, envoy: &str, files: &[FileFigures], kube: Option<&KubeFigures>) {
    println!(
        "\n| workload | {} (isobar {}, Envoy {envoy}) |",
        args.label,
        args.isobar.display()
    );
    println!("|---|---|");
    for f in files {
        println!(
            "| file source, {} Ingresses + Services + Endpoints: new Ingress → first 200 through Envoy | {} |",
            thousands(f.size),
            f.new_ingress.cell()
        );
    }
    for f in files {
        println!(
            "| file source, {}: one new Ingress's work, mean (isobar: change seen → xDS cache; Envoy's answers: response sent → ACK; Envoy's update_duration: its own CDS and RDS accounts) | {} |",
            thousands(f.size),
            f.shares.cell()
        );
    }
    for f in files {
        println!(
            "| isobar RSS at {} (file source) | {} after load, {} after {} small changes |",
            thousands(f.size),
            f.rss_loaded.cell(),
            f.rss_changed.cell(),
            f.changes
        );
    }
    if let Some(k) = kube {
        let (n, s) = (thousands(k.ingressroutes), thousands(k.secrets));
        println!(
            "| kube: {n} IngressRoutes + {s} unrelated 4 KB Secrets, RSS | {} |",
            k.rss.cell()
        );
        println!(
            "| kube: all {n} IngressRoute statuses written after start | {:.1} s |",
            k.statuses.as_secs_f64()
        );
        println!(
            "| kube: new IngressRoute → 200 with {n} present | {} |",
            k.new_route.cell()
        );
    }
    println!("\nInformational: from isobar's start until the first and last Ingress answer through Envoy (file source); creating the kube objects before isobar starts; the statuses before and after the first one lands.\n");
    for f in files {
        println!(
            "* {} Ingresses: {:.1?} to answer",
            thousands(f.size),
            f.startup
        );
    }
    if let Some(k) = kube {
        println!(
            "* kube: {} objects created in {:.1?}",
            thousands(k.objects),
            k.setup
        );
        // The statuses split: isobar's start until its first write lands, then the writes.
        let writing = k.statuses.saturating_sub(k.first_status);
        println!(
            "* kube: the first IngressRoute status {:.1?} after isobar's start, the other {} in {writing:.1?} after it ({:.0} a second)",
            k.first_status,
            thousands(k.ingressroutes.saturating_sub(1)),
            k.ingressroutes.saturating_sub(1) as f64 / writing.as_secs_f64().max(1e-3)
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::parse()?;
    let began = Instant::now();
    let version = default_envoy_version();
    let envoy_bin = tokio::task::spawn_blocking(move || envoy_binary(&version)).await??;
    // The table names the ADS variant with Envoy's version.
    let envoy = format!(
        "{}, {} ADS",
        reported_version(&envoy_bin),
        isobar_harness::isobar::XdsApi::from_env()?
    );
    eprintln!("scale: isobar {}, Envoy {envoy}", args.isobar.display());
    let root = tempfile::Builder::new().prefix("isobar-scale-").tempdir()?;
    let echo_bin = Path::new(env!("CARGO_BIN_EXE_isobar-echo"));
    let echoes = (0..BACKENDS)
        .map(|k| EchoBackend::start(echo_bin, &format!("e{k}"), &root.path().join("echo")))
        .collect::<Result<Vec<_>, _>>()?;
    let ports: Vec<u16> = echoes.iter().map(EchoBackend::port).collect();

    let mut files = Vec::new();
    if args.only != Only::Kube {
        for &size in &args.sizes {
            eprintln!("file source, {size} Ingresses:");
            let work = root.path().join(format!("file-{size}"));
            files.push(file_run::run(&args, &envoy_bin, &ports, size, &work).await?);
        }
    }
    let kube = if args.only != Only::File {
        eprintln!(
            "kube, {} IngressRoutes, {} Secrets:",
            args.ingressroutes, args.secrets
        );
        Some(kube_run::run(&args, &envoy_bin, &ports, &root.path().join("kube")).await?)
    } else {
        None
    };
    print_table(&args, &envoy, &files, kube.as_ref());
    eprintln!("scale: done in {:.0?}", began.elapsed());
    Ok(())
}
