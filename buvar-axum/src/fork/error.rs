//! Why the supervisor could not start or keep its workers.

/// An error of the pre-fork supervisor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkError {
    /// The process already runs more than one thread, so forking it is unsafe.
    #[error(
        "refusing to fork: this process runs {threads} threads; start no async runtime, \
         thread pool or non-blocking log writer before `Prefork::run` (each worker builds its own)"
    )]
    Threaded {
        /// How many threads `/proc/self/task` lists.
        threads: usize,
    },
    /// A system call of the supervisor failed.
    #[error("the supervisor cannot {action}: {source}")]
    Sys {
        /// What the supervisor was doing.
        action: &'static str,
        /// The operating system error.
        #[source]
        source: nix::Error,
    },
    /// An I/O operation of the supervisor or a worker failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// The configured worker user or group does not exist.
    #[error(
        "the worker {kind} `{name}` does not exist; set an existing name or numeric id \
         (`[http] user` / `group`)"
    )]
    UnknownUser {
        /// `"user"` or `"group"`.
        kind: &'static str,
        /// The name that was looked up.
        name: String,
    },
    /// The pidfile cannot be written; nothing was started.
    #[error(
        "cannot write the pidfile {path} (`[http] pidfile`): {source}; create its directory, \
         make it writable for this user, or unset the setting"
    )]
    Pidfile {
        /// The configured path.
        path: std::path::PathBuf,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// Every worker failed before any of them reported readiness.
    #[error(
        "no worker became ready (worker {index} {status}); check the worker's log for the \
         start-up error"
    )]
    NeverReady {
        /// The slot of the worker that failed.
        index: usize,
        /// How it ended.
        status: String,
    },
}

impl ForkError {
    pub(crate) fn sys(action: &'static str) -> impl FnOnce(nix::Error) -> Self {
        move |source| ForkError::Sys { action, source }
    }
}
