//! Status at scale: how long a freshly started isobar takes to write `status.currentStatus` of N
//! IngressRoutes (each with its Service and EndpointSlice) on a real kube-apiserver, and its RSS
//! then, optionally with M unrelated 4 KiB Opaque Secrets in the cluster. Writes a Markdown table.
//!
//! ```text
//! cargo bench --features e2e --bench status_scale -- [--routes 3000] [--secrets 0] [--runs 3] \
//!     [--isobar [LABEL=]PATH ...] [--keep-logs DIR] [--isobar-arg=--kube-client-qps=100 ...]
//! ```
//!
//! The isobar binaries are `--isobar` (repeatable: runs alternate between them on the same API
//! server, so a busy machine weighs on each alike), else `$ISOBAR_BIN`, else the one this workspace
//! built (build `--release` for figures). The API server is the harness's (`ISOBAR_E2E_KUBECONFIG`
//! or a local one). The clock starts when isobar is spawned and stops when a watch of the
//! IngressRoutes, opened before, has seen every one with a `currentStatus`: a watch costs the API
//! server one encoding per event, where polling lists would cost it every object per poll, on the
//! cores isobar's writes need. Each run starts a new isobar on freshly re-created IngressRoutes (so
//! every status is due again) and a Lease of its own (so it leads at once). Figures go in
//! BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use isobar_harness::isobar::{Isobar, IsobarOptions, IsobarSource};
use isobar_harness::kube::{KubeClient, KubeCluster, KubeClusterOptions};
use isobar_harness::kube_stack::{
    endpoint_slice, endpoint_slice_api_version, install_deploy, service, ISOBAR_NAMESPACE,
    ISOBAR_SERVICE_ACCOUNT,
};
use isobar_harness::ports::free_port;
use serde_json::{json, Value};

#[path = "common/cli.rs"]
mod cli;

/// The namespace of the bench's objects.
const NAMESPACE: &str = "scale";
/// Objects created at once (each request is its own HTTPS connection in the harness client).
const CREATE_CONCURRENCY: usize = 16;
/// How often isobar is checked to be running while statuses are awaited.
const ALIVE_CHECK: Duration = Duration::from_millis(500);
/// How long one run may take to get every status written.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// Size of each unrelated Secret's data.
const SECRET_BYTES: usize = 4096;
const INGRESS_ROUTES: &str = "/apis/contour.heptio.com/v1beta1/namespaces/scale/ingressroutes";

/// Status at scale: how long a freshly started isobar takes to write N IngressRoute statuses on a
/// real kube-apiserver, and its RSS then.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    cargo: cli::CargoBench,
    /// IngressRoutes (each with its Service and EndpointSlice).
    #[arg(long, value_parser = cli::count, default_value = "3000")]
    routes: usize,
    /// Unrelated 4 KiB Opaque Secrets.
    #[arg(long, value_parser = cli::count, default_value = "0")]
    secrets: usize,
    /// Runs of each isobar.
    #[arg(long, value_parser = cli::count, default_value = "3")]
    runs: usize,
    /// `[LABEL=]PATH`, repeatable: runs alternate between the binaries (default: `ISOBAR_BIN`, else
    /// the one built with the bench).
    #[arg(long = "isobar", value_name = "[LABEL=]PATH", value_parser = labelled_binary)]
    isobars: Vec<(String, PathBuf)>,
    /// An `isobar serve` argument, as `--isobar-arg=--flag=value` (repeatable).
    #[arg(long = "isobar-arg", value_name = "ARG", allow_hyphen_values = true)]
    isobar_args: Vec<String>,
    /// Where each run's isobar log is copied, if anywhere.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

/// `LABEL=PATH` or `PATH` (labelled `isobar`).
fn labelled_binary(value: &str) -> Result<(String, PathBuf), String> {
    Ok(match value.split_once('=') {
        Some((label, path)) => (label.to_string(), PathBuf::from(path)),
        None => ("isobar".to_string(), PathBuf::from(value)),
    })
}

fn parse_args() -> Args {
    let mut args = <Args as clap::Parser>::parse();
    if args.isobars.is_empty() {
        args.isobars
            .push(("isobar".to_string(), cli::default_isobar()));
    }
    args
}

