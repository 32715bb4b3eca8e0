//! Logging set-up: one call from the `[log]` section.
//!
//! Human-readable lines on a terminal, JSON lines otherwise (for log shippers); `RUST_LOG`
//! overrides the configured level when set. Every event carries the process id, and the
//! worker number once [`set_worker`] was called in a forked worker. Set-up starts no thread,
//! so it is safe before fork, and [`init`]'s writes never block: lines a stalled reader of
//! stdout does not take wait in a bounded backlog or are dropped and counted (see [`flush`]).
//!
//! ```
//! use buvar_kit::log::{LogConfig, LogFormat, subscriber};
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Clone, Default)]
//! struct Buffer(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for Buffer {
//!     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
//!         self.0.lock().unwrap().extend_from_slice(bytes);
//!         Ok(bytes.len())
//!     }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let buffer = Buffer::default();
//! let config = LogConfig { level: "info".into(), format: LogFormat::Json };
//! let writer = buffer.clone();
//! let dispatch = subscriber(&config, move || writer.clone())?;
//! tracing::dispatcher::with_default(&dispatch, || tracing::info!(user = "ada", "hello"));
//!
//! let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
//! assert!(line.contains(r#""message":"hello""#));
//! assert!(line.contains(&format!(r#""pid":{}"#, std::process::id())));
//! # Ok::<(), buvar_kit::log::LogError>(())
//! ```

use std::fmt;
use std::io::IsTerminal;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::ParseError;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::Identity;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

mod output;

pub use output::flush;

/// The `[log]` section.
///
/// ```toml
/// [log]
/// level = "info"          # or directives: "info,my_crate=debug"
/// format = "auto"         # auto | json | pretty
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or `EnvFilter` directives.
    pub level: String,
    /// How lines look.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

crate::section!(LogConfig, "log", default);

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `[log].level` is neither a level nor valid filter directives.
    #[error(
        "invalid log level {value:?} in [log].level: expected one of trace, debug, info, warn, \
         error, off, or filter directives such as \"info,my_crate=debug\""
    )]
    Level {
        /// The configured value.
        value: String,
    },
    /// `[log].level` looks like filter directives but does not parse.
    #[error("invalid log filter {value:?} in [log].level: {source}; fix the directives")]
    Filter {
        /// The configured value.
        value: String,
        /// What the filter parser said.
        source: ParseError,
    },
    /// `RUST_LOG` is set but does not parse.
    #[error("invalid RUST_LOG {value:?}: {source}; fix or unset RUST_LOG")]
    RustLog {
        /// The variable's value.
        value: String,
        /// What the filter parser said.
        source: ParseError,
    },
    /// `RUST_LOG` is not valid UTF-8.
    #[error("RUST_LOG is not valid UTF-8; fix or unset RUST_LOG")]
    RustLogNotUnicode,
    /// Another global subscriber was set first.
    #[error(
        "a global tracing subscriber is already set; call buvar_kit::log::init once, early in main"
    )]
    AlreadySet,
}

const NO_WORKER: usize = usize::MAX;
static WORKER: AtomicUsize = AtomicUsize::new(NO_WORKER);

/// Records the worker number of this process; the pre-fork supervisor calls it in each
/// worker right after fork, and every later event carries `worker`.
pub fn set_worker(worker: usize) {
    WORKER.store(worker, Ordering::Relaxed);
}

/// The worker number set by [`set_worker`], if any.
pub fn worker() -> Option<usize> {
    Some(WORKER.load(Ordering::Relaxed)).filter(|worker| *worker != NO_WORKER)
}

/// Sets up logging to stdout for the whole process and logs panics; call it once, early in
/// `main` (before forking is fine: no thread is started).
///
/// Writing never blocks: when the reader of stdout stalls, lines wait in a bounded backlog,
/// then are dropped and counted; [`flush`] writes the backlog and reports the count.
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    let dispatch = build::<_, Identity>(
        config,
        output::Stdout,
        std::io::stdout().is_terminal(),
        None,
    )?;
    tracing::dispatcher::set_global_default(dispatch).map_err(|_| LogError::AlreadySet)?;
    install_panic_hook();
    Ok(())
}

/// [`init`] with one more layer under the formatting one, seeing every span and event the
/// filter lets through (for instance a slot a pre-forked worker fills with a trace exporter
/// after fork; see buvar-axum's `otel`).
pub fn init_with_layer<L>(config: &LogConfig, layer: L) -> Result<(), LogError>
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let dispatch = build(
        config,
        output::Stdout,
        std::io::stdout().is_terminal(),
        Some(layer),
    )?;
    tracing::dispatcher::set_global_default(dispatch).map_err(|_| LogError::AlreadySet)?;
    install_panic_hook();
    Ok(())
}

