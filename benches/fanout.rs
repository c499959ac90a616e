//! xDS fan-out: what one Endpoints change and one route change cost every connected client, with 4 real
//! Envoys and 50 ADS probe clients on one `isobar serve`, state-of-the-world or delta ADS, at N
//! Services. Per Envoy: bytes read on its xDS connection and its xDS update counters; per probe: the
//! DiscoveryResponses received and their encoded size. Writes Markdown tables.
//!
//! ```text
//! cargo bench --features e2e --bench fanout -- --services 2000,10000 --modes sotw,delta \
//!     [--isobar PATH] [--label before|after] [--envoys 4] [--probes 50]
//! ```
//!
//! The isobar binary is `--isobar`, else `$ISOBAR_BIN`, else the one this workspace built. Envoy is
//! the harness's (`ENVOY_BIN`, `ISOBAR_ENVOY_VERSION`). Figures go in BENCHMARKS.md.

#[path = "common/cli.rs"]
mod cli;
#[path = "fanout/envoys.rs"]
mod envoys;
#[path = "fanout/manifests.rs"]
mod manifests;
#[path = "fanout/probe.rs"]
mod probe;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use isobar_harness::echo::EchoBackend;
use isobar_harness::envoy::{
    default_envoy_version, envoy_binary, reported_version, Envoy, EnvoyOptions,
};
use isobar_harness::http::{send, RequestSpec};
use isobar_harness::isobar::{
    certgen, write_bootstrap, BootstrapArgs, CertPaths, Isobar, IsobarOptions, IsobarSource, XdsApi,
};
use isobar_harness::ports::free_port;
use isobar_harness::wait_for_async;
use isobar_harness::xds_client::XdsClientTls;

use envoys::Counts;
use probe::{Mode, Probe, Target, Traffic};

/// The route configuration of isobar's plain HTTP listener.
const HTTP_ROUTE_CONFIG: &str = "ingress_http";
/// Pause between polls of Envoy's admin `/stats` (each read walks all of Envoy's stats).
const POLL: Duration = Duration::from_millis(100);
/// After a change has reached everyone, the counters must stay unchanged for as long as the change
/// took to arrive, within these bounds, before they are read: trailing stages of the update. The upper
/// bound stays well below the gaps between Envoys' HTTP/2 keepalive PINGs on their xDS connections
/// (every 30 s each), whose acknowledgements would otherwise never let 4 Envoys look quiet.
const MIN_QUIET: Duration = Duration::from_secs(1);
const MAX_QUIET: Duration = Duration::from_secs(3);

/// Fan-out: one change carried to several real Envoys and ADS probes at N Services, SotW and delta.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    cargo: cli::CargoBench,
    /// Services of each run.
    #[arg(long, value_delimiter = ',', value_parser = cli::count, default_value = "2000,10000")]
    services: Vec<usize>,
    /// ADS flavours measured.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "sotw,delta")]
    modes: Vec<Mode>,
    /// The isobar binary measured (default: `ISOBAR_BIN`, else the one built with the bench).
    #[arg(long, default_value_os_t = cli::default_isobar())]
    isobar: PathBuf,
    /// Printed in the table header (e.g. `before`, `after`).
    #[arg(long, default_value = "-")]
    label: String,
    /// Real Envoys connected.
    #[arg(long, value_parser = cli::count, default_value = "4")]
    envoys: usize,
    /// ADS probes connected besides the Envoys.
    #[arg(long, value_parser = cli::count, default_value = "50")]
    probes: usize,
}

