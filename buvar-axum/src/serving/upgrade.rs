//! Upgraded connections (WebSockets, or any protocol a handler takes over with
//! `hyper::upgrade::on`): hyper hands the socket to the handler and forgets it, so the drain
//! would neither wait for such a connection nor tell it to close, and `max_connections` would
//! not count it. A handler that holds an [`UpgradedConnection`] is counted, waited for and told.

use std::sync::Arc;

use axum::http::{Request, Version, header::UPGRADE};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The request extension [`Serving`](super::Serving) puts on every HTTP/1.1 request that asks
/// for an upgrade: where the handler of an upgrade takes its [`UpgradedConnection`].
///
/// ```
/// use axum::Extension;
/// use buvar_axum::serving::UpgradeTracker;
///
/// async fn handler(tracker: Option<Extension<UpgradeTracker>>) -> &'static str {
///     match tracker.map(|Extension(tracker)| tracker.hold()) {
///         Some(Ok(_connection)) => "counted until dropped",
///         Some(Err(_refused)) => "the server drains or is full",
///         None => "not served by Serving",
///     }
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeTracker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tracker: TaskTracker,
    stop: CancellationToken,
    kill: CancellationToken,
    slots: Arc<Semaphore>,
}

/// Why [`UpgradeTracker::hold`] refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeRefused {
    /// The server drains: the client should connect again (to another worker or instance).
    #[error("the server is shutting down; connect again")]
    Draining,
    /// `max_connections` connections are open.
    #[error("the server has too many open connections; try again later")]
    Full,
}

impl UpgradeTracker {
    pub(super) fn new(
        tracker: TaskTracker,
        stop: CancellationToken,
        kill: CancellationToken,
        slots: Arc<Semaphore>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                tracker,
                stop,
                kill,
                slots,
            }),
        }
    }

    /// Puts a clone on `request` when it asks for an upgrade; costs other requests one
    /// version comparison.
    pub(super) fn attach<B>(&self, request: &mut Request<B>) {
        if request.version() == Version::HTTP_11 && request.headers().contains_key(UPGRADE) {
            request.extensions_mut().insert(self.clone());
        }
    }

    /// Counts a connection about to be upgraded until the returned value is dropped: the drain
    /// waits for it, and it takes one of `max_connections`. Take it in the handler, before
    /// answering `101 Switching Protocols`, and move it into the task that serves the upgraded
    /// connection; refused while the server drains or is full.
    pub fn hold(&self) -> Result<UpgradedConnection, UpgradeRefused> {
        let shared = &self.shared;
        if shared.stop.is_cancelled() {
            return Err(UpgradeRefused::Draining);
        }
        let slot = shared
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| UpgradeRefused::Full)?;
        Ok(UpgradedConnection {
            _token: shared.tracker.token(),
            _slot: slot,
            stop: shared.stop.clone(),
            kill: shared.kill.clone(),
        })
    }
}

/// An upgraded connection the server counts until this is dropped (see
/// [`UpgradeTracker::hold`]): a drain lets it run for up to the graceful timeout, then
/// [`closing`](Self::closing) tells its task to close it.
#[derive(Debug)]
pub struct UpgradedConnection {
    _token: TaskTrackerToken,
    _slot: OwnedSemaphorePermit,
    stop: CancellationToken,
    kill: CancellationToken,
}

impl UpgradedConnection {
    /// Resolves once the server starts draining: a protocol that can ask its peer to go
    /// elsewhere may do so now; the connection may still run until [`closing`](Self::closing).
    pub async fn draining(&self) {
        self.stop.cancelled().await;
    }

    /// Resolves once the drain's graceful timeout has passed: close the connection now (the
    /// supervisor kills the worker shortly after).
    pub async fn closing(&self) {
        self.kill.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(slots: usize) -> (UpgradeTracker, TaskTracker, CancellationToken) {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let tracker = UpgradeTracker::new(
            tasks.clone(),
            stop.clone(),
            CancellationToken::new(),
            Arc::new(Semaphore::new(slots)),
        );
        (tracker, tasks, stop)
    }

    #[test]
    fn only_upgrade_requests_carry_the_tracker() {
        let (tracker, _, _) = tracker(1);
        let mut plain = Request::new(());
        tracker.attach(&mut plain);
        assert!(plain.extensions().get::<UpgradeTracker>().is_none());
        let mut upgrade = Request::builder()
            .header(UPGRADE, "websocket")
            .body(())
            .unwrap();
        tracker.attach(&mut upgrade);
        assert!(upgrade.extensions().get::<UpgradeTracker>().is_some());
    }

    #[tokio::test]
    async fn a_held_connection_keeps_the_drain_waiting_and_takes_a_slot() {
        let (tracker, tasks, stop) = tracker(1);
        let held = tracker.hold().unwrap();
        assert_eq!(tracker.hold().unwrap_err(), UpgradeRefused::Full);
        tasks.close();
        assert!(!tasks.is_empty());
        drop(held);
        tasks.wait().await;
        stop.cancel();
        assert_eq!(tracker.hold().unwrap_err(), UpgradeRefused::Draining);
    }
}
