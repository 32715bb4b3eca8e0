//! Why a service could not start.

use buvar_kit::config::ConfigError;
use buvar_kit::di::ValidationError;
use buvar_kit::log::LogError;
use buvar_kit::plugin::StageError;

#[cfg(target_os = "linux")]
use crate::fork::ForkError;
#[cfg(target_os = "linux")]
use crate::metrics::MetricsError;
use crate::sockets::SocketError;

/// Why [`App`](crate::App) could not start (or stopped with an error of the
/// supervisor). Each is reported as `error: ...` on stderr with exit code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A section failed to load: a bad value, a missing file, ...
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin failed to prepare during the start-up check.
    #[error(transparent)]
    Prepare(#[from] StageError),
    /// The dependency graph has problems.
    #[error(transparent)]
    Graph(#[from] ValidationError),
    /// Teardown steps failed after the start-up check (each is logged with its error).
    #[error("teardown steps failed after the start-up check: {}", .0.join(", "))]
    Teardown(Vec<String>),
    /// The runtime of the start-up check could not be built.
    #[error("cannot start a runtime for the start-up check: {0}")]
    Runtime(#[source] std::io::Error),
    /// Logging could not be set up.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Tracing could not be set up.
    #[cfg(feature = "otel")]
    #[error(transparent)]
    Otel(#[from] crate::OtelError),
    /// The sockets could not be parsed or bound.
    #[error(transparent)]
    Sockets(#[from] SocketError),
    /// A setting of `[http.h2]` is out of its range.
    #[error(transparent)]
    OutOfRange(#[from] crate::SettingOutOfRange),
    /// `[http.tls]` names a missing, unreadable or mismatched certificate or key.
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A before-fork step failed.
    #[error(transparent)]
    BeforeFork(#[from] crate::BeforeForkError),
    /// Start-up work failed in its child process, which reported why on stderr.
    #[error("start-up failed")]
    Reported,
    /// The child process for start-up work could not be made or waited for.
    #[error("cannot run {what} in a child process: {errno}")]
    Apart {
        /// The start-up work.
        what: &'static str,
        /// The operating system's error.
        #[source]
        errno: nix::errno::Errno,
    },
    /// The child process for start-up work was killed.
    #[error("{what} was killed by {signal}; run with --check or --run-before-fork to see where")]
    ApartKilled {
        /// The start-up work.
        what: &'static str,
        /// The signal's name.
        signal: &'static str,
    },
    /// `[http] group` without `[http] user`.
    #[error("`[http] group` needs `[http] user` as well")]
    #[cfg(target_os = "linux")]
    GroupWithoutUser,
    /// The supervisor (or the user lookup) failed.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Fork(#[from] ForkError),
    /// The `[metrics]` section or its socket is wrong.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Serving needs the pre-fork supervisor, which needs Linux.
    #[cfg(not(target_os = "linux"))]
    #[error("{}", crate::PREFORK_NEEDS_LINUX)]
    NeedsLinux,
}
