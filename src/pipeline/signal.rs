//! How the sources hand work to the builder thread: a signal that coalesces. Whatever arrives while a
//! build runs is merged and taken by the next one, so an isolated change waits for nothing (no
//! hold-off) and a burst costs only as many builds as the builder has time for.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::source::Change;

/// Work waiting for the builder, merged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The most significant change since the last build.
    pub change: Option<Change>,
    /// When the earliest of those changes was seen, for `isobar_change_to_push_seconds`.
    pub seen: Option<Instant>,
    /// Envoy answered (ACK or NACK) since the last build.
    pub verdict: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.change.is_none() && !self.verdict
    }
}

#[derive(Debug, Default)]
struct State {
    pending: Pending,
    closed: bool,
}

/// The sources' side signals; the builder thread waits.
#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<State>,
    ready: Condvar,
}

impl Signal {
    /// A source saw `change` at `seen`. Only changes that reach Envoy count for the time a change
    /// takes to be pushed.
    pub fn change(&self, change: Change, seen: Instant) {
        self.update(|p| {
            p.change = p.change.max(Some(change));
            if change > Change::StatusOnly {
                p.seen = Some(p.seen.map_or(seen, |s| s.min(seen)));
            }
        });
    }

    /// Envoy answered a push.
    pub fn verdict(&self) {
        self.update(|p| p.verdict = true);
    }

    /// No more work: the builder finishes what is pending and stops.
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.ready.notify_all();
    }

    /// Blocks until there is work and takes all of it; `None` once closed and drained (or if a
    /// signaller panicked while holding the lock).
    pub fn wait(&self) -> Option<Pending> {
        let mut state = self.state.lock().ok()?;
        loop {
            if !state.pending.is_empty() {
                return Some(std::mem::take(&mut state.pending));
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).ok()?;
        }
    }

    fn update(&self, f: impl FnOnce(&mut Pending)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s.pending);
        }
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn changes_merge_to_the_most_significant_and_the_earliest_time_of_one_that_reaches_envoy() {
        let signal = Signal::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        signal.change(Change::StatusOnly, t0);
        signal.change(Change::Endpoints, t1);
        signal.change(Change::Routing, t1 + Duration::from_millis(9));
        assert_eq!(
            signal.wait(),
            Some(Pending {
                change: Some(Change::Routing),
                seen: Some(t1),
                verdict: false,
            })
        );
    }

    #[test]
    fn a_verdict_alone_is_work_and_is_taken_once() {
        let signal = Signal::default();
        signal.verdict();
        signal.verdict();
        let taken = signal.wait().expect("pending work");
        assert!(taken.verdict && taken.change.is_none());
        signal.close();
        assert_eq!(signal.wait(), None);
    }

    #[test]
    fn close_lets_pending_work_be_taken_first() {
        let signal = Signal::default();
        signal.change(Change::Routing, Instant::now());
        signal.close();
        assert!(signal.wait().is_some());
        assert_eq!(signal.wait(), None);
    }

    #[test]
    fn a_waiting_builder_wakes_for_work_from_another_thread() {
        let signal = Arc::new(Signal::default());
        let waiter = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || signal.wait())
        };
        signal.change(Change::Endpoints, Instant::now());
        let taken = waiter.join().expect("waiter thread");
        assert_eq!(taken.and_then(|p| p.change), Some(Change::Endpoints));
    }
}
