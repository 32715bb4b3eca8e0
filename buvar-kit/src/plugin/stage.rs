use std::collections::HashMap;
use std::fmt;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::task::{TaskOutcome, TaskState};
use super::{Cancel, Plugin, PluginError, Prepare, Shared, Signals, StageError, lock};
use crate::config::ConfigSource;
use crate::jobs::Jobs;
use crate::outcome::panic_message;
use crate::{BoxError, Context};

/// Stages plugins: prepare, run tasks, tear down. See the [module docs](crate::plugin).
pub struct Stage {
    context: Context,
    config: Option<ConfigSource>,
    catalogue: Vec<Plugin>,
    loads: Vec<Load>,
    cancel_timeout: Duration,
    signals: Signals,
}

enum Load {
    Plugin(Plugin),
    Named(String),
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("catalogue", &self.catalogue)
            .field("cancel_timeout", &self.cancel_timeout)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl Default for Stage {
    fn default() -> Self {
        Self::new()
    }
}

impl Stage {
    /// A stage on a fresh root context.
    pub fn new() -> Self {
        Self::with_context(Context::new())
    }

    /// A stage whose plugin context is a child of `context` (the components given to it).
    pub fn with_context(context: Context) -> Self {
        Self {
            context,
            config: None,
            catalogue: Vec::new(),
            loads: Vec::new(),
            cancel_timeout: Duration::from_secs(60),
            signals: Signals::default(),
        }
    }

    /// Adds `source` to the plugin context; the plugins named by its root `plugins` list are
    /// loaded after those given to [`Stage::load`] and [`Stage::load_named`].
    pub fn config(mut self, source: ConfigSource) -> Self {
        self.config = Some(source);
        self
    }

    /// Makes `plugin` loadable by name (by [`Stage::load_named`], [`Prepare::load_named`] or
    /// the config's `plugins` list) without loading it.
    pub fn register(mut self, plugin: Plugin) -> Self {
        self.catalogue.push(plugin);
        self
    }

    /// Loads `plugin` when the stage prepares.
    pub fn load(mut self, plugin: Plugin) -> Self {
        self.loads.push(Load::Plugin(plugin));
        self
    }

    /// Loads the registered plugin named `name` when the stage prepares.
    pub fn load_named(mut self, name: impl Into<String>) -> Self {
        self.loads.push(Load::Named(name.into()));
        self
    }

    /// How long tasks may take to finish after [`Cancel`] fires before they are aborted
    /// (default 60 s).
    pub fn cancel_timeout(mut self, timeout: Duration) -> Self {
        self.cancel_timeout = timeout;
        self
    }

    /// Which signals do what while tasks run (default: SIGINT and SIGTERM cancel).
    pub fn signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// Phase 1: prepares every plugin. On failure the teardown steps registered so far run
    /// before the error, naming the plugin, is returned.
    pub async fn prepare(self) -> Result<Prepared, StageError> {
        let context = self.context.push();
        let cancel = Cancel::new();
        context.add(cancel.clone());
        let mut loads = self.loads;
        if let Some(source) = self.config {
            match source.plugins() {
                Ok(names) => loads.extend(names.into_iter().map(Load::Named)),
                Err(err) => {
                    return Err(StageError::Prepare {
                        source: PluginError::Config(err),
                        teardown_failures: Vec::new(),
                    });
                }
            }
            context.add(source);
        }
        if !context.contains::<Jobs>(None) {
            context.add(Jobs::new());
        }
        let shared = Arc::new(Shared {
            context,
            cancel,
            catalogue: Default::default(),
            loads: Default::default(),
            tasks: Default::default(),
            teardown: Default::default(),
        });
        {
            let mut catalogue = lock(&shared.catalogue);
            for plugin in self.catalogue {
                catalogue.insert(plugin.name().to_owned(), plugin);
            }
        }
        let prepared = Prepared {
            root: Prepare {
                shared,
                path: Arc::from([]),
            },
            cancel_timeout: self.cancel_timeout,
            signals: self.signals,
        };
        for load in loads {
            let loaded = match load {
                Load::Plugin(plugin) => prepared.root.load(plugin).await,
                Load::Named(name) => prepared.root.load_named(&name).await,
            };
            if let Err(source) = loaded {
                tracing::error!(error = %source, "preparing plugins failed; tearing down");
                let teardown_failures = prepared.teardown().await;
                return Err(StageError::Prepare {
                    source,
                    teardown_failures,
                });
            }
        }
        Ok(prepared)
    }

