//! What the scale bench reads: the first 200 through Envoy after a change, percentiles of a few
//! samples, and a process's resident memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use isobar_harness::http::{send, RequestSpec};

use crate::proxy::Proxy;

/// Pause between two requests of a latency poll: short, since the figure is the time to the first
/// 200, and each request is a loopback connection Envoy answers in well under a millisecond.
const TIGHT_POLL: Duration = Duration::from_millis(2);
/// Bound on one polled request (a stuck one must not stall the poll until the deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Polls `GET path` with `Host: host` through the proxy's Envoy every 2 ms until it answers 200,
/// and returns the time since `since`. Fails at `timeout` after `since`, or at once if isobar or
/// Envoy exits, naming the host and the last answer.
pub async fn until_200(
    proxy: &Proxy,
    host: &str,
    path: &str,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    until_status(proxy, host, path, 200, since, timeout).await
}

/// Like [`until_200`] for any `status` (e.g. 404 once a route is gone).
pub async fn until_status(
    proxy: &Proxy,
    host: &str,
    path: &str,
    status: u16,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut spec = RequestSpec::get(proxy.http, host, path);
    spec.timeout = REQUEST_TIMEOUT;
    loop {
        let last = match send(&spec).await {
            Ok(r) if r.status == status => return Ok(since.elapsed()),
            Ok(r) => format!("status {}", r.status),
            Err(e) => e.to_string(),
        };
        if since.elapsed() > timeout {
            bail!(
                "timed out after {timeout:?} waiting for GET {path} with Host {host} through \
                 Envoy to answer {status} (last: {last})\n{}",
                proxy.isobar.log_tail(20)
            );
        }
        proxy.ensure_running()?;
        tokio::time::sleep(TIGHT_POLL).await;
    }
}

/// Nearest-rank percentiles of a few latency samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub samples: usize,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort_unstable();
        let rank = |p: f64| {
            let k = (p / 100.0 * samples.len() as f64).ceil() as usize;
            samples
                .get(k.saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        Percentiles {
            p50: rank(50.0),
            p99: rank(99.0),
            samples: samples.len(),
        }
    }

    /// `p50 12.3 ms, p99 45.6 ms (N samples)`; below 100 samples p99 is the maximum, and says so.
    pub fn cell(&self) -> String {
        let p99 = if self.samples < 100 {
            "p99 (= max)"
        } else {
            "p99"
        };
        format!(
            "p50 {}, {p99} {} ({} samples)",
            ms(self.p50),
            ms(self.p99),
            self.samples
        )
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The resident set size of process `pid` (`VmRSS` of `/proc/PID/status`), in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib as f64 / 1024.0)
}
