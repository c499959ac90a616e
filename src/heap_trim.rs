//! Gives the heap's freed pages back to the kernel once xDS has gone quiet.
//!
//! A push at 10,000 Ingresses encodes responses of several MB per stream (every cluster in one
//! state-of-the-world CDS response) and the build before it leaves its own garbage. The allocator
//! keeps such freed pages, where they count as isobar's resident memory until some later
//! allocation reuses them: with glibc's malloc, 6.7 MiB of the 113 MiB isobar held with one Envoy
//! at 10,000 Ingresses (`malloc_trim` called from gdb). Releasing them once the traffic has stopped
//! ([`crate::allocator::release_free_pages`]) returns them without touching the path a change takes
//! to Envoy.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::supervisor::TaskResult;
use crate::xds::cache::CacheSnapshot;
use crate::xds::stats::XdsStats;

/// How often the activity counters are read.
const TICK: Duration = Duration::from_secs(1);
/// Quiet ticks (no activity) after which the heap is trimmed: after two a burst of changes or an
/// Envoy taking a large response is over; the second trim catches what is freed later, after the
/// stream has gone idle (at 10,000 Ingresses with one Envoy the first trim returned 2 MiB, a
/// trim ~10 s later 4–6 MiB more).
const TRIM_AT_QUIET_TICKS: [u32; 2] = [2, 12];

/// Decides when to trim from a counter that grows with the work that leaves garbage (bytes sent
/// to Envoys, their answers, cache publications): after each stretch of activity, at the quiet
/// ticks of [`TRIM_AT_QUIET_TICKS`] (ticks in which the counter stood still). An idle isobar
/// isn't trimmed again and again.
#[derive(Debug, Default)]
pub struct QuietAfterActivity {
    last: u64,
    /// Quiet ticks since the counter last moved; `None` before it ever moved.
    quiet_ticks: Option<u32>,
}

impl QuietAfterActivity {
    /// Reads the counter; true when the heap should be trimmed now.
    pub fn tick(&mut self, activity: u64) -> bool {
        if activity != self.last {
            self.last = activity;
            self.quiet_ticks = Some(0);
            return false;
        }
        let Some(quiet) = self.quiet_ticks.as_mut() else {
            return false;
        };
        *quiet = quiet.saturating_add(1);
        TRIM_AT_QUIET_TICKS.contains(quiet)
    }
}

/// Trims the heap after each stretch of xDS activity, for as long as isobar runs.
pub async fn run(
    stats: Arc<XdsStats>,
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
) -> TaskResult {
    let mut decision = QuietAfterActivity::default();
    let mut publications = 0u64;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if cache.has_changed().unwrap_or(false) {
            cache.borrow_and_update();
            publications += 1;
        }
        // Envoy's answers count too: taking an ACK of 10,000 resources leaves garbage of its own.
        let activity = [&stats.response_bytes, &stats.acks, &stats.nacks]
            .iter()
            .fold(publications, |sum, counter| {
                sum.wrapping_add(counter.load(Ordering::Relaxed))
            });
        if decision.tick(activity) {
            let started = Instant::now();
            let before = resident_pages();
            let jemalloc_purged = tokio::task::spawn_blocking(crate::allocator::release_free_pages)
                .await
                .unwrap_or(false);
            tracing::debug!(
                jemalloc_purged,
                resident_pages_before = before,
                resident_pages_after = resident_pages(),
                took = ?started.elapsed(),
                "heap trimmed after xDS activity"
            );
        }
    }
}

/// isobar's resident pages, for the log.
fn resident_pages() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticks (1-based) at which `d` says to trim while the counter reads `activity`.
    fn trims(d: &mut QuietAfterActivity, activity: u64, ticks: u32) -> Vec<u32> {
        (1..=ticks).filter(|_| d.tick(activity)).collect()
    }

    #[test]
    fn trims_twice_after_activity_has_stood_still_then_not_again() {
        let mut d = QuietAfterActivity::default();
        assert_eq!(
            trims(&mut d, 0, 30),
            Vec::<u32>::new(),
            "nothing happened yet"
        );
        // The first tick sees the counter move; the quiet ticks count from the next.
        assert_eq!(trims(&mut d, 10, 30), vec![3, 13]);
        assert_eq!(
            trims(&mut d, 10, 30),
            Vec::<u32>::new(),
            "idle: no more trims"
        );
    }

    #[test]
    fn activity_during_the_quiet_ticks_starts_them_again() {
        let mut d = QuietAfterActivity::default();
        assert_eq!(trims(&mut d, 5, 2), Vec::<u32>::new());
        assert_eq!(
            trims(&mut d, 7, 14),
            vec![3, 13],
            "new activity before the first trim"
        );
        assert_eq!(
            trims(&mut d, 9, 5),
            vec![3],
            "new activity before the second trim"
        );
        assert_eq!(trims(&mut d, 9, 20), vec![8]);
    }
}
