//! isobar's resident memory once it has settled.

use std::time::{Duration, Instant};

use crate::proxy::Proxy;

/// Pause between two memory readings.
const POLL: Duration = Duration::from_millis(200);
/// The memory counts as settled once it stayed within [`BAND_MIB`] for this long. Longer than
/// isobar's heap trimmer takes to return the freed pages of the last burst (its last trim comes
/// 12–13 s after the xDS traffic stops, `src/heap_trim.rs`): what is read is the memory an idle
/// isobar keeps, not the garbage of the last change.
const STEADY: Duration = Duration::from_secs(15);
const BAND_MIB: f64 = 1.0;
/// How long the memory may take to settle; after that the last reading is reported, marked.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A memory reading.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub mib: f64,
    /// Whether it stayed within [`BAND_MIB`] for [`STEADY`] before it was read.
    pub settled: bool,
}

impl Rss {
    pub fn cell(&self) -> String {
        if self.settled {
            format!("{:.1} MiB", self.mib)
        } else {
            format!(
                "{:.1} MiB (still moving after {SETTLE_TIMEOUT:?})",
                self.mib
            )
        }
    }
}

/// Polls isobar's `VmRSS` until it holds still (see [`STEADY`]); a reading that never does is
/// returned marked, not dropped.
pub async fn settled_rss(proxy: &Proxy) -> anyhow::Result<Rss> {
    let start = Instant::now();
    let mut low = proxy.isobar_rss_mib()?;
    let mut high = low;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        let now = proxy.isobar_rss_mib()?;
        low = low.min(now);
        high = high.max(now);
        if high - low > BAND_MIB {
            (low, high, since) = (now, now, Instant::now());
        }
        if since.elapsed() >= STEADY {
            return Ok(Rss {
                mib: now,
                settled: true,
            });
        }
        if start.elapsed() >= SETTLE_TIMEOUT {
            return Ok(Rss {
                mib: now,
                settled: false,
            });
        }
    }
}
