//! Re-reading the configuration on SIGHUP: what a service gives the supervisor so that a
//! rollout moves the workers onto the configuration as it is now, not as it was at start.

use std::time::Duration;

/// A service's configuration, re-read by the supervisor on SIGHUP ([`Prefork::reload`]).
///
/// The supervisor calls [`load`](Self::load) in its own process, then runs
/// [`check`](Self::check) in a child process forked for it (the check may start a runtime,
/// which must never happen in the supervisor), and only when that passed
/// [`commit`](Self::commit), after which the workers are rolled one at a time onto the new
/// configuration. A refused or failing reload changes nothing: the workers keep serving with
/// the configuration they have.
///
/// [`Prefork::reload`]: super::Prefork::reload
pub trait Reload {
    /// In the supervisor: reads the configuration again and keeps it as the candidate. Keep it
    /// to local reads (files): the supervisor does nothing else meanwhile. Returns what the
    /// candidate changes in the supervisor, or why it is refused (logged, and told to the
    /// service manager).
    fn load(&mut self) -> Result<Reloaded, buvar_kit::BoxError>;

    /// In a child process: checks the candidate as a start-up would, reports what is wrong on
    /// stderr, and returns whether it passed.
    fn check(&self) -> bool;

    /// In the supervisor, once the check passed: the candidate becomes the configuration that
    /// workers forked from now on get.
    fn commit(&mut self);
}

/// What a reloaded configuration changes in the supervisor itself.
///
/// ```
/// use std::time::Duration;
/// use buvar_axum::fork::Reloaded;
///
/// let reloaded = Reloaded::new(4).graceful_timeout(Duration::from_secs(10));
/// # let _ = reloaded;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    pub(super) workers: usize,
    pub(super) graceful_timeout: Option<Duration>,
    pub(super) shutdown_delay: Option<Duration>,
    pub(super) heartbeat_timeout: Option<Option<Duration>>,
}

impl Reloaded {
    /// The worker count from now on (0: one per available CPU); the timeouts stay as they are
    /// unless set.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            graceful_timeout: None,
            shutdown_delay: None,
            heartbeat_timeout: None,
        }
    }

    /// The new graceful timeout ([`Prefork::graceful_timeout`](super::Prefork::graceful_timeout)).
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.graceful_timeout = Some(timeout);
        self
    }

    /// The new shutdown delay ([`Prefork::shutdown_delay`](super::Prefork::shutdown_delay)).
    pub fn shutdown_delay(mut self, delay: Duration) -> Self {
        self.shutdown_delay = Some(delay);
        self
    }

    /// The new heartbeat timeout
    /// ([`Prefork::heartbeat_timeout`](super::Prefork::heartbeat_timeout)).
    pub fn heartbeat_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// The worker count with 0 resolved to the CPUs this process may use.
    pub(super) fn resolved_workers(&self) -> usize {
        super::worker_count(self.workers)
    }
}
