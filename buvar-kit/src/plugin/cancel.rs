use std::fmt;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Stops the stage: any task may trigger it or wait for it. It is a component of the plugin
/// context, and SIGINT and SIGTERM trigger it by default.
///
/// ```
/// use buvar_kit::Cancel;
/// let cancel = Cancel::new();
/// let seen_by_task = cancel.clone();
/// cancel.cancel();
/// assert!(seen_by_task.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    now: CancellationToken,
    announced: CancellationToken,
}

impl Cancel {
    /// A new, untriggered cancel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers it: the stage stops its tasks (after the grace period) and tears down.
    pub fn cancel(&self) {
        self.announced.cancel();
        self.token.cancel();
    }

    /// Says that a stop is coming without triggering it yet: readiness checks fail from now on
    /// (`/readyz` answers 503) while everything keeps running, so load balancers stop sending
    /// traffic before the server stops accepting (the `[http] shutdown_delay`).
    ///
    /// ```
    /// use buvar_kit::Cancel;
    /// let cancel = Cancel::new();
    /// cancel.announce();
    /// assert!(cancel.is_stopping() && !cancel.is_cancelled());
    /// ```
    pub fn announce(&self) {
        self.announced.cancel();
    }

    /// Whether a stop was announced ([`Cancel::announce`]) or triggered.
    pub fn is_stopping(&self) -> bool {
        self.announced.is_cancelled()
    }

    /// Triggers it and skips the grace period: the stage aborts its tasks at once (a second
    /// stop signal does this).
    pub fn cancel_now(&self) {
        self.announced.cancel();
        self.token.cancel();
        self.now.cancel();
    }

    /// Completes once [`Cancel::cancel_now`] was called.
    pub(crate) fn cancelled_now(&self) -> WaitForCancellationFuture<'_> {
        self.now.cancelled()
    }

    /// Whether it was triggered.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once it is triggered.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The underlying token, for APIs that take one (e.g. a graceful-shutdown signal).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel")
            .field("stopping", &self.is_stopping())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
