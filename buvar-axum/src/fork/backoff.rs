//! The delay before replacing a worker of a slot that keeps failing.

use std::time::Duration;

/// The first delay; it doubles with every failure in a row.
const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(30);
/// A worker that stayed ready this long ends the run of failures. A crash loop dies within
/// moments of starting; a worker that served for seconds and was then killed (by the OOM
/// killer, an operator, a poison request) is no loop, and its slot must not stay empty for
/// up to 30 s (the soak run, a kill -9 every 7 s, showed that with a 60 s threshold).
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// Per-slot exponential back-off against crash loops.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt, given how long the failed worker had been ready.
    pub(super) fn after_failure(&mut self, ready_for: Option<Duration>) -> Duration {
        if ready_for.is_some_and(|ready_for| ready_for >= HEALTHY_AFTER) {
            self.next = FIRST;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_100_ms_up_to_30_s() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..12)
            .map(|_| backoff.after_failure(None).as_millis())
            .collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn a_short_lived_worker_keeps_the_delay_growing() {
        let mut backoff = Backoff::default();
        backoff.after_failure(None);
        let delay = backoff.after_failure(Some(Duration::from_millis(4900)));
        assert_eq!(delay, Duration::from_millis(200));
    }

    #[test]
    fn a_worker_healthy_for_5_s_resets_the_delay() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.after_failure(None);
        }
        let delay = backoff.after_failure(Some(Duration::from_secs(5)));
        assert_eq!(delay, Duration::from_millis(100));
        assert_eq!(backoff.after_failure(None), Duration::from_millis(200));
    }
}
