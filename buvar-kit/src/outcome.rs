//! What a task, a teardown step or a background job returns, and how a panic is reported: shared
//! by the stage and [`Jobs`](crate::Jobs), so that neither depends on the other for it.

use std::any::Any;

use crate::BoxError;

/// What a finished task returned, downcast it with
/// [`TaskOutcome::value`](crate::plugin::TaskOutcome::value).
pub(crate) type TaskValue = Box<dyn Any + Send>;

/// What a task or teardown step may return: `()` or `Result<T, E>`.
pub trait TaskOutput: Send + 'static {
    /// Splits it into a value or an error.
    #[doc(hidden)]
    fn into_task_result(self) -> Result<TaskValue, BoxError>;
}

impl TaskOutput for () {
    fn into_task_result(self) -> Result<TaskValue, BoxError> {
        Ok(Box::new(()))
    }
}

impl<T: Send + 'static, E: Into<BoxError> + Send + 'static> TaskOutput for Result<T, E> {
    fn into_task_result(self) -> Result<TaskValue, BoxError> {
        self.map(|value| Box::new(value) as TaskValue)
            .map_err(Into::into)
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned());
    format!("panicked: {text}")
}
