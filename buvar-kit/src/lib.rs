//! buvar-kit: components, dependency injection, plugin staging, typed config and logging.

mod components;
pub mod di;
#[cfg(feature = "axum")]
pub mod extract;
mod jobs;
#[cfg(feature = "axum")]
mod layer;
pub mod plugin;
pub mod testing;

pub use components::{ComponentError, Context};
pub use di::{Component, Named, Overrides, ResolveError};
#[cfg(feature = "axum")]
pub use extract::Inject;
pub use jobs::Jobs;
#[cfg(feature = "axum")]
pub use layer::{ContextLayer, ContextService};
pub use plugin::{Cancel, Plugin, Prepare, Stage};

/// A boxed error, as plugins, tasks and adapters return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) type BoxFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
