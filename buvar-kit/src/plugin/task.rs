use std::any::Any;
use std::fmt;
use std::future::Future;

pub use crate::outcome::TaskOutput;
use crate::outcome::TaskValue;
use crate::{BoxError, BoxFuture, Context};

/// A long-running future a plugin hands to the stage: a server, a consumer, a scheduler.
///
/// It receives its own child of the plugin context, so what it adds never leaks into other
/// tasks. Its output is `()` or `Result<T, E>`.
///
/// ```
/// use buvar_kit::plugin::Task;
/// let task = Task::new("ticker", |_ctx| async { Ok::<_, std::io::Error>(42_u32) }).non_critical();
/// assert_eq!(task.name(), "ticker");
/// ```
pub struct Task {
    pub(crate) name: String,
    pub(crate) critical: bool,
    pub(crate) run:
        Box<dyn FnOnce(Context) -> BoxFuture<'static, Result<TaskValue, BoxError>> + Send>,
}

impl Task {
    /// A task named `name` that runs `f` with its own child context. A failure cancels the
    /// stage unless the task is made [`non_critical`](Task::non_critical).
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        Self {
            name: name.into(),
            critical: true,
            run: Box::new(move |ctx| Box::pin(async move { f(ctx).await.into_task_result() })),
        }
    }

    /// A failure of this task is recorded but does not cancel the stage.
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .finish()
    }
}

/// How a task ended.
#[derive(Debug)]
pub struct TaskOutcome {
    name: String,
    state: TaskState,
}

/// The end state of a task.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskState {
    /// It returned a value (`()` for tasks without one).
    Done(Box<dyn Any + Send>),
    /// It returned an error or panicked.
    Failed(BoxError),
    /// It was still running when the grace period after `Cancel` ran out, and was aborted.
    Cancelled,
}

impl TaskOutcome {
    pub(crate) fn new(name: String, state: TaskState) -> Self {
        Self { name, state }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it ended.
    pub fn state(&self) -> &TaskState {
        &self.state
    }

    /// Its value, if it finished with a value of type `T`.
    pub fn value<T: 'static>(&self) -> Option<&T> {
        match &self.state {
            TaskState::Done(value) => value.downcast_ref(),
            _ => None,
        }
    }

    /// Its error, if it failed.
    pub fn error(&self) -> Option<&BoxError> {
        match &self.state {
            TaskState::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// Whether it was aborted after the grace period.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.state, TaskState::Cancelled)
    }

    /// Whether it finished with a value.
    pub fn is_done(&self) -> bool {
        matches!(self.state, TaskState::Done(_))
    }
}

/// A step the stage runs at the end, in reverse order of registration.
pub(crate) struct Teardown {
    pub(crate) name: String,
    pub(crate) run: BoxFuture<'static, Result<TaskValue, BoxError>>,
}
