//! Dependency injection by adapter functions.
//!
//! An adapter is a plain function, sync or async, whose arguments are [`Dependency`]s and whose
//! return value is the component it makes. [`Context::nject`](crate::Context::nject) resolves a
//! type: first the call's overrides, then the context (named, then unnamed), then every adapter
//! registered for the type, in order, taking the first whose own dependencies resolve, and last
//! the config section of that type (one an adapter reads as [`Config<T>`], or one declared with
//! [`Adapters::section`]).
//!
//! `nject` is the one verb for "give me a `T` however it is provided"; in a task or handler,
//! [`buvar_kit::nject`](crate::nject) does the same on the current context. The narrow verbs stay
//! for when it matters: [`Context::get`](crate::Context::get) reads the context only (and takes
//! trait objects), [`Config::from_context`] the config only, [`Context::resolve`](crate::Context::resolve)
//! any [`Dependency`] shape.
//!
//! ```
//! use std::sync::Arc;
//! use buvar_kit::Context;
//!
//! struct Pool { url: String }
//! struct Repo { pool: Arc<Pool> }
//! struct Service { repo: Arc<Repo> }
//!
//! async fn repo(pool: Arc<Pool>) -> Result<Repo, std::io::Error> {
//!     Ok(Repo { pool })
//! }
//! fn service(repo: Arc<Repo>) -> Service {
//!     Service { repo }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let ctx = Context::new();
//! let adapters = ctx.adapters();
//! adapters.register(repo);
//! adapters.register_infallible(service);
//!
//! let err = ctx.nject::<Service>().await.err().unwrap();
//! assert!(err.to_string().starts_with("`Service` needs `Repo` needs `Pool`: no component"));
//!
//! ctx.add(Pool { url: "postgres://db".into() });
//! let service = ctx.nject::<Service>().await?;
//! assert_eq!(service.repo.pool.url, "postgres://db");
//! # Ok::<(), buvar_kit::di::ResolveError>(())
//! # }).unwrap();
//! ```

mod adapter;
mod dependency;
mod error;
mod graph;
mod overrides;
mod registry;
mod resolve;

pub use adapter::{FallibleAdapter, InfallibleAdapter, ReturnsFuture, ReturnsValue};
pub use dependency::{Component, Config, ConfigLookupError, Dependency, Name, Named};
pub use error::ResolveError;
pub use graph::{Graph, ValidationError};
pub use overrides::Overrides;
pub use registry::{Adapters, Lifecycle, Registration, Requirement, StartupCheck};
pub(crate) use registry::{Entry, Stored};
pub use resolve::Resolver;

#[cfg(test)]
mod tests;