/// Keeps only the stats the bench reads (xDS subscriptions, the `isobar` cluster, the HTTP
/// listener, each cluster's EDS and membership counters): at 10,000 clusters Envoy has over a
/// million stats, and one filtered `/stats` read took 0.7 s of Envoy's single worker-and-main
/// thread, which polling four Envoys turned into seconds per round. What travels over xDS is the same.
fn keep_bench_stats(bootstrap: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(bootstrap)?;
    let mut json: serde_json::Value = serde_json::from_str(&text)?;
    let root = json
        .as_object_mut()
        .context("the bootstrap is not a JSON object")?;
    if root.contains_key("stats_config") {
        bail!("the bootstrap has a stats_config already: merge the bench's stats matcher into it");
    }
    root.insert(
        "stats_config".into(),
        serde_json::json!({"stats_matcher": {"inclusion_list": {"patterns": [
            {"prefix": "cluster.isobar."},
            {"prefix": "cluster_manager."},
            {"prefix": "listener_manager."},
            {"prefix": "http.ingress_http."},
            {"prefix": "server."},
            {"prefix": "control_plane."},
            {"safe_regex": {"regex": r"^cluster\.[^.]+\.(update_[a-z_]+|membership_total)$"}}
        ]}}}),
    );
    std::fs::write(bootstrap, serde_json::to_string_pretty(&json)?)?;
    Ok(())
}