    /// All three phases; see [`Stage::prepare`] and [`Prepared::run`].
    pub async fn run(self) -> Result<StageReport, StageError> {
        Ok(self.prepare().await?.run().await)
    }
}

/// A stage whose plugins are prepared: run its tasks, or only tear it down.
pub struct Prepared {
    root: Prepare,
    cancel_timeout: Duration,
    signals: Signals,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("context", self.context())
            .field("tasks", &lock(&self.root.shared.tasks).len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// The plugin context.
    pub fn context(&self) -> &Context {
        self.root.context()
    }

    /// The stage's cancel.
    pub fn cancel(&self) -> Cancel {
        self.root.cancel()
    }

    /// A top-level loader, to load more plugins into the prepared stage (e.g. in a test).
    pub fn loader(&self) -> Prepare {
        self.root.clone()
    }

    /// Phases 2 and 3: runs every task, each with its own child context, until all are done or
    /// [`Cancel`] fires; then waits the grace period and aborts what is left; then tears down.
    pub async fn run(self) -> StageReport {
        let tasks = std::mem::take(&mut *lock(&self.root.shared.tasks));
        let outcomes = {
            let _signals = self.signals.install(self.context());
            self.run_tasks(tasks).await
        };
        let teardown_failures = self.teardown().await;
        StageReport {
            tasks: outcomes,
            teardown_failures,
        }
    }

    async fn run_tasks(&self, tasks: Vec<super::Task>) -> Vec<TaskOutcome> {
        let cancel = self.cancel();
        let mut names = Vec::with_capacity(tasks.len());
        let mut critical = Vec::with_capacity(tasks.len());
        let mut states: Vec<Option<TaskState>> = Vec::with_capacity(tasks.len());
        let mut index = HashMap::with_capacity(tasks.len());
        let mut running = JoinSet::new();
        for (i, task) in tasks.into_iter().enumerate() {
            tracing::debug!(task = %task.name, "starting task");
            let context = self.context().push();
            let handle = running.spawn(context.clone().scope((task.run)(context)));
            index.insert(handle.id(), i);
            names.push(task.name);
            critical.push(task.critical);
            states.push(None);
        }
        let mut deadline: Option<Instant> = None;
        let mut grace_started = false;
        let mut aborted = false;
        while !running.is_empty() {
            let grace_over = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                joined = running.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, state) = match joined {
                        Ok((id, Ok(value))) => (id, TaskState::Done(value)),
                        Ok((id, Err(err))) => (id, TaskState::Failed(err)),
                        Err(err) if err.is_panic() => {
                            let id = err.id();
                            (id, TaskState::Failed(panic_message(err.into_panic()).into()))
                        }
                        Err(err) => (err.id(), TaskState::Cancelled),
                    };
                    let Some(&i) = index.get(&id) else { continue };
                    if let TaskState::Failed(err) = &state {
                        tracing::error!(task = %names[i], error = %err, "task failed");
                        if critical[i] && !cancel.is_cancelled() {
                            tracing::warn!(task = %names[i], "a critical task failed; cancelling the stage");
                            cancel.cancel();
                        }
                    }
                    states[i] = Some(state);
                }
                () = cancel.cancelled(), if !grace_started => {
                    tracing::info!(grace = ?self.cancel_timeout, "stage cancelled; waiting for tasks");
                    grace_started = true;
                    deadline = Some(Instant::now() + self.cancel_timeout);
                }
                () = grace_over, if !aborted => {
                    tracing::warn!(left = running.len(), "grace period over; aborting tasks");
                    aborted = true;
                    running.abort_all();
                }
                () = cancel.cancelled_now(), if !aborted => {
                    tracing::warn!(left = running.len(), "stopping at once; aborting tasks");
                    aborted = true;
                    running.abort_all();
                }
            }
        }
        names
            .into_iter()
            .zip(states)
            .map(|(name, state)| TaskOutcome::new(name, state.unwrap_or(TaskState::Cancelled)))
            .collect()
    }

    /// Phase 3 alone: stops background jobs, then runs the teardown steps in reverse order of
    /// registration. Returns the steps that failed (each also logged).
    pub async fn teardown(&self) -> Vec<(String, BoxError)> {
        if let Ok(jobs) = self.context().get::<Jobs>() {
            jobs.shutdown().await;
        }
        let steps = std::mem::take(&mut *lock(&self.root.shared.teardown));
        let mut failures = Vec::new();
        for step in steps.into_iter().rev() {
            tracing::debug!(step = %step.name, "teardown");
            // Spawned so a panicking step is reported and the steps after it still run.
            let run = self.context().clone().scope(step.run);
            let error = match tokio::spawn(run).await {
                Ok(Ok(_)) => continue,
                Ok(Err(err)) => err,
                Err(err) if err.is_panic() => panic_message(err.into_panic()).into(),
                Err(err) => Box::new(err) as BoxError,
            };
            tracing::error!(step = %step.name, error = %error, "teardown step failed");
            failures.push((step.name, error));
        }
        failures
    }
}

/// How each task ended, in order, and which teardown steps failed.
#[derive(Debug)]
pub struct StageReport {
    tasks: Vec<TaskOutcome>,
    teardown_failures: Vec<(String, BoxError)>,
}

impl StageReport {
    /// Each task's outcome, in the order the tasks were handed to the stage.
    pub fn tasks(&self) -> &[TaskOutcome] {
        &self.tasks
    }

    /// The teardown steps that failed, by name.
    pub fn teardown_failures(&self) -> &[(String, BoxError)] {
        &self.teardown_failures
    }

    /// The first task that failed, if any.
    pub fn first_failure(&self) -> Option<&TaskOutcome> {
        self.tasks.iter().find(|t| t.error().is_some())
    }

    /// Whether no task and no teardown step failed.
    pub fn is_success(&self) -> bool {
        self.first_failure().is_none() && self.teardown_failures.is_empty()
    }
}