/// Builds the subscriber [`init`] would install, writing to `writer`: for tests (with
/// `tracing::dispatcher::with_default`) and custom set-ups. `LogFormat::Auto` means JSON
/// here, since `writer` is not known to be a terminal.
pub fn subscriber<W>(config: &LogConfig, writer: W) -> Result<Dispatch, LogError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    build::<_, Identity>(config, writer, false, None)
}

fn build<W, L>(
    config: &LogConfig,
    writer: W,
    terminal: bool,
    extra: Option<L>,
) -> Result<Dispatch, LogError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
    L: Layer<Registry> + Send + Sync + 'static,
{
    let filter = filter(config)?;
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !terminal,
    };
    let registry = tracing_subscriber::registry().with(extra).with(filter);
    let dispatch = if json {
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .event_format(WithProcess {
                inner: format,
                json: true,
            });
        Dispatch::new(registry.with(layer))
    } else {
        let format = tracing_subscriber::fmt::format().with_ansi(terminal);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(terminal)
            .with_writer(writer)
            .event_format(WithProcess {
                inner: format,
                json: false,
            });
        Dispatch::new(registry.with(layer))
    };
    Ok(dispatch)
}

/// `RUST_LOG` when set and not empty, the configured level otherwise.
fn filter(config: &LogConfig) -> Result<EnvFilter, LogError> {
    match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|source| LogError::RustLog { value, source })
        }
        Err(std::env::VarError::NotUnicode(_)) => Err(LogError::RustLogNotUnicode),
        Ok(_) | Err(std::env::VarError::NotPresent) => level_filter(&config.level),
    }
}

fn level_filter(level: &str) -> Result<EnvFilter, LogError> {
    let value = level.trim();
    // A bare word is a target name to `EnvFilter`; in `[log].level` it is meant as a level,
    // so a typo like "inof" must fail instead of silently logging one target at trace.
    let is_directives = value.contains(['=', ',', '[']);
    if !is_directives {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        if !LEVELS.contains(&value.to_ascii_lowercase().as_str()) {
            return Err(LogError::Level {
                value: level.to_owned(),
            });
        }
    }
    EnvFilter::try_new(value).map_err(|source| LogError::Filter {
        value: level.to_owned(),
        source,
    })
}

/// Adds the process id and worker number to every event.
struct WithProcess<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithProcess<F>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let pid = std::process::id();
        let worker = worker();
        if self.json {
            // The JSON formatter writes one object; the ids go in front of its first key.
            let mut line = String::new();
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            let ids = match worker {
                Some(worker) => format!("\"pid\":{pid},\"worker\":{worker},"),
                None => format!("\"pid\":{pid},"),
            };
            match line.strip_prefix('{') {
                Some(rest) if rest.starts_with('"') => write!(writer, "{{{ids}{rest}"),
                _ => writer.write_str(&line),
            }
        } else {
            match worker {
                Some(worker) => write!(writer, "[{pid} w{worker}] ")?,
                None => write!(writer, "[{pid}] ")?,
            }
            self.inner.format_event(ctx, writer, event)
        }
    }
}

/// Logs panics as `error` events with their location, then runs the previous hook (which
/// prints the usual message). [`init`] installs it; installing twice has no effect.
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            let location = info
                .location()
                .map(|location| {
                    format!(
                        "{}:{}:{}",
                        location.file(),
                        location.line(),
                        location.column()
                    )
                })
                .unwrap_or_default();
            tracing::error!(target: "panic", location = %location, "panic: {message}");
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_parse_in_any_case() {
        for level in ["trace", "DEBUG", "Info", "warn", "error", "off"] {
            assert!(level_filter(level).is_ok(), "{level}");
        }
    }

    #[test]
    fn directives_parse() {
        assert!(level_filter("info,buvar_kit=debug").is_ok());
        assert!(level_filter("buvar_kit=trace").is_ok());
    }

    #[test]
    fn unparsable_level_names_the_value() {
        let error = level_filter("loud").unwrap_err();
        assert!(matches!(error, LogError::Level { .. }));
        assert!(error.to_string().contains("\"loud\""), "{error}");
        let error = level_filter("info,my_crate=loud").unwrap_err();
        assert!(error.to_string().contains("info,my_crate=loud"), "{error}");
    }

    #[test]
    fn worker_number_is_recorded() {
        set_worker(3);
        assert_eq!(worker(), Some(3));
        WORKER.store(NO_WORKER, Ordering::Relaxed);
        assert_eq!(worker(), None);
    }
}