/// POSTs every object to `collection`, `CREATE_CONCURRENCY` at a time.
async fn create_all(
    client: &KubeClient,
    collection: &str,
    objects: impl Iterator<Item = Value>,
) -> anyhow::Result<()> {
    futures::stream::iter(objects)
        .map(|object| async move {
            client
                .post_json(collection, &object)
                .await
                .with_context(|| format!("creating {} in {collection}", object["metadata"]["name"]))
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
}

fn ingress_route(i: usize) -> Value {
    json!({
        "apiVersion": "contour.heptio.com/v1beta1",
        "kind": "IngressRoute",
        "metadata": {"name": format!("r{i}"), "namespace": NAMESPACE},
        "spec": {
            "virtualhost": {"fqdn": format!("r{i}.scale.test")},
            "routes": [{"match": "/", "services": [{"name": format!("s{i}"), "port": 80}]}],
        },
    })
}

fn namespaced(mut object: Value) -> Value {
    object["metadata"]["namespace"] = json!(NAMESPACE);
    object
}

/// An Opaque Secret isobar has no use for: `SECRET_BYTES` of data under a key no TLS reader
/// looks at.
fn unrelated_secret(i: usize) -> Value {
    let blob: String = (0..SECRET_BYTES)
        .map(|n| char::from(b'a' + ((n + i) % 26) as u8))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("noise-{i}"), "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"blob": blob},
    })
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: f64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after = stat
        .rsplit_once(')')
        .context("a /proc stat without a command")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: f64 = fields
        .get(11..13)
        .context("a short /proc stat")?
        .iter()
        .map(|f| f.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    // USER_HZ, 100 on Linux everywhere that matters.
    Ok(ticks / 100.0)
}

struct Measured {
    /// isobar's `/readyz` answers 200: its first configuration is built, and statuses are known.
    ready: f64,
    /// The first list in which some IngressRoute has a status.
    first: f64,
    /// The first list in which all have.
    seconds: f64,
    /// isobar's CPU time until then.
    cpu: f64,
    rss_mib: f64,
    peak_mib: f64,
}

/// Starts isobar and waits until every IngressRoute has a status.
async fn run_once(
    args: &Args,
    (label, bin): &(String, PathBuf),
    client: &KubeClient,
    kubeconfig: &Path,
    work: &Path,
    run: usize,
) -> anyhow::Result<Measured> {
    let mut extra = vec![
        "--ingress-status-address".to_string(),
        "lb.isobar.test".to_string(),
        "--leader-election-lease-name".to_string(),
        format!("status-scale-{label}-{run}"),
    ];
    extra.extend(args.isobar_args.iter().cloned());
    // Statuses are seen through a watch opened before isobar starts: polling lists of every
    // IngressRoute would take the API server's cores from the writes being timed.
    let watch = client
        .watch_collection(INGRESS_ROUTES, |r| {
            Ok(r["status"]["currentStatus"].is_string())
        })
        .await?;
    let started = Instant::now();
    let mut statuses = tokio::spawn(watch.wait_for_all(args.routes, started, RUN_TIMEOUT));
    let isobar = Isobar::start(IsobarOptions {
        bin: bin.clone(),
        source: IsobarSource::Kubeconfig(kubeconfig.to_path_buf()),
        certs: None,
        xds_port: free_port()?,
        http_port: free_port()?,
        debug_port: free_port()?,
        envoy_http_port: free_port()?,
        envoy_https_port: free_port()?,
        work_dir: work.to_path_buf(),
        extra_args: extra,
    })
    .await?;
    isobar.wait_ready(RUN_TIMEOUT).await?;
    let ready = started.elapsed().as_secs_f64();
    let reached = loop {
        tokio::select! {
            reached = &mut statuses => break reached?,
            // Not a synchronisation: how often isobar is checked to be alive meanwhile.
            () = tokio::time::sleep(ALIVE_CHECK) => isobar.process().ensure_running()?,
        }
    };
    let reached =
        reached.with_context(|| format!("waiting for statuses\n{}", isobar.log_tail(30)))?;
    let (rss_mib, peak_mib) = memory_mib(isobar.process().pid())?;
    let cpu = cpu_seconds(isobar.process().pid())?;
    if let Some(dir) = &args.keep_logs {
        std::fs::create_dir_all(dir)?;
        let p = isobar.process();
        std::fs::copy(p.stdout_path(), dir.join(format!("{label}-{run}.out")))?;
        std::fs::copy(p.stderr_path(), dir.join(format!("{label}-{run}.err")))?;
    }
    Ok(Measured {
        ready,
        first: reached.first.as_secs_f64(),
        seconds: reached.all.as_secs_f64(),
        cpu,
        rss_mib,
        peak_mib,
    })
}

/// Deletes the bench's IngressRoutes and creates them again, without status.
async fn recreate_routes(client: &KubeClient, routes: usize) -> anyhow::Result<()> {
    let (status, body) = client.raw("DELETE", INGRESS_ROUTES).await?;
    if status >= 300 {
        bail!("deleting the IngressRoutes: {status} {body}");
    }
    create_all(client, INGRESS_ROUTES, (0..routes).map(ingress_route)).await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One row per binary: medians, and every run's time to all statuses.
fn print_table(args: &Args, rows: &[Vec<Measured>]) {
    let flags = if args.isobar_args.is_empty() {
        "defaults".to_string()
    } else {
        format!("`{}`", args.isobar_args.join(" "))
    };
    println!();
    println!(
        "{} IngressRoutes, {} unrelated Secrets, isobar flags: {flags}; medians of {} runs",
        args.routes, args.secrets, args.runs
    );
    println!();
    println!("| isobar | ready (s) | first status (s) | all statuses (s) | all statuses, each run (s) | isobar CPU until then (s) | RSS then (MiB) | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|---|---:|---:|---:|");
    for ((label, _), runs) in args.isobars.iter().zip(rows) {
        let m = |f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
        let each: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.seconds)).collect();
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.0} | {:.0} |",
            m(|r| r.ready),
            m(|r| r.first),
            m(|r| r.seconds),
            each.join(", "),
            m(|r| r.cpu),
            m(|r| r.rss_mib),
            m(|r| r.peak_mib),
        );
    }
}

