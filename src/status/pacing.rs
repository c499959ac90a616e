//! When the status writer's next pass may start. A change after a quiet spell is written at once (no
//! hold-off for an isolated change); after a pass that wrote, the next waits [`ECHO_GRACE`] from that
//! pass's end. Meanwhile the writes come back through the watches (each object with the status just
//! written), so the next pass does not take them for statuses still due, and the changes of a burst
//! are taken together.

use std::time::Duration;

use tokio::time::Instant;

/// How long after a pass that wrote the next one waits.
pub const ECHO_GRACE: Duration = Duration::from_millis(200);

/// The writer's pace: when its last writing pass ended.
#[derive(Debug, Default)]
pub struct Pacing {
    quiet_from: Option<Instant>,
}

impl Pacing {
    /// When a pass woken at `now` may start: `now`, unless a writing pass ended less than
    /// [`ECHO_GRACE`] before.
    pub fn start_at(&self, now: Instant) -> Instant {
        self.quiet_from.map_or(now, |quiet| quiet.max(now))
    }

    /// A pass that wrote (or published) something ended at `now`.
    pub fn wrote(&mut self, now: Instant) {
        self.quiet_from = Some(now + ECHO_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolated_change_is_written_at_once() {
        let now = Instant::now();
        assert_eq!(Pacing::default().start_at(now), now);
    }

    #[test]
    fn a_change_soon_after_a_writing_pass_waits_for_its_echoes() {
        let end = Instant::now();
        let mut pacing = Pacing::default();
        pacing.wrote(end);
        let soon = end + Duration::from_millis(50);
        assert_eq!(pacing.start_at(soon), end + ECHO_GRACE);
        assert_eq!(pacing.start_at(end), end + ECHO_GRACE);
    }

    #[test]
    fn a_change_after_the_grace_is_written_at_once() {
        let end = Instant::now();
        let mut pacing = Pacing::default();
        pacing.wrote(end);
        let later = end + ECHO_GRACE + Duration::from_millis(1);
        assert_eq!(pacing.start_at(later), later);
    }
}
