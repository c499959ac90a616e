//! Where a sample's time goes: isobar's part (a change seen → the xDS cache updated, its
//! `isobar_change_to_push_seconds` histogram) beside Envoy's (the time its CDS and RDS
//! subscriptions spent applying updates, their `update_duration` histograms). Each is read as a
//! histogram's sum and count before and after the samples, so the figures are the samples' own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::measure::ms;
use crate::proxy::Proxy;

/// A histogram's running totals: the sum of what it observed, in milliseconds, and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    sum_ms: f64,
    count: u64,
}

impl Totals {
    fn since(self, before: Totals) -> Totals {
        Totals {
            sum_ms: self.sum_ms - before.sum_ms,
            count: self.count.saturating_sub(before.count),
        }
    }
}

/// The three histograms at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    isobar: Totals,
    cds: Totals,
    rds: Totals,
}

/// Envoy merges its histograms into what the admin endpoint shows at each stats flush (every 5 s
/// by default), so the samples' updates show up to that long after the last one.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

impl Readings {
    pub async fn take(proxy: &Proxy) -> anyhow::Result<Readings> {
        let isobar = proxy.isobar.metrics().await.context("isobar /metrics")?;
        // Prometheus text: Envoy's histograms with their sums (the JSON form has quantiles only).
        // Filtered: with 10,000 clusters the whole text is tens of MB.
        let envoy = proxy
            .envoy
            .admin_get("/stats/prometheus?filter=update_duration")
            .await
            .context("Envoy /stats/prometheus")?;
        Ok(Readings {
            // isobar observes seconds; Envoy's update_duration is in milliseconds.
            isobar: scaled(
                totals(&isobar, "isobar_change_to_push_seconds", None)?,
                1000.0,
            ),
            cds: totals(&envoy, "envoy_cluster_manager_cds_update_duration", None)?,
            rds: totals(
                &envoy,
                "envoy_http_rds_update_duration",
                Some("envoy_rds_route_config=\"ingress_http\""),
            )?,
        })
    }

    /// The readings once Envoy's histograms show at least `rds_updates` more RDS updates than
    /// `before` (one per sample at least: each new Ingress changes `ingress_http`).
    pub async fn after(
        proxy: &Proxy,
        before: Readings,
        rds_updates: u64,
    ) -> anyhow::Result<Shares> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            let now = Readings::take(proxy).await?;
            let rds = now.rds.since(before.rds);
            if rds.count >= rds_updates {
                return Ok(Shares {
                    isobar: now.isobar.since(before.isobar),
                    cds: now.cds.since(before.cds),
                    rds,
                    samples: rds_updates,
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "Envoy's RDS update_duration histogram shows {} updates since the samples \
                     began, not the {rds_updates} expected, after {FLUSH_TIMEOUT:?}",
                    rds.count
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// What the samples cost each side, in total.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    isobar: Totals,
    cds: Totals,
    rds: Totals,
    samples: u64,
}

impl Shares {
    /// `isobar 1.2 ms; Envoy CDS 150.3 ms, RDS 98.1 ms` per sample, with the update counts.
    pub fn cell(&self) -> String {
        let per_sample = |t: Totals| {
            let mean = Duration::from_secs_f64(t.sum_ms / 1000.0 / self.samples.max(1) as f64);
            format!("{} ({} updates)", ms(mean), t.count)
        };
        format!(
            "isobar {}; Envoy CDS {}, RDS {}",
            per_sample(self.isobar),
            per_sample(self.cds),
            per_sample(self.rds)
        )
    }
}

fn scaled(t: Totals, factor: f64) -> Totals {
    Totals {
        sum_ms: t.sum_ms * factor,
        count: t.count,
    }
}

/// The `_sum` and `_count` of histogram `name` in Prometheus text, over the series whose labels
/// contain `label` (all series when `None`). A histogram that is absent is an error: the figure
/// would silently read zero.
fn totals(text: &str, name: &str, label: Option<&str>) -> anyhow::Result<Totals> {
    let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
    let (mut totals, mut seen) = (Totals::default(), false);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = series.split('{').next().unwrap_or(series);
        if label.is_some_and(|l| !series.contains(l)) {
            continue;
        }
        let value: f64 = match value.parse() {
            Ok(v) => v,
            Err(_) => continue,
        };
        if metric == sum_name {
            totals.sum_ms += value;
            seen = true;
        } else if metric == count_name {
            totals.count += value as u64;
        }
    }
    if !seen {
        bail!("no histogram {name} (labels containing {label:?}) in the Prometheus text");
    }
    Ok(totals)
}
