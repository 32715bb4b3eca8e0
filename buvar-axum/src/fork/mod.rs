//! Pre-forking: one supervisor process, N worker processes sharing the listening sockets.
//!
//! The supervisor binds nothing itself (see [`crate::sockets`]); it forks the workers before
//! any runtime or thread exists, stays single-threaded for its whole life, and:
//!
//! - forwards SIGUSR1 and SIGWINCH to every worker (a worker that does not handle SIGUSR1 dies
//!   of it and is replaced);
//! - on SIGTERM or SIGINT closes its copies of the sockets, sends the signal to every worker,
//!   and kills what is left half a second after the graceful timeout (a worker ends its own
//!   drain at the graceful timeout); it exits 0 if every worker stopped by itself, 1 if some
//!   had to be killed;
//! - treats one stop request as one, however many routes it takes: a signal sent to the whole
//!   process group reaches a worker directly and again from the supervisor, and a dying
//!   supervisor sends the parent-death signal and closes the parent pipe; a worker drains once
//!   and absorbs the duplicates (see [`ShutdownWatch::wait`]);
//! - releases each worker it asks to stop right after the signal (when the service stops,
//!   after closing its own copies of the sockets): a draining worker keeps accepting until then
//!   (at most the keep-alive grace): a signal sent to the whole group can reach a worker
//!   before the supervisor, and a worker that stopped accepting then would leave connections
//!   to queue on a socket only the supervisor still holds, reset when it closes it (see
//!   [`crate::Supervised::released`]);
//! - with a shutdown delay ([`Prefork::shutdown_delay`]), lets the workers serve on after
//!   SIGTERM (they fail readiness) and kills only after delay plus graceful timeout; a second
//!   SIGTERM or SIGINT meanwhile tells them to skip the rest of the delay;
//! - on a second SIGINT (a new request, after the first was handled and any delay is over), or
//!   SIGQUIT, kills every worker at once;
//! - on SIGHUP replaces the workers one slot at a time: a new worker first, the old one is
//!   stopped only once the new one is ready; a new worker that fails ends the rollout. With a
//!   [`Reload`] ([`Prefork::reload`]) it first reads the configuration again and checks it in a
//!   child process; a configuration that fails keeps every worker as it is;
//! - on SIGUSR2 upgrades the binary: runs the program's path again (the file may have been
//!   replaced) with the same arguments and environment and the listening sockets handed over;
//!   once the new program's workers are all ready it says so on a pipe, and this supervisor
//!   drains its workers and exits. A new program that exits first, or is not ready within the
//!   upgrade timeout ([`Prefork::upgrade_timeout`]), is killed and this one serves on. A SIGHUP
//!   or SIGUSR2 while a reload or an upgrade is under way is ignored (and logged); a stop
//!   during an upgrade stops the new program too;
//! - on SIGTTIN adds a worker, on SIGTTOU gracefully stops the newest slot (never the last).
//!   Standard signals coalesce: the kernel keeps at most one pending SIGTTIN, so
//!   `kill -TTIN` three times back-to-back may add a single worker. Send one, wait until it
//!   took effect (the new worker's ready line, or the `STATUS=` count with sd_notify), then
//!   send the next; to set an exact count reliably, change `forks` in the config and restart;
//! - replaces a worker that asked for it ([`Worker::request_replacement`], e.g. after
//!   `max_requests`) the same way, one slot of a rolling restart;
//! - kills and replaces a worker whose runtime stopped ticking its heartbeat for the heartbeat
//!   timeout (a blocked runtime, as opposed to a long request);
//! - with `NOTIFY_SOCKET` set, tells the service manager `READY=1` once every worker is ready,
//!   `RELOADING=1` and `READY=1` around a rolling restart, `STOPPING=1`, and `STATUS=` counts;
//! - replaces a worker that dies unexpectedly, after a per-slot back-off (100 ms doubling up to
//!   30 s, reset once a worker stayed ready for 5 s), and gives up with
//!   [`ForkError::NeverReady`] if no worker ever became ready.
//!
//! Workers drop to the configured [`Credentials`] right after fork, then set the parent-death
//! signal (changing credentials clears it), so they die with the supervisor (that signal plus a
//! pipe they watch).
//!
//! ```no_run
//! use buvar_axum::{fork::{self, Prefork}, sockets::{BindOptions, bind, parse_uris}};
//!
//! fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
//!     let sockets = bind(&parse_uris(["tcp://:8080"])?, &BindOptions::default())?;
//!     let code = Prefork::new(sockets).workers(4).run(|mut worker| {
//!         let Ok(runtime) = tokio::runtime::Runtime::new() else { return 1 };
//!         let router = axum::Router::new();
//!         match runtime.block_on(fork::serve(&mut worker, router)) {
//!             Ok(_) => 0,
//!             Err(_) => 1,
//!         }
//!     })?;
//!     Ok(code)
//! }
//! ```

