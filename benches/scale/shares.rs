//! Where a sample's time goes: isobar's part (a change seen → the xDS cache updated, its
//! `isobar_change_to_push_seconds` histogram), Envoy's answers as isobar timed them (response sent
//! → ACK, `isobar_xds_answer_seconds{type}`, where the binary has it), and Envoy's own account (the
//! time its CDS and RDS subscriptions spent applying updates, their `update_duration` histograms).
//! Each is read as a histogram's sum and count before and after the samples, so the figures are
//! the samples' own.

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

/// The histograms at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    isobar: Totals,
    /// isobar's timing of Envoy's answers to cluster, endpoint and route responses; `None` from
    /// a binary without `isobar_xds_answer_seconds`.
    answers: Option<[Totals; 3]>,
    cds: Totals,
    rds: Totals,
}

/// The resource kinds whose answers a new Ingress waits for, in the order they are sent.
const ANSWERED: [&str; 3] = ["cluster", "endpoint", "route"];

/// How long Envoy's histograms may take to catch up with its counters: a few stats flushes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

impl Readings {
    /// The histograms once Envoy's show every update its counters have counted: Envoy merges
    /// histograms into what the admin endpoint shows only at a stats flush (every 5 s by default),
    /// while counters are live. Without this wait, updates from before the samples would be
    /// counted as theirs.
    pub async fn settled(proxy: &Proxy) -> anyhow::Result<Readings> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            let (readings, behind) = Readings::take(proxy).await?;
            if behind == 0 {
                return Ok(readings);
            }
            if Instant::now() > deadline {
                bail!(
                    "Envoy's update_duration histograms still miss {behind} of the updates its \
                     update_success counters counted after {FLUSH_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The readings, and how many successful CDS and RDS updates Envoy's histograms don't show
    /// yet.
    async fn take(proxy: &Proxy) -> anyhow::Result<(Readings, u64)> {
        let isobar = proxy.isobar.metrics().await.context("isobar /metrics")?;
        // Prometheus text: Envoy's histograms with their sums (the JSON form has quantiles only).
        // Filtered: with 10,000 clusters the whole text is tens of MB.
        let envoy = proxy
            .envoy
            .admin_get("/stats/prometheus?filter=update_")
            .await
            .context("Envoy /stats/prometheus")?;
        let rds_label = Some("envoy_rds_route_config=\"ingress_http\"");
        let readings = Readings {
            // isobar observes seconds; Envoy's update_duration is in milliseconds.
            isobar: scaled(
                totals(&isobar, "isobar_change_to_push_seconds", None)?,
                1000.0,
            ),
            answers: answers(&isobar),
            cds: totals(&envoy, "envoy_cluster_manager_cds_update_duration", None)?,
            rds: totals(&envoy, "envoy_http_rds_update_duration", rds_label)?,
        };
        let successes = counter(&envoy, "envoy_cluster_manager_cds_update_success", None)?
            + counter(&envoy, "envoy_http_rds_update_success", rds_label)?;
        let behind = successes.saturating_sub(readings.cds.count + readings.rds.count);
        Ok((readings, behind))
    }

    /// What the samples cost since `before`, once Envoy's histograms are settled and show at least
    /// `samples` RDS updates (each new Ingress changes `ingress_http`).
    pub async fn after(proxy: &Proxy, before: Readings, samples: u64) -> anyhow::Result<Shares> {
        let now = Readings::settled(proxy).await?;
        let rds = now.rds.since(before.rds);
        if rds.count < samples {
            bail!(
                "Envoy counted {} RDS updates for {samples} new Ingresses",
                rds.count
            );
        }
        Ok(Shares {
            isobar: now.isobar.since(before.isobar),
            answers: now
                .answers
                .zip(before.answers)
                .map(|(now, before)| [0, 1, 2].map(|k| now[k].since(before[k]))),
            cds: now.cds.since(before.cds),
            rds,
            samples,
        })
    }
}

/// What the samples cost each side, in total.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    isobar: Totals,
    answers: Option<[Totals; 3]>,
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
        let answers = match self.answers {
            Some(a) => {
                let each: Vec<String> = ANSWERED
                    .iter()
                    .zip(a)
                    .map(|(kind, t)| format!("{kind} {}", per_sample(t)))
                    .collect();
                format!("Envoy's answers, timed by isobar: {}; ", each.join(", "))
            }
            None => String::new(),
        };
        format!(
            "isobar {}; {answers}Envoy's update_duration: CDS {}, RDS {}",
            per_sample(self.isobar),
            per_sample(self.cds),
            per_sample(self.rds)
        )
    }
}

/// isobar's `isobar_xds_answer_seconds` by [`ANSWERED`] kind, in milliseconds; `None` if the
/// binary does not export it.
fn answers(isobar: &str) -> Option<[Totals; 3]> {
    let mut out = [Totals::default(); 3];
    for (k, kind) in ANSWERED.iter().enumerate() {
        let label = format!("type=\"{kind}\"");
        let t = totals(isobar, "isobar_xds_answer_seconds", Some(&label)).ok()?;
        out[k] = scaled(t, 1000.0);
    }
    Some(out)
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
    for (metric, value) in samples(text, label) {
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

/// The value of counter `name` (summed over the series whose labels contain `label`); absent is
/// an error, as for [`totals`].
fn counter(text: &str, name: &str, label: Option<&str>) -> anyhow::Result<u64> {
    let mut found = None;
    for (_, value) in samples(text, label).filter(|(metric, _)| *metric == name) {
        *found.get_or_insert(0) += value as u64;
    }
    found.with_context(|| {
        format!("no counter {name} (labels containing {label:?}) in the Prometheus text")
    })
}

/// The samples of Prometheus text whose series has `label` (all, for `None`): metric name and value.
fn samples<'a>(text: &'a str, label: Option<&'a str>) -> impl Iterator<Item = (&'a str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(move |(series, _)| label.is_none_or(|l| series.contains(l)))
        .filter_map(|(series, value)| {
            let metric = series.split('{').next().unwrap_or(series);
            Some((metric, value.parse().ok()?))
        })
}
