//! Plugins and the stage that runs them.
//!
//! A [`Plugin`] is an async prepare step with a stable name. Preparing, it may load other
//! plugins (each is prepared once), add components, register adapters and teardown steps, and
//! hand back [`Task`]s. The [`Stage`] runs three phases: prepare every plugin; run all tasks
//! together until every task is done or [`Cancel`] fires (then a grace period, then abort);
//! tear down in reverse order of registration, also when preparing failed halfway.
//!
//! ```
//! use buvar_kit::{Cancel, Context, plugin::{Plugin, Prepare, Stage}};
//!
//! struct Greeting(&'static str);
//!
//! async fn greetings(cx: Prepare) -> Result<(), buvar_kit::BoxError> {
//!     cx.context().add(Greeting("hello"));
//!     Ok(())
//! }
//!
//! async fn app(cx: Prepare) -> Result<(), buvar_kit::BoxError> {
//!     cx.load(Plugin::new("greetings", greetings)).await?;
//!     cx.teardown("say goodbye", async { println!("bye") });
//!     cx.task("greeter", |ctx: Context| async move {
//!         let greeting = ctx.get::<Greeting>()?;
//!         ctx.get::<Cancel>()?.cancel();
//!         Ok::<_, buvar_kit::BoxError>(greeting.0)
//!     });
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = Stage::new().load(Plugin::new("app", app)).run().await?;
//! assert_eq!(report.tasks()[0].value::<&str>(), Some(&"hello"));
//! # Ok::<(), buvar_kit::plugin::StageError>(())
//! # }).unwrap();
//! ```

mod cancel;
mod error;
mod signal;
mod stage;
mod task;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;

pub use cancel::Cancel;
pub use error::{PluginError, StageError};
pub use signal::Signals;
pub use stage::{Prepared, Stage, StageReport};
pub use task::{Task, TaskOutcome, TaskOutput, TaskState};

use crate::config::{ConfigError, ConfigSource, Section};
use crate::di::Adapters;
use crate::jobs::Jobs;
use crate::{BoxError, BoxFuture, Context};

/// A named, async prepare step. Build one from any `async fn(Prepare) -> Result<(), E>`.
#[derive(Clone)]
pub struct Plugin {
    name: Cow<'static, str>,
    prepare: Arc<dyn Fn(Prepare) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>,
    sections: Vec<RegisterSection>,
}

/// Makes a section type known to a config source ([`ConfigSource::register`]).
type RegisterSection = fn(&ConfigSource) -> Result<(), ConfigError>;

impl Plugin {
    /// A plugin named `name` (its stable identity: loading the same name twice prepares it once)
    /// whose prepare step is `prepare`.
    pub fn new<F, Fut, E>(name: impl Into<Cow<'static, str>>, prepare: F) -> Self
    where
        F: Fn(Prepare) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            name: name.into(),
            prepare: Arc::new(move |cx| {
                let prepared = prepare(cx);
                Box::pin(async move { prepared.await.map_err(Into::into) })
            }),
            sections: Vec::new(),
        }
    }

    /// Declares a config section the plugin reads, so that a service's `--env-help`,
    /// `--print-config`, start-up check and unknown-variable warnings cover it without `main`
    /// declaring it too. The stage makes it known to its config source before preparing.
    pub fn section<T: Section>(mut self) -> Self {
        self.sections.push(ConfigSource::register::<T>);
        self
    }

    /// Makes the sections this plugin [declares](Self::section) known to `source`.
    pub fn register_sections(&self, source: &ConfigSource) -> Result<(), ConfigError> {
        self.sections
            .iter()
            .try_for_each(|register| register(source))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Plugin").field(&self.name).finish()
    }
}

/// What a plugin's prepare step gets: the plugin context, and the means to load plugins and to
/// hand tasks and teardown steps to the stage. Cheap to clone.
#[derive(Clone)]
pub struct Prepare {
    shared: Arc<Shared>,
    /// The plugins whose loads led here, outermost first, to detect cycles.
    path: Arc<[Arc<str>]>,
}

pub(crate) struct Shared {
    context: Context,
    cancel: Cancel,
    catalogue: Mutex<BTreeMap<String, Plugin>>,
    loads: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    tasks: Mutex<Vec<Task>>,
    teardown: Mutex<Vec<task::Teardown>>,
}

