//! buvar-kit: components, dependency injection, plugin staging, typed config and logging.

mod components;
pub mod di;
mod jobs;
pub mod plugin;

pub use components::{ComponentError, Context};
pub use di::{Component, Named, Overrides, ResolveError};
pub use jobs::Jobs;
pub use plugin::{Cancel, Plugin, Prepare, Stage};

/// A boxed error, as plugins, tasks and adapters return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) type BoxFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