mod backoff;
mod error;
mod notify;
mod pidfile;
mod policy;
mod privileges;
mod reload;
mod serve;
mod signals;
mod supervisor;
mod upgrade;
mod worker;

use std::{path::PathBuf, process::ExitCode, time::Duration};

pub use error::ForkError;
pub use privileges::Credentials;
pub use reload::{Reload, Reloaded};
pub use serve::{drain_on_shutdown, serve};
pub use worker::{Shutdown, ShutdownWatch, Worker};

use crate::sockets::BoundSocket;

/// The pre-fork supervisor, configured with a builder.
pub struct Prefork {
    sockets: Vec<BoundSocket>,
    workers: usize,
    settings: Settings,
    reload: Option<Box<dyn Reload>>,
    pidfile: Option<PathBuf>,
}

impl std::fmt::Debug for Prefork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefork")
            .field("sockets", &self.sockets)
            .field("workers", &self.workers)
            .field("settings", &self.settings)
            .field("reload", &self.reload.is_some())
            .field("pidfile", &self.pidfile)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    graceful_timeout: Duration,
    shutdown_delay: Duration,
    ready_timeout: Duration,
    heartbeat_timeout: Option<Duration>,
    upgrade_timeout: Duration,
    credentials: Option<Credentials>,
}

impl Prefork {
    /// A supervisor for these sockets: one worker per CPU, 30 s graceful, ready and heartbeat
    /// timeouts, workers keep the supervisor's user.
    pub fn new(sockets: Vec<BoundSocket>) -> Self {
        Self {
            sockets,
            workers: 0,
            settings: Settings {
                graceful_timeout: Duration::from_secs(30),
                shutdown_delay: Duration::ZERO,
                ready_timeout: Duration::from_secs(30),
                heartbeat_timeout: Some(Duration::from_secs(30)),
                upgrade_timeout: Duration::from_secs(60),
                credentials: None,
            },
            reload: None,
            pidfile: None,
        }
    }

