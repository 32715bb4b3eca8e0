//! Upgraded connections (WebSockets, or any protocol a handler takes over with
//! `hyper::upgrade::on`): hyper hands the socket to the handler and forgets it, so the drain
//! would neither wait for such a connection nor tell it to close, and `max_connections` would
//! not count it. A handler that holds an [`UpgradedConnection`] is waited for and told, and
//! counted once admitted.

use std::sync::{Arc, Mutex};

use axum::http::Request;
use hyper::upgrade::OnUpgrade;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The request extension [`Serving`](super::Serving) puts on every request hyper can upgrade (one
/// that asks for an upgrade): where the handler of an upgrade takes its [`UpgradedConnection`].
///
/// ```
/// use axum::Extension;
/// use buvar_axum::serving::UpgradeTracker;
///
/// async fn handler(tracker: Option<Extension<UpgradeTracker>>) -> &'static str {
///     match tracker.map(|Extension(tracker)| tracker.hold()) {
///         Some(Ok(_connection)) => "counted until dropped",
///         Some(Err(_refused)) => "the server drains",
///         None => "not served by Serving",
///     }
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeTracker {
    shared: Arc<Shared>,
    /// The slot of `max_connections` the handshake's connection holds, handed over to the
    /// upgraded connection: a new one could not be had while the connection holds its own.
    slot: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

#[derive(Debug)]
struct Shared {
    tracker: TaskTracker,
    stop: CancellationToken,
    kill: CancellationToken,
}

/// Why [`UpgradeTracker::hold`] refused an upgrade: the server drains, and the client should
/// connect again (to another worker or instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is shutting down; connect again")]
#[non_exhaustive]
pub struct UpgradeRefused;

impl UpgradeTracker {
    pub(super) fn new(
        tracker: TaskTracker,
        stop: CancellationToken,
        kill: CancellationToken,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                tracker,
                stop,
                kill,
            }),
            slot: Arc::default(),
        }
    }

    /// The tracker of one connection, which holds `slot` until an upgrade takes it over.
    pub(super) fn connection(&self, slot: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            shared: self.shared.clone(),
            slot: Arc::new(Mutex::new(slot)),
        }
    }

    /// Puts a clone on `request` when hyper offers to upgrade its connection (it does so only
    /// for a request that asks for it): other requests pay one look into their (empty)
    /// extensions, cheaper than looking for a header.
    pub(super) fn attach<B>(&self, request: &mut Request<B>) {
        if request.extensions().get::<OnUpgrade>().is_some() {
            request.extensions_mut().insert(self.clone());
        }
    }

    /// Counts a connection about to be upgraded until the returned value is dropped: the drain
    /// waits for it, and it keeps the connection's slot of `max_connections`. Take it in the
    /// handler, before answering `101 Switching Protocols`, and move it into the task that
    /// serves the upgraded connection; refused while the server drains.
    pub fn hold(&self) -> Result<UpgradedConnection, UpgradeRefused> {
        let shared = &self.shared;
        if shared.stop.is_cancelled() {
            return Err(UpgradeRefused);
        }
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
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
    _slot: Option<OwnedSemaphorePermit>,
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
    use tokio::sync::Semaphore;

    use super::*;

    /// hyper's `OnUpgrade` cannot be made outside hyper: `tests/websocket.rs` shows that
    /// upgrades carry the tracker.
    #[test]
    fn a_request_hyper_cannot_upgrade_carries_no_tracker() {
        let tracker = UpgradeTracker::new(
            TaskTracker::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let mut request = Request::builder()
            .header(http::header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        tracker.attach(&mut request);
        assert!(request.extensions().get::<UpgradeTracker>().is_none());
    }

    #[tokio::test]
    async fn a_held_connection_keeps_the_drain_waiting_and_its_connection_s_slot() {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let tracker = UpgradeTracker::new(tasks.clone(), stop.clone(), CancellationToken::new());
        let slots = Arc::new(Semaphore::new(1));
        let connection = tracker.connection(Some(slots.clone().try_acquire_owned().unwrap()));
        let held = connection.hold().unwrap();
        // The connection ends once upgraded; the slot stays taken.
        drop(connection);
        assert_eq!(slots.available_permits(), 0);
        tasks.close();
        assert!(!tasks.is_empty());
        drop(held);
        tasks.wait().await;
        assert_eq!(slots.available_permits(), 1);
        stop.cancel();
        assert_eq!(tracker.hold().unwrap_err(), UpgradeRefused);
    }
}
