//! Components, dependency injection, plugin staging, typed config and logging for tokio
//! services: the core of the buvar starter kit.
//!
//! ```
//! use std::sync::Arc;
//! use buvar_kit::{BoxError, Cancel, Context, Plugin, Prepare, Stage};
//!
//! struct Pool { url: String }
//! struct Repo { pool: Arc<Pool> }
//!
//! // An adapter: its arguments are its dependencies, its return value the component it makes.
//! async fn repo(pool: Arc<Pool>) -> Result<Repo, BoxError> {
//!     Ok(Repo { pool })
//! }
//!
//! // A plugin adds components, registers adapters and hands back tasks.
//! async fn app(cx: Prepare) -> Result<(), BoxError> {
//!     cx.context().add(Pool { url: "postgres://db".into() });
//!     cx.adapters().register(repo);
//!     cx.task("worker", |ctx: Context| async move {
//!         let repo = ctx.nject::<Repo>().await?;
//!         ctx.get::<Cancel>()?.cancel();
//!         Ok::<_, BoxError>(repo.pool.url.clone())
//!     });
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = Stage::new().load(Plugin::new("app", app)).run().await?;
//! assert_eq!(report.tasks()[0].value::<String>().unwrap(), "postgres://db");
//! # Ok::<(), BoxError>(())
//! # }).unwrap();
//! ```
//!
//! | module | concept |
//! | --- | --- |
//! | [`Context`] | the component registry: values by type and name, stacked layers |
//! | [`di`] | adapters, [`Context::nject`], overrides, validation and the graph |
//! | [`plugin`] | plugins, the three-phase [`Stage`], [`Cancel`], signals, tasks |
//! | [`config`] | layered TOML config, typed sections, environment overrides, secrets |
//! | [`log`] | one-call tracing set-up: JSON lines or pretty, with the process id |
//! | [`current`] | the current context of a task or request, read from anywhere inside it |
//! | [`Jobs`] | tracked background jobs |
//! | [`testing`] | a stage per test, with teardown even on panic |
//! | [`ContextLayer`], [`extract`] | per-request contexts and axum extractors (feature `axum`) |

#![forbid(unsafe_code)]

mod components;
pub mod config;
pub mod current;
pub mod di;
#[cfg(feature = "axum")]
pub mod extract;
mod jobs;
#[cfg(feature = "axum")]
mod layer;
pub mod log;
mod outcome;
pub mod plugin;
pub mod testing;

pub use components::{ComponentError, Context};
pub use config::{ConfigSource, Secret, Section};
pub use current::{get, get_named, nject, nject_named, resolve, spawn};
pub use di::{Component, Config, Named, Overrides, ResolveError};
#[cfg(feature = "axum")]
pub use extract::Inject;
pub use jobs::Jobs;
#[cfg(feature = "axum")]
pub use layer::{ContextLayer, ContextService, RequestContext};
pub use plugin::{Cancel, Plugin, Prepare, Stage};

/// A boxed error, as plugins, tasks and adapters return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
