//! The file-source workload: N Ingresses in a directory, then new Ingresses timed from the file's
//! rename to the first 200 through Envoy, and isobar's memory before and after small changes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use isobar_harness::isobar::IsobarSource;

use crate::args::Args;
use crate::fixture::{changed_path, host, Fixture};
use crate::measure::{until_200, until_status, Percentiles};
use crate::proxy::Proxy;
use crate::rss::{settled_rss, Rss};
use crate::shares::{Readings, Shares};

/// What one file-source run measured.
pub struct FileFigures {
    pub size: usize,
    /// From isobar's start to the first and last Ingress answering through Envoy.
    pub startup: Duration,
    pub new_ingress: Percentiles,
    /// What the new Ingresses cost isobar and Envoy each, on average.
    pub shares: Shares,
    pub rss_loaded: Rss,
    pub rss_changed: Rss,
    pub changes: usize,
}

/// Deadline for one change to show through Envoy: the file source re-reads the directory and
/// Envoy re-applies every virtual host, both in proportion to the size.
fn change_timeout(size: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(10) * size as u32
}

pub async fn run(
    args: &Args,
    envoy_bin: &Path,
    backends: &[u16],
    size: usize,
    work: &Path,
) -> anyhow::Result<FileFigures> {
    let mut fixture = Fixture::new(work.join("manifests"), size, backends.to_vec());
    fixture.write_all()?;
    let started = Instant::now();
    let ready = Duration::from_secs(60) + Duration::from_millis(30) * size as u32;
    let proxy = Proxy::start(
        &args.isobar,
        envoy_bin,
        IsobarSource::Manifests(fixture.dir().to_path_buf()),
        args.isobar_args.clone(),
        ready,
        &work.join("proxy"),
    )
    .await
    .with_context(|| format!("starting isobar and Envoy on {size} Ingresses"))?;
    // The first and the last host: each arrives in Envoy's one route configuration of all hosts,
    // but each has a cluster of its own.
    for i in [0, size - 1] {
        until_200(&proxy, &host(i), "/", started, ready).await?;
    }
    let startup = started.elapsed();
    eprintln!("  {size} Ingresses answer through Envoy {startup:.1?} after isobar's start");
    let rss_loaded = settled_rss(&proxy).await?;

    let timeout = change_timeout(size);
    for c in 0..args.changes {
        let i = fixture.change(c, args.changes)?;
        let (h, p) = (host(i), changed_path(c));
        // `/` is gone once the change is in (404), and the new path routes.
        until_status(&proxy, &h, "/", 404, Instant::now(), timeout).await?;
        until_200(&proxy, &h, &p, Instant::now(), timeout).await?;
    }
    let rss_changed = settled_rss(&proxy).await?;

    let samples = args.samples_for(size);
    let before = Readings::settled(&proxy).await?;
    let mut latencies = Vec::new();
    for k in 0..samples {
        let (i, written) = fixture.add_sample(k)?;
        let took = until_200(&proxy, &host(i), "/", written, timeout)
            .await
            .with_context(|| format!("new Ingress {k} with {size} present"))?;
        latencies.push(took);
    }
    let new_ingress = Percentiles::of(latencies);
    eprintln!("  new Ingress → 200: {}", new_ingress.cell());
    let shares = Readings::after(&proxy, before, samples as u64).await?;
    eprintln!("  per new Ingress: {}", shares.cell());
    Ok(FileFigures {
        size,
        startup,
        new_ingress,
        shares,
        rss_loaded,
        rss_changed,
        changes: args.changes,
    })
}
