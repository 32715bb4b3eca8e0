//! Work that runs once before any worker forks: database migrations, downloading a model,
//! warming a cache file.
//!
//! The steps run in a child process of the parent, one after another, each on a
//! current-thread tokio runtime of its own that is shut down once the step ends; the parent
//! waits for the child and forks the workers after it. The parent itself never runs a
//! runtime: tokio's signal state, made by any runtime with I/O, would reach every worker forked
//! after it and share one wake-up channel among them (see `app/apart.rs`). A step therefore
//! leaves nothing in memory for the workers: what it makes for them goes to the database or a
//! file, and a pool, a client or anything else holding sockets belongs in the workers, made
//! after fork. A step must also finish its work before it returns: threads it leaves running
//! would be cut off when its process ends, so start-up fails naming the step instead.
//!
//! `--run-before-fork` runs the steps and exits without binding anything, for a Kubernetes
//! Job or init container; the replicas then start with `--skip-before-fork`. Without either
//! flag a service runs its steps itself before forking, which suits one replica, or steps that
//! are safe to run concurrently (sqlx's migrations take a lock in the database).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use buvar_kit::{BoxError, Cancel, ConfigSource, Context};

use crate::App;
#[cfg(target_os = "linux")]
use crate::fork::{ForkError, ensure_single_threaded};
use crate::redact::redact;

/// How long a step's runtime may take to stop its blocking threads (e.g. a DNS lookup still
/// running after a connect timed out) before the step counts as leaving threads behind.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the kernel may take to remove the threads the runtime joined from
/// `/proc/self/task`.
#[cfg(target_os = "linux")]
const REAP_TIMEOUT: Duration = Duration::from_secs(1);

type StepFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>>>>;
type StepFn = dyn Fn(Context) -> StepFuture + Send + Sync;

/// The steps a service runs before forking, in the order they were added.
#[derive(Default, Clone)]
pub(crate) struct BeforeFork {
    steps: Vec<(String, Arc<StepFn>)>,
}

impl std::fmt::Debug for BeforeFork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|(name, _)| name))
            .finish()
    }
}

/// The flags that choose where the before-fork steps run.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct BeforeForkFlags {
    /// Run the service's before-fork steps (e.g. database migrations) once, then exit; binds
    /// nothing. For a Kubernetes Job or init container.
    #[arg(long)]
    run_before_fork: bool,
    /// Start without running the before-fork steps (a Job or init container ran them).
    #[arg(long, conflicts_with = "run_before_fork")]
    skip_before_fork: bool,
}

impl BeforeForkFlags {
    /// Whether to run the steps and exit.
    pub(crate) fn only(&self) -> bool {
        self.run_before_fork
    }
}

/// Why a before-fork step failed; start-up stops with exit status 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BeforeForkError {
    /// The step returned an error.
    #[error("before-fork step `{step}` failed: {message}")]
    Failed {
        /// The step's name.
        step: String,
        /// Its error, with the passwords of URLs redacted.
        message: String,
    },
    /// The step's runtime could not be built.
    #[error("before-fork step `{step}` cannot start its runtime: {source}")]
    Runtime {
        /// The step's name.
        step: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Threads outlived the step's runtime; their work would be cut off with the step.
    #[cfg(target_os = "linux")]
    #[error(
        "before-fork step `{step}` left the process with more than one thread ({source}); join \
         every thread the step starts before it returns (the step's process ends with it), and \
         make pools and clients in the workers instead"
    )]
    Threaded {
        /// The step's name.
        step: String,
        /// The supervisor's thread check.
        #[source]
        source: ForkError,
    },
}