// The API server's processes die with the thread that spawned them: keep everything on this one.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let binaries: Vec<String> = args
        .isobars
        .iter()
        .map(|(label, path)| format!("{label}={}", path.display()))
        .collect();
    eprintln!(
        "status_scale: isobar {}, {} IngressRoutes, {} unrelated Secrets, {} runs",
        binaries.join(" "),
        args.routes,
        args.secrets,
        args.runs
    );
    let root = tempfile::Builder::new()
        .prefix("isobar-status-scale-")
        .tempdir()?;
    let cluster = KubeCluster::from_env_or_start(KubeClusterOptions::default()).await?;
    let admin = cluster.client().clone();
    install_deploy(
        &admin,
        &PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base")),
    )
    .await?;
    let token = admin
        .service_account_token(ISOBAR_NAMESPACE, ISOBAR_SERVICE_ACCOUNT)
        .await?;
    let kubeconfig = root.path().join("isobar.kubeconfig");
    cluster.write_kubeconfig_for_token(&kubeconfig, &token)?;
    admin
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .await?;

    let filled = Instant::now();
    let slices = endpoint_slice_api_version(&admin).await?;
    create_all(
        &admin,
        &format!("/api/v1/namespaces/{NAMESPACE}/services"),
        (0..args.routes).map(|i| namespaced(service(&format!("s{i}")))),
    )
    .await?;
    create_all(
        &admin,
        &format!("/apis/{slices}/namespaces/{NAMESPACE}/endpointslices"),
        (0..args.routes).map(|i| {
            namespaced(endpoint_slice(
                &slices,
                &format!("s{i}"),
                &format!("s{i}-1"),
                8080,
            ))
        }),
    )
    .await?;
    create_all(
        &admin,
        &format!("/api/v1/namespaces/{NAMESPACE}/secrets"),
        (0..args.secrets).map(unrelated_secret),
    )
    .await?;
    eprintln!("objects created in {:.1?}", filled.elapsed());

    // Runs alternate between the binaries, so that load from elsewhere weighs on each alike.
    let mut rows: Vec<Vec<Measured>> = args.isobars.iter().map(|_| Vec::new()).collect();
    for run in 0..args.runs {
        for (isobar, measured) in args.isobars.iter().zip(rows.iter_mut()) {
            recreate_routes(&admin, args.routes).await?;
            let work = root.path().join(format!("{}-{run}", isobar.0));
            std::fs::create_dir_all(&work)?;
            let m = run_once(&args, isobar, &admin, &kubeconfig, &work, run).await?;
            eprintln!(
                "{} run {run}: ready {:.2} s, first status {:.2} s, all {:.2} s, CPU {:.2} s, RSS {:.0} MiB (peak {:.0} MiB)",
                isobar.0, m.ready, m.first, m.seconds, m.cpu, m.rss_mib, m.peak_mib
            );
            measured.push(m);
        }
    }
    print_table(&args, &rows);
    Ok(())
}