/// One measured change, or a mode the server does not offer.
enum Outcome {
    Measured {
        envoys: Vec<Counts>,
        probes: Vec<Traffic>,
        probe_types: Vec<(&'static str, Traffic)>,
        time_to_all: Duration,
        time_to_probes: Duration,
    },
    Unsupported,
}

struct Row {
    mode: Mode,
    services: usize,
    change: &'static str,
    outcome: Outcome,
}

struct Startup {
    mode: Mode,
    services: usize,
    isobar_ready: Duration,
    converged: Option<Duration>,
}

/// Everything one (Services, mode) run holds; dropped in field order: probes, Envoys, isobar.
struct Run {
    probes: Vec<Probe>,
    envoys: Vec<Envoy>,
    isobar: Isobar,
    manifests: PathBuf,
    http_addr: SocketAddr,
    clusters: usize,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn max(v: &[u64]) -> u64 {
    v.iter().copied().max().unwrap_or(0)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 * 1024 * 1024 => format!("{:.1} MiB", n as f64 / 1024.0 / 1024.0),
        n if n >= 10 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn tls(certs: &CertPaths) -> anyhow::Result<XdsClientTls> {
    Ok(XdsClientTls {
        ca_pem: Some(std::fs::read(&certs.ca_cert)?),
        client_cert_pem: Some(std::fs::read(&certs.envoy_cert)?),
        client_key_pem: Some(std::fs::read(&certs.envoy_key)?),
        server_name: "isobar".into(),
    })
}

/// Whether the server answers delta ADS at all (`Unimplemented` otherwise).
async fn delta_supported(addr: SocketAddr, tls: XdsClientTls) -> anyhow::Result<Option<String>> {
    let probe = Probe::start(Mode::Delta, addr, tls);
    let answer = wait_for_async(Duration::from_secs(60), "a delta ADS answer", || async {
        let s = probe.state();
        Ok(if s.total.messages > 0 {
            Some(None)
        } else {
            s.failure.clone().map(Some)
        })
    })
    .await?;
    Ok(answer)
}

async fn start_run(
    args: &Args,
    services: usize,
    mode: Mode,
    envoy_bin: &Path,
    echo: &EchoBackend,
    work: &Path,
) -> anyhow::Result<(Option<Run>, Startup)> {
    let manifests_dir = work.join("manifests");
    manifests::write_fixture(&manifests_dir, services, echo.port())?;
    let certs = certgen(&args.isobar, &work.join("certs"))?;
    let (xds, http) = (free_port()?, free_port()?);
    let started = Instant::now();
    let isobar = Isobar::start(IsobarOptions {
        bin: args.isobar.clone(),
        source: IsobarSource::Manifests(manifests_dir.clone()),
        certs: Some(certs.clone()),
        xds_port: xds,
        http_port: free_port()?,
        debug_port: free_port()?,
        envoy_http_port: http,
        envoy_https_port: free_port()?,
        work_dir: work.join("isobar"),
        extra_args: Vec::new(),
    })
    .await?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(60) * services as u32;
    isobar.wait_ready(timeout).await?;
    let mut startup = Startup {
        mode,
        services,
        isobar_ready: started.elapsed(),
        converged: None,
    };
    eprintln!(
        "  isobar ready with {services} Services in {:.1?}",
        startup.isobar_ready
    );
    let tls = tls(&certs)?;
    if mode == Mode::Delta {
        if let Some(why) = delta_supported(isobar.xds_addr(), tls.clone()).await? {
            eprintln!("  delta ADS unsupported: {why}");
            return Ok((None, startup));
        }
    }

    let bootstrap = work.join("envoy-bootstrap.json");
    let bootstrap_args = BootstrapArgs {
        xds_api: match mode {
            Mode::Sotw => XdsApi::Sotw,
            Mode::Delta => XdsApi::Delta,
        },
        ..BootstrapArgs::mtls(xds, &certs)
    };
    write_bootstrap(&args.isobar, &bootstrap, &bootstrap_args)?;
    keep_bench_stats(&bootstrap)?;
    let mut envoys = Vec::new();
    for k in 0..args.envoys {
        // All Envoys bind the same listener port (isobar gives them one listener): Envoy sets
        // SO_REUSEPORT on listeners by default, so the kernel spreads connections over them.
        envoys.push(
            Envoy::start(EnvoyOptions::new(
                envoy_bin.to_path_buf(),
                bootstrap.clone(),
                work.join(format!("envoy-{k}")),
            ))
            .await?,
        );
    }
    let probes = (0..args.probes)
        .map(|_| Probe::start(mode, isobar.xds_addr(), tls.clone()))
        .collect();
    let run = Run {
        probes,
        envoys,
        isobar,
        manifests: manifests_dir,
        http_addr: SocketAddr::from(([127, 0, 0, 1], http)),
        clusters: services,
    };
    converge(&run, timeout).await?;
    startup.converged = Some(started.elapsed());
    let t = Instant::now();
    envoys::read(&run.envoys[0]).await?;
    eprintln!("  one Envoy /stats read takes {:.0?}", t.elapsed());
    eprintln!(
        "  {} Envoys and {} probes converged in {:.1?} (from isobar's start)",
        args.envoys,
        args.probes,
        started.elapsed()
    );
    Ok((Some(run), startup))
}

fn probe_failure(run: &Run) -> anyhow::Result<()> {
    for (i, p) in run.probes.iter().enumerate() {
        if let Some(f) = &p.state().failure {
            bail!("probe {i} failed: {f}");
        }
    }
    for e in &run.envoys {
        e.process().ensure_running()?;
    }
    run.isobar.process().ensure_running()?;
    Ok(())
}

/// Every probe holds every resource, every Envoy has all clusters warm, a listener and its routes,
/// and answers a routed request; then all of it stays quiet.
async fn converge(run: &Run, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    wait_for_async(left(), "every probe to hold every resource", || async {
        probe_failure(run).map_err(|e| isobar_harness::Error::Invalid(e.to_string()))?;
        Ok(run
            .probes
            .iter()
            .all(|p| p.state().complete(run.clusters))
            .then_some(()))
    })
    .await?;
    for (k, envoy) in run.envoys.iter().enumerate() {
        wait_for_async(
            left(),
            &format!("Envoy {k} to hold every cluster and route"),
            || async {
                envoy.process().ensure_running()?;
                let active = envoys::stat(envoy, "cluster_manager.active_clusters").await?;
                let warming = envoys::stat(envoy, "cluster_manager.warming_clusters").await?;
                let routes = envoys::stat(
                    envoy,
                    &format!("http.ingress_http.rds.{HTTP_ROUTE_CONFIG}.update_success"),
                )
                .await?;
                // `active_clusters` counts the static `isobar` cluster too.
                let done = active > run.clusters as u64 && warming == 0 && routes > 0;
                if !done {
                    tokio::time::sleep(POLL).await;
                }
                Ok(done.then_some(()))
            },
        )
        .await
        .map_err(|e| e.with_log(envoy.log_tail(20)))?;
    }
    // Routed requests on fresh connections until each Envoy has answered one.
    let host = manifests::host(0);
    wait_for_async(left(), "a routed request through every Envoy", || async {
        let r = send(&RequestSpec::get(run.http_addr, &host, "/")).await;
        if let Ok(r) = &r {
            if r.status != 200 && r.status != 503 {
                return Err(isobar_harness::Error::Http(format!(
                    "routed request: status {}",
                    r.status
                )));
            }
        }
        for envoy in &run.envoys {
            if envoys::stat(envoy, "http.ingress_http.downstream_rq_2xx").await? == 0 {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    quiet(run, MAX_QUIET.min(left())).await
}

/// Every Envoy's xDS bytes and every probe's message count, for quiet detection.
async fn activity(run: &Run) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let mut rx = Vec::new();
    for envoy in &run.envoys {
        rx.push(envoys::stat(envoy, "cluster.isobar.upstream_cx_rx_bytes_total").await?);
    }
    let msgs = run
        .probes
        .iter()
        .map(|p| p.state().total.messages)
        .collect();
    Ok((rx, msgs))
}

/// Waits until nothing arrives at any Envoy or probe for `window` (bounded by a minute more).
async fn quiet(run: &Run, window: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + window + Duration::from_secs(60);
    let mut last = activity(run).await?;
    let mut since = Instant::now();
    while since.elapsed() < window {
        if Instant::now() > deadline {
            bail!("xDS traffic did not stop for {window:?} within a minute");
        }
        tokio::time::sleep(POLL).await;
        probe_failure(run)?;
        let now = activity(run).await?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok(())
}

/// How an Envoy shows a change arrived: a stat to poll and whether its value says so.
struct EnvoyCheck {
    stat: String,
    done: Box<dyn Fn(u64, u64) -> bool>,
}

/// Applies `change`, waits until `target` reached every probe and `check` every Envoy, then until
/// everything is quiet, and returns what each received meanwhile.
async fn measure(
    run: &Run,
    change: impl FnOnce() -> anyhow::Result<()>,
    target: Target,
    check: EnvoyCheck,
) -> anyhow::Result<Outcome> {
    let mut before = Vec::new();
    let mut stat_before = Vec::new();
    for envoy in &run.envoys {
        before.push(envoys::read(envoy).await?);
        stat_before.push(envoys::stat(envoy, &check.stat).await?);
    }
    let probes_before: Vec<(Traffic, Vec<(&'static str, Traffic)>)> = run
        .probes
        .iter()
        .map(|p| {
            let mut s = p.state();
            s.set_target(target.clone());
            (s.total, s.by_type.iter().map(|(k, v)| (*k, *v)).collect())
        })
        .collect();
    let started = Instant::now();
    change()?;
    let timeout = Duration::from_secs(120) + Duration::from_millis(20) * run.clusters as u32;
    // Envoys the change has not reached yet.
    let pending = std::cell::RefCell::new((0..run.envoys.len()).collect::<Vec<usize>>());
    wait_for_async(timeout, "the change to reach every Envoy and probe", || {
        let (pending, stat_before, check) = (&pending, &stat_before, &check);
        async move {
            probe_failure(run).map_err(|e| isobar_harness::Error::Invalid(e.to_string()))?;
            let mut still = Vec::new();
            let list = pending.borrow().clone();
            for k in list {
                let v = envoys::stat(&run.envoys[k], &check.stat).await?;
                if !(check.done)(stat_before[k], v) {
                    still.push(k);
                }
            }
            let none_left = still.is_empty();
            *pending.borrow_mut() = still;
            let probes_done = run.probes.iter().all(|p| p.state().reached());
            if none_left && probes_done {
                return Ok(Some(()));
            }
            tokio::time::sleep(POLL).await;
            Ok(None)
        }
    })
    .await?;
    let time_to_all = started.elapsed();
    let time_to_probes = run
        .probes
        .iter()
        .filter_map(|p| p.state().reached_at())
        .map(|t| t.saturating_duration_since(started))
        .max()
        .unwrap_or_default();
    quiet(run, time_to_all.clamp(MIN_QUIET, MAX_QUIET)).await?;
    let mut counts = Vec::new();
    for (envoy, b) in run.envoys.iter().zip(&before) {
        counts.push(envoys::read(envoy).await?.since(*b));
    }
    let mut probes = Vec::new();
    let mut by_type: std::collections::BTreeMap<&'static str, Vec<Traffic>> = Default::default();
    for (p, (total, types)) in run.probes.iter().zip(&probes_before) {
        let s = p.state();
        probes.push(s.total.since(*total));
        for (t, now) in &s.by_type {
            let was = types
                .iter()
                .find(|(k, _)| k == t)
                .map(|(_, v)| *v)
                .unwrap_or_default();
            by_type.entry(t).or_default().push(now.since(was));
        }
    }
    let probe_types = by_type
        .into_iter()
        .map(|(t, v)| {
            let m = median(v.iter().map(|x| x.messages).collect());
            let b = median(v.iter().map(|x| x.bytes).collect());
            (
                t,
                Traffic {
                    messages: m,
                    bytes: b,
                },
            )
        })
        .filter(|(_, v)| v.messages > 0)
        .collect();
    Ok(Outcome::Measured {
        envoys: counts,
        probes,
        probe_types,
        time_to_all,
        time_to_probes,
    })
}

async fn measure_changes(run: &Run, services: usize, mode: Mode) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let changed = manifests::cluster(manifests::CHANGED_SERVICE);
    let count = manifests::endpoint_count(true);
    let endpoints = measure(
        run,
        || Ok(manifests::set_endpoints(&run.manifests, true)?),
        Target::Endpoints {
            cluster: changed.clone(),
            count,
        },
        EnvoyCheck {
            stat: format!(
                "cluster.{}.membership_total",
                envoys::cluster_stat_name(&changed)
            ),
            done: Box::new(move |_, v| v == count as u64),
        },
    )
    .await?;
    rows.push(Row {
        mode,
        services,
        change: "endpoints: +1 address",
        outcome: endpoints,
    });
    let to = manifests::CHANGED_SERVICE + 1;
    let route = measure(
        run,
        || Ok(manifests::set_route(&run.manifests, to)?),
        Target::Route {
            route_config: HTTP_ROUTE_CONFIG.into(),
            host: manifests::CHANGED_HOST.into(),
            cluster: manifests::cluster(to),
        },
        EnvoyCheck {
            stat: format!("http.ingress_http.rds.{HTTP_ROUTE_CONFIG}.update_success"),
            done: Box::new(|before, v| v > before),
        },
    )
    .await?;
    rows.push(Row {
        mode,
        services,
        change: "route: backend switched",
        outcome: route,
    });
    Ok(rows)
}

fn print_tables(args: &Args, rows: &[Row], startups: &[Startup]) {
    let label = &args.label;
    println!(
        "\n| label | mode | Services | change | bytes/Envoy (median, max) | xDS updates/Envoy (median) | bytes/probe (median, max) | messages/probe (median, max) | time-to-all (informational) |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let head = format!(
            "| {label} | {} | {} | {} |",
            r.mode.name(),
            r.services,
            r.change
        );
        match &r.outcome {
            Outcome::Unsupported => println!("{head} unsupported | | | | |"),
            Outcome::Measured {
                envoys,
                probes,
                time_to_all,
                time_to_probes,
                ..
            } => {
                let eb: Vec<u64> = envoys.iter().map(|c| c.rx_bytes).collect();
                let eu: Vec<u64> = envoys.iter().map(Counts::updates).collect();
                let pb: Vec<u64> = probes.iter().map(|t| t.bytes).collect();
                let pm: Vec<u64> = probes.iter().map(|t| t.messages).collect();
                println!(
                    "{head} {}, {} | {} | {}, {} | {}, {} | {:.2?} (probes {:.2?}) |",
                    bytes(median(eb.clone())),
                    bytes(max(&eb)),
                    median(eu),
                    bytes(median(pb.clone())),
                    bytes(max(&pb)),
                    median(pm.clone()),
                    max(&pm),
                    time_to_all,
                    time_to_probes
                );
            }
        }
    }
    println!(
        "\nPer Envoy (median of the Envoys) and per probe (median), by xDS type. Envoy: `update_attempt` \
         (EDS: summed over clusters; `no_rebuild` = EDS updates that changed nothing), clusters and \
         listeners added/modified/removed. Probe: responses (bytes) by type.\n"
    );
    println!(
        "| label | mode | Services | change | CDS | LDS | RDS | EDS (no_rebuild) | clusters changed | listeners changed | rejected | probe: responses by type |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let Outcome::Measured {
            envoys,
            probe_types,
            ..
        } = &r.outcome
        else {
            continue;
        };
        let m = |f: &dyn Fn(&Counts) -> u64| median(envoys.iter().map(f).collect());
        let types: Vec<String> = probe_types
            .iter()
            .map(|(t, v)| format!("{t} {} ({})", v.messages, bytes(v.bytes)))
            .collect();
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
            r.mode.name(),
            r.services,
            r.change,
            m(&|c| c.cds.attempt),
            m(&|c| c.lds.attempt),
            m(&|c| c.rds.attempt),
            m(&|c| c.eds.attempt),
            m(&|c| c.eds_no_rebuild),
            m(&|c| c.clusters_changed),
            m(&|c| c.listeners_changed),
            envoys
                .iter()
                .map(|c| c.cds.rejected + c.lds.rejected + c.rds.rejected + c.eds.rejected)
                .sum::<u64>(),
            if types.is_empty() {
                "none".to_string()
            } else {
                types.join(", ")
            }
        );
    }
    println!("\nStart-up (informational): from isobar's start to `/readyz`, and to every Envoy and probe holding everything.\n");
    println!("| label | mode | Services | isobar ready | all converged |");
    println!("|---|---|---:|---:|---:|");
    for s in startups {
        println!(
            "| {label} | {} | {} | {:.1?} | {} |",
            s.mode.name(),
            s.services,
            s.isobar_ready,
            s.converged
                .map(|d| format!("{d:.1?}"))
                .unwrap_or_else(|| "unsupported".into())
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let version = default_envoy_version();
    let envoy_bin = tokio::task::spawn_blocking(move || envoy_binary(&version)).await??;
    let envoy_version = reported_version(&envoy_bin);
    eprintln!(
        "fanout: isobar {}, Envoy {}, {} Envoys, {} probes",
        args.isobar.display(),
        envoy_version,
        args.envoys,
        args.probes
    );
    let root = tempfile::Builder::new()
        .prefix("isobar-fanout-")
        .tempdir()?;
    let echo = EchoBackend::start(
        Path::new(env!("CARGO_BIN_EXE_isobar-echo")),
        "e0",
        &root.path().join("echo"),
    )?;
    let mut rows = Vec::new();
    let mut startups = Vec::new();
    for &services in &args.services {
        for &mode in &args.modes {
            eprintln!("{} Services, {}:", services, mode.name());
            let work = root.path().join(format!("{services}-{}", mode.name()));
            let (run, startup) = start_run(&args, services, mode, &envoy_bin, &echo, &work).await?;
            startups.push(startup);
            match run {
                None => {
                    for change in ["endpoints: +1 address", "route: backend switched"] {
                        rows.push(Row {
                            mode,
                            services,
                            change,
                            outcome: Outcome::Unsupported,
                        });
                    }
                }
                Some(run) => {
                    rows.extend(measure_changes(&run, services, mode).await?);
                    drop(run);
                }
            }
        }
    }
    print_tables(&args, &rows, &startups);
    Ok(())
}