/// The stage's own bookkeeping is never left half-written by a panic (every critical section is
/// a push or a lookup), so a poisoned lock is safe to keep using.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Prepare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepare")
            .field("path", &self.path)
            .field("context", &self.shared.context)
            .finish()
    }
}

impl Prepare {
    /// The context every plugin shares.
    pub fn context(&self) -> &Context {
        &self.shared.context
    }

    /// The adapter registry of the plugin context.
    pub fn adapters(&self) -> Arc<Adapters> {
        self.shared.context.adapters()
    }

    /// The stage's cancel.
    pub fn cancel(&self) -> Cancel {
        self.shared.cancel.clone()
    }

    /// The background job runner of the stage.
    pub fn jobs(&self) -> Arc<Jobs> {
        self.shared.context.get::<Jobs>().unwrap_or_else(|_| {
            // The stage adds one before preparing; a hand-built `Prepare` may lack it.
            self.shared.context.add(Jobs::new())
        })
    }

    /// The name of the plugin being prepared (empty at the top level).
    pub fn plugin_name(&self) -> &str {
        self.path.last().map_or("", |name| name)
    }

    /// Loads `plugin`: prepares it now unless a plugin of that name was prepared already.
    /// Loading a plugin that is being prepared further up this chain is a cycle error.
    pub async fn load(&self, plugin: Plugin) -> Result<(), PluginError> {
        let name: Arc<str> = Arc::from(plugin.name());
        if self.path.contains(&name) {
            let mut cycle: Vec<String> = self.path.iter().map(|n| n.to_string()).collect();
            cycle.push(name.to_string());
            return Err(PluginError::Cycle { cycle });
        }
        lock(&self.shared.catalogue)
            .entry(name.to_string())
            .or_insert_with(|| plugin.clone());
        let cell = lock(&self.shared.loads)
            .entry(name.to_string())
            .or_default()
            .clone();
        let child = Prepare {
            shared: self.shared.clone(),
            path: self.path.iter().cloned().chain([name.clone()]).collect(),
        };
        cell.get_or_try_init(|| async {
            if let Some(source) = self.shared.context.try_get::<ConfigSource>() {
                plugin
                    .register_sections(&source)
                    .map_err(|source| PluginError::Prepare {
                        plugin: name.to_string(),
                        source: source.into(),
                    })?;
            }
            tracing::debug!(plugin = %name, "preparing plugin");
            let prepare = (plugin.prepare)(child);
            // The plugin context is the current one while the plugin prepares.
            let prepared = self.shared.context.clone().scope(prepare).await;
            prepared.map_err(|source| {
                // A nested load's failure already names the plugin that failed.
                match source.downcast::<PluginError>() {
                    Ok(inner) => *inner,
                    Err(source) => PluginError::Prepare {
                        plugin: name.to_string(),
                        source,
                    },
                }
            })
        })
        .await
        .map(|_| ())
    }

    /// Loads the plugin registered under `name` (see [`Stage::register`]); an unknown name is an
    /// error listing the known ones.
    pub async fn load_named(&self, name: &str) -> Result<(), PluginError> {
        let plugin = {
            let catalogue = lock(&self.shared.catalogue);
            match catalogue.get(name) {
                Some(plugin) => plugin.clone(),
                None => {
                    return Err(PluginError::Unknown {
                        name: name.to_owned(),
                        known: catalogue.keys().cloned().collect(),
                    });
                }
            }
        };
        self.load(plugin).await
    }

    /// Hands the stage a task named `name`; see [`Task::new`].
    pub fn task<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        self.spawn(Task::new(name, f));
    }

    /// Hands the stage a task built with [`Task`].
    pub fn spawn(&self, task: Task) {
        lock(&self.shared.tasks).push(task);
    }

    /// Registers a teardown step: it runs after the tasks, in reverse order of registration,
    /// also when preparing failed. Its error (or panic) is logged and reported, never lost.
    pub fn teardown<Fut>(&self, name: impl Into<String>, step: Fut)
    where
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        lock(&self.shared.teardown).push(task::Teardown {
            name: name.into(),
            run: Box::pin(async move { step.await.into_task_result() }),
        });
    }
}