    /// How many workers: 0 means one per available CPU, 1 runs the worker in this process
    /// without forking or supervising.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How long a stopping worker may drain before it is killed.
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.settings.graceful_timeout = timeout;
        self
    }

    /// How long workers keep serving after SIGTERM before they drain (0, the default: none);
    /// readiness fails meanwhile, and a second SIGTERM or SIGINT skips the rest. The kill
    /// deadline is this plus the graceful timeout. Workers apply it through
    /// [`ShutdownWatch::cancel_stage`].
    pub fn shutdown_delay(mut self, delay: Duration) -> Self {
        self.settings.shutdown_delay = delay;
        self
    }

    /// How long a new worker may take to call [`Worker::notify_ready`] before it is killed
    /// and counted as failed.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.settings.ready_timeout = timeout;
        self
    }

    /// How long a ready worker's runtime may go without ticking its heartbeat before it is
    /// killed and replaced; `None` never checks. The heartbeat starts with
    /// [`Worker::watch_shutdown`]; a worker that never calls it is not checked, and before a
    /// worker is ready the ready timeout applies instead.
    pub fn heartbeat_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.heartbeat_timeout = timeout;
        self
    }

    /// How long a new program started by SIGUSR2 may take until every worker of its is ready
    /// (default 60 s); then it is killed and this generation serves on.
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.settings.upgrade_timeout = timeout;
        self
    }

    /// What SIGHUP reads again before the workers are rolled onto it; without one, SIGHUP rolls
    /// the workers onto the configuration they were forked with.
    pub fn reload(mut self, reload: impl Reload + 'static) -> Self {
        self.reload = Some(Box::new(reload));
        self
    }

    /// A file the supervisor writes its pid to (atomically: a new file renamed over the old),
    /// before the first worker starts or, started by SIGUSR2, when it takes over; removed at
    /// exit if it still holds this supervisor's pid. With one unsupervised worker
    /// ([`workers(1)`](Self::workers)) it names that process. A path that cannot be written
    /// fails [`run`](Self::run) with [`ForkError::Pidfile`] before anything starts.
    pub fn pidfile(mut self, path: Option<PathBuf>) -> Self {
        self.pidfile = path;
        self
    }

    /// The user and group the workers switch to after fork; `None` keeps the supervisor's.
    pub fn credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.settings.credentials = credentials;
        self
    }

    /// Runs the workers until the supervisor is told to stop.
    ///
    /// `worker` runs in each worker process (or in this one with one worker) and returns the
    /// worker's exit status; a forked worker then ends with `_exit`, never returning here.
    /// Call this before starting any runtime or thread: forking a multi-threaded process
    /// fails with [`ForkError::Threaded`].
    pub fn run<F>(self, worker: F) -> Result<ExitCode, ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        let workers = worker_count(self.workers);
        if workers == 1 && self.workers == 1 {
            // Written as the user that started the service, before it gives up its rights.
            let pidfile = self.pidfile.map(pidfile::Pidfile::new);
            if let Some(pidfile) = &pidfile {
                pidfile.write()?;
            }
            if let Some(credentials) = self.settings.credentials {
                credentials.assume()?;
            }
            let code = worker(Worker::new(
                0,
                self.sockets,
                self.settings.graceful_timeout,
                None,
                None,
            ));
            if let Some(pidfile) = &pidfile {
                pidfile.remove();
            }
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        ensure_single_threaded()?;
        supervisor::Supervisor::new(self, workers)?.run(&worker)
    }
}

/// `workers`, with 0 meaning one per CPU this process may use.
fn worker_count(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Refuses to fork a process with more than one thread: the child would inherit locks
/// held by threads that do not exist in it.
pub(crate) fn ensure_single_threaded() -> Result<(), ForkError> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|source| ForkError::Io {
            action: "count this process's threads in /proc/self/task",
            source,
        })?
        .count();
    if threads > 1 {
        return Err(ForkError::Threaded { threads });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forking_a_threaded_process_is_refused() {
        // The test harness itself runs tests on threads, so this process is multi-threaded.
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || parked.recv());
        let err = Prefork::new(Vec::new()).workers(2).run(|_| 0).unwrap_err();
        assert!(
            matches!(err, ForkError::Threaded { threads } if threads > 1),
            "{err}"
        );
        assert!(err.to_string().contains("threads"));
        drop(stop);
        thread.join().unwrap().unwrap_err();
    }

    #[test]
    fn one_worker_runs_in_process() {
        let pid = std::process::id();
        let code = Prefork::new(Vec::new())
            .workers(1)
            .run(|worker| {
                assert_eq!(worker.index(), 0);
                assert!(!worker.is_supervised());
                i32::from(std::process::id() != pid) + 7
            })
            .unwrap();
        assert_eq!(code, ExitCode::from(7));
    }
}
