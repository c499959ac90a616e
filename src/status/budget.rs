//! The request budget of isobar's own writes to the API server (statuses and Events): a token bucket
//! of `burst` requests refilled at `qps` per second, like client-go's `--kube-api-qps`/`--kube-api-burst`
//! (Contour's `--kube-client-qps`/`--kube-client-burst`). The watches are not metered: they are
//! long-lived requests the API server accounts for differently, and starving them would delay the
//! very changes the writes report on.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::{Error, Result};

/// `isobar serve`'s default `--kube-client-qps` and `--kube-client-burst`, from
/// `benches/status_scale.rs` on the 2-core development VM (BENCHMARKS.md): there the API server, not
/// this budget, bounds a new leader's 3,000 IngressRoute statuses (~1,000 writes/s at best, 4.5–6 s
/// from start); a lower qps would make the budget the bound.
pub const DEFAULT_QPS: f32 = 1000.0;
pub const DEFAULT_BURST: u32 = 100;

/// Requests per second and the burst on top: a budget that admits requests (checked when made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBudget {
    quota: Quota,
}

impl ClientBudget {
    /// `qps` sustained requests per second (`--kube-client-qps`), of which `burst` may start at once
    /// after a quiet spell (`--kube-client-burst`).
    pub fn new(qps: f32, burst: u32) -> Result<ClientBudget> {
        let burst = NonZeroU32::new(burst)
            .ok_or_else(|| Error::Config("--kube-client-burst must be at least 1".into()))?;
        let period = (qps.is_finite() && qps > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / f64::from(qps)).ok())
            .flatten()
            .and_then(Quota::with_period)
            .ok_or_else(|| {
                Error::Config(format!(
                    "--kube-client-qps must be a positive number (at most 10^9), not {qps}"
                ))
            })?;
        Ok(ClientBudget {
            quota: period.allow_burst(burst),
        })
    }

    /// How many writes may be in flight at once: the burst. The bucket never lets more than that
    /// start at once, so it is what the budget already lets the API server see from isobar in one
    /// instant; and it sustains `qps` as long as a write takes less than `burst / qps` (100 ms at the
    /// defaults; a status PATCH takes a few ms on a healthy API server).
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.quota.burst_size().get()).unwrap_or(usize::MAX)
    }
}

impl Default for ClientBudget {
    fn default() -> Self {
        // The defaults are valid (a test says so); the fallback only satisfies the types.
        ClientBudget::new(DEFAULT_QPS, DEFAULT_BURST).unwrap_or(ClientBudget {
            quota: Quota::per_second(NonZeroU32::MIN),
        })
    }
}

/// Tokio's clock for governor: the limiter reads the clock the waits sleep on (and governor needs no
/// clock crate of its own).
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A shared token bucket; every write awaits [`WriteBudget::acquire`] first.
#[derive(Debug)]
pub struct WriteBudget {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>,
    clock: TokioClock,
}

impl WriteBudget {
    /// A full bucket.
    pub fn new(budget: ClientBudget) -> WriteBudget {
        let clock = TokioClock {
            origin: tokio::time::Instant::now(),
        };
        WriteBudget {
            limiter: RateLimiter::direct_with_clock(budget.quota, clock),
            clock,
        }
    }

    /// Waits until the budget allows one more request, and takes it.
    pub async fn acquire(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::FutureExt;

    #[tokio::test]
    async fn the_burst_goes_at_once_and_the_next_request_waits() {
        // One token per 1,000 s: nothing refills while the test runs.
        let budget = WriteBudget::new(ClientBudget::new(0.001, 5).unwrap());
        for n in 0..5 {
            assert!(budget.acquire().now_or_never().is_some(), "request {n}");
        }
        assert!(budget.acquire().now_or_never().is_none());
    }

    #[test]
    fn qps_sets_the_refill_period() {
        for (qps, period) in [(10.0, 100), (0.5, 2_000), (1000.0, 1)] {
            let budget = ClientBudget::new(qps, 3).unwrap();
            assert_eq!(
                budget.quota.replenish_interval(),
                Duration::from_millis(period),
                "qps {qps}"
            );
            assert_eq!(budget.in_flight(), 3);
        }
    }

    #[test]
    fn budgets_that_admit_nothing_are_refused() {
        for (qps, burst) in [
            (0.0, 10),
            (-1.0, 10),
            (f32::NAN, 10),
            (f32::INFINITY, 10),
            (5.0, 0),
        ] {
            assert!(
                ClientBudget::new(qps, burst).is_err(),
                "qps {qps}, burst {burst}"
            );
        }
    }

    #[test]
    fn the_defaults_are_a_budget() {
        let budget = ClientBudget::new(DEFAULT_QPS, DEFAULT_BURST).unwrap();
        assert_eq!(budget, ClientBudget::default());
        assert_eq!(budget.in_flight(), 100);
    }
}