impl BeforeFork {
    fn add<F, Fut>(&mut self, name: &str, step: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + 'static,
    {
        let step: Arc<StepFn> = Arc::new(move |ctx| Box::pin(step(ctx)));
        self.steps.push((name.to_owned(), step));
    }

    /// Whether `flags` leave steps to run.
    #[cfg(target_os = "linux")]
    pub(crate) fn runs(&self, flags: &BeforeForkFlags) -> bool {
        !self.steps.is_empty() && !flags.skip_before_fork
    }

    /// Runs the steps in order unless `flags` skip them; stops at the first that fails.
    pub(crate) fn run(
        &self,
        flags: &BeforeForkFlags,
        source: &ConfigSource,
    ) -> Result<(), BeforeForkError> {
        if flags.skip_before_fork {
            if !self.steps.is_empty() {
                tracing::info!(steps = ?self, "before-fork steps skipped (--skip-before-fork)");
            }
            return Ok(());
        }
        self.steps
            .iter()
            .try_for_each(|(name, step)| run_step(name, step.as_ref(), source))
    }
}

fn run_step(name: &str, step: &StepFn, source: &ConfigSource) -> Result<(), BeforeForkError> {
    tracing::info!(step = name, "before-fork step starting");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BeforeForkError::Runtime {
            step: name.to_owned(),
            source,
        })?;
    let context = Context::new();
    context.add(source.clone());
    context.add(Cancel::new());
    // The step owns the context, so what it adds (a connection, a pool) is dropped with the
    // step's future, inside the runtime.
    let result = runtime.block_on(step(context));
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    result.map_err(|err| BeforeForkError::Failed {
        step: name.to_owned(),
        message: redact(&error_chain(err.as_ref())),
    })?;
    #[cfg(target_os = "linux")]
    single_threaded(name)?;
    tracing::info!(step = name, "before-fork step done");
    Ok(())
}

/// `err` and its sources, joined by `: `, skipping a source its parent already quotes.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Waits (briefly, bounded) for joined threads to leave `/proc/self/task`, then checks that
/// one thread is left.
#[cfg(target_os = "linux")]
fn single_threaded(step: &str) -> Result<(), BeforeForkError> {
    let deadline = std::time::Instant::now() + REAP_TIMEOUT;
    loop {
        match ensure_single_threaded() {
            Ok(()) => return Ok(()),
            Err(ForkError::Threaded { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(BeforeForkError::Threaded {
                    step: step.to_owned(),
                    source,
                });
            }
        }
    }
}

impl App {
    /// Adds a step that runs once before any worker forks (and before the worker of a
    /// service with `forks = 1`), e.g. database migrations. Steps run in the order they were
    /// added, in a child process of the parent, each on a current-thread runtime that is shut
    /// down when the step ends. The step gets a context holding the config source (resolve
    /// sections with `ctx.resolve::<Config<T>>()`); a failing step stops start-up with exit
    /// status 2 and its error. A step that leaves a thread running stops start-up naming the
    /// step.
    ///
    /// `--run-before-fork` runs the steps alone and exits (a Kubernetes Job or init
    /// container); `--skip-before-fork` starts without them.
    ///
    /// ```no_run
    /// use buvar_axum::App;
    /// use buvar_kit::{BoxError, Context};
    ///
    /// async fn migrate(ctx: Context) -> Result<(), BoxError> {
    ///     let _config = ctx.get::<buvar_kit::ConfigSource>()?;
    ///     // connect, run the migrations, close the connection
    ///     Ok(())
    /// }
    ///
    /// fn main() -> std::process::ExitCode {
    ///     App::new("APP").before_fork("migrate", migrate).run()
    /// }
    /// ```
    pub fn before_fork<F, Fut>(mut self, name: &str, step: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + 'static,
    {
        self.before_fork.add(name, step);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to postgres://app:hunter2@db.internal/app")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_reads_with_its_causes_and_without_passwords() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            redact(&error_chain(&err)),
            "cannot connect to postgres://app:***@db.internal/app: connection refused"
        );
    }

    #[test]
    fn skipped_steps_do_not_run() {
        let mut steps = BeforeFork::default();
        steps.add("fails", |_| async { Err::<(), BoxError>("ran".into()) });
        let flags = BeforeForkFlags {
            run_before_fork: false,
            skip_before_fork: true,
        };
        steps.run(&flags, &ConfigSource::new()).unwrap();
    }

    #[test]
    fn a_failing_step_is_named_with_its_error() {
        let mut steps = BeforeFork::default();
        steps.add("migrate", |ctx: Context| async move {
            ctx.get::<ConfigSource>()?;
            Err::<(), BoxError>("password=hunter2 rejected".into())
        });
        let err = steps
            .run(&BeforeForkFlags::default(), &ConfigSource::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "before-fork step `migrate` failed: password=*** rejected"
        );
    }
}
