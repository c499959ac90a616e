//! When the status writer's next pass may start. A change after a quiet spell is written at once (no
//! hold-off for an isolated change). Otherwise passes start at least [`SPACING`] apart, so a burst
//! of wake-ups (every build kicks the writer, endpoint churn included) costs a few passes, not one
//! each; and after a pass that wrote, the next waits [`SPACING`] from that pass's end: meanwhile the
//! writes come back through the watches (each object with the status just written), so the next
//! pass does not take them for statuses still due.

use std::time::Duration;

use tokio::time::Instant;

/// The least time between the starts of two passes, and after the end of a pass that wrote.
pub const SPACING: Duration = Duration::from_millis(200);

/// The writer's pace: the earliest its next pass may start.
#[derive(Debug, Default)]
pub struct Pacing {
    next: Option<Instant>,
}

impl Pacing {
    /// When a pass woken at `now` may start.
    pub fn start_at(&self, now: Instant) -> Instant {
        self.next.map_or(now, |next| next.max(now))
    }

    /// The next pass starts no sooner than [`SPACING`] after `at`: the start of every pass, and the
    /// end of one that wrote (or published) something.
    pub fn space_from(&mut self, at: Instant) {
        self.next = Some(at + SPACING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_change_is_written_at_once() {
        let now = Instant::now();
        assert_eq!(Pacing::default().start_at(now), now);
    }

    #[test]
    fn a_change_after_a_quiet_spell_is_written_at_once() {
        let start = Instant::now();
        let mut pacing = Pacing::default();
        // A pass starts, writes, and ends 30 ms later.
        pacing.space_from(start);
        pacing.space_from(start + ms(30));
        let later = start + ms(30) + SPACING + ms(1);
        assert_eq!(pacing.start_at(later), later);
    }

    #[test]
    fn wake_ups_right_after_a_pass_are_taken_together() {
        let start = Instant::now();
        let mut pacing = Pacing::default();
        pacing.space_from(start);
        // A pass that wrote nothing ended at once; the next wake-ups wait for the spacing.
        assert_eq!(pacing.start_at(start + ms(10)), start + SPACING);
        assert_eq!(pacing.start_at(start + ms(150)), start + SPACING);
    }

    #[test]
    fn a_change_soon_after_a_writing_pass_waits_for_its_echoes() {
        let start = Instant::now();
        let mut pacing = Pacing::default();
        pacing.space_from(start);
        // A long pass, thousands of writes within the client budget, that ends 3 s later.
        let end = start + ms(3_000);
        pacing.space_from(end);
        assert_eq!(pacing.start_at(end), end + SPACING);
        assert_eq!(pacing.start_at(end + ms(50)), end + SPACING);
    }
}
