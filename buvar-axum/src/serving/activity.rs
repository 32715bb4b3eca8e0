//! What the client of one connection did: whether it sent a request yet (for the first-request
//! deadline), and how many HTTP/2 streams it cancelled against how many it let finish.
//!
//! hyper bounds the streams a client resets before the server accepted them
//! (`max_pending_accept_reset_streams`), but a stream reset just after it was accepted costs the
//! server a task and a call into the router all the same, and does not count against
//! `max_concurrent_streams` once reset: a client that opens and resets streams in a loop (the
//! rapid reset attack, CVE-2023-44487) makes the server work at the client's pace without ever
//! waiting for an answer. A client may therefore cancel only `max_reset_streams` streams more
//! than it let finish; then its connection is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The activity of one connection, shared by its streams.
#[derive(Debug)]
pub(super) struct ConnectionActivity {
    requested: AtomicBool,
    answered: AtomicU64,
    cancelled: AtomicU64,
    max_reset_streams: u64,
    abusive: Notify,
}

impl ConnectionActivity {
    pub(super) fn new(max_reset_streams: u64) -> Self {
        Self {
            requested: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            max_reset_streams,
            abusive: Notify::new(),
        }
    }

    /// Notes that a request arrived.
    pub(super) fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    /// Whether any request arrived.
    pub(super) fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Resolves once the client cancelled more streams than it is allowed.
    pub(super) async fn abusive(&self) {
        self.abusive.notified().await;
    }

    fn cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let answered = self.answered.load(Ordering::Relaxed);
        if over_budget(cancelled, answered, self.max_reset_streams) {
            self.abusive.notify_one();
        }
    }
}

/// The policy: cancelled streams beyond the finished ones plus the allowance.
fn over_budget(cancelled: u64, answered: u64, allowance: u64) -> bool {
    cancelled > answered.saturating_add(allowance)
}

/// Watches one HTTP/2 stream: dropped before [`StreamGuard::finish`], the stream was
/// cancelled.
#[derive(Debug)]
pub(super) struct StreamGuard {
    activity: Option<Arc<ConnectionActivity>>,
}

impl StreamGuard {
    pub(super) fn new(activity: Arc<ConnectionActivity>) -> Self {
        Self {
            activity: Some(activity),
        }
    }

    /// The stream was answered.
    pub(super) fn finish(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_is_allowed_up_to_the_finished_streams_plus_the_allowance() {
        assert!(!over_budget(10, 0, 10));
        assert!(over_budget(11, 0, 10));
        assert!(!over_budget(1010, 1000, 10));
        assert!(!over_budget(u64::MAX, u64::MAX, u64::MAX));
    }

    #[tokio::test]
    async fn a_client_that_only_cancels_is_found_abusive() {
        let activity = Arc::new(ConnectionActivity::new(2));
        let mut answered = StreamGuard::new(activity.clone());
        answered.finish();
        drop(answered);
        for _ in 0..3 {
            drop(StreamGuard::new(activity.clone()));
        }
        assert_eq!(activity.cancelled.load(Ordering::Relaxed), 3);
        // 3 cancelled against 1 answered plus 2 allowed: not yet.
        let abusive = activity.abusive();
        tokio::pin!(abusive);
        let waiting = tokio::time::timeout(std::time::Duration::ZERO, abusive.as_mut()).await;
        assert!(waiting.is_err());
        drop(StreamGuard::new(activity.clone()));
        abusive.await;
    }
}
