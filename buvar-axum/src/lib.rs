//! Pre-forked axum serving on shared sockets, as a buvar plugin.
//!
//! ```no_run
//! use axum::{Router, extract::Path, routing::get};
//! use buvar_axum::{App, BoxError, Config, Inject, Plugin, Prepare, PrepareExt};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct GreeterConfig { greeting: String }
//! impl Default for GreeterConfig {
//!     fn default() -> Self { Self { greeting: "Hello".into() } }
//! }
//! buvar_axum::section!(GreeterConfig, "greeter", default);
//!
//! struct Greeter { greeting: String }
//! fn greeter(config: Config<GreeterConfig>) -> Greeter {
//!     Greeter { greeting: config.greeting.clone() }
//! }
//!
//! async fn greet(Inject(greeter): Inject<Greeter>, Path(name): Path<String>) -> String {
//!     format!("{}, {name}", greeter.greeting)
//! }
//!
//! async fn app(cx: Prepare) -> Result<(), BoxError> {
//!     cx.adapters().register_infallible(greeter);
//!     cx.routes(Router::new().route("/greet/{name}", get(greet)));
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     App::new("APP")
//!         .section::<GreeterConfig>()
//!         .load(Plugin::new("app", app))
//!         .run()
//! }
//! ```
//!
//! | module | concept |
//! | --- | --- |
//! | [`App`] | a service's `main`: flags, config, logging, sockets, pre-fork, stage |
//! | [`plugin`], [`PrepareExt`] | the server plugin and how plugins contribute routes |
//! | [`HttpConfig`] | the `[http]` section |
//! | [`MetricsConfig`] | the `[metrics]` section: Prometheus metrics across the workers |
//! | [`sockets`] | socket URIs, bound once, and listeners over them |
//! | `fork` | the pre-fork supervisor and its workers (Linux only) |
//! | [`serving`] | serving a router on sockets with a graceful drain |
//! | [`testing`] | calling the staged router without a socket, or a real server on port 0 |
//! | `grpc` | tonic services beside the routes, injection in their methods, `grpc.health.v1` (feature `grpc`) |
//! | `tls` | `[http.tls]`: rustls, ALPN, mutual TLS, certificate reload (feature `tls`) |
//! | `websocket` | WebSockets that take part in the graceful drain (feature `ws`) |
//!
//! # Platforms
//!
//! Pre-forking needs Linux: the supervisor reads its signals from a `signalfd`, sets the
//! workers' parent-death signal with `prctl` and checks `/proc` for threads before each fork, so
//! the `fork` module and the serving half of [`App::run`] exist on Linux only. Everything
//! else builds on any Unix (macOS and the BSDs included): socket URIs and binding, the server
//! plugin and [`serving`], `--check`, `--print-config` and `--env-help`, and
//! [`testing::TestApp`] (its router and its real server on port 0 run in the test's own
//! process). There, [`App::run`] exits 2 with [`PREFORK_NEEDS_LINUX`] instead of serving.

mod app;
mod before_fork;
mod child;
mod config;
#[cfg(target_os = "linux")]
pub mod fork;
#[cfg(feature = "grpc")]
pub mod grpc;
mod metrics;
#[cfg(feature = "otel")]
mod otel;
mod redact;
mod server;
pub mod serving;
pub mod sockets;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "ws")]
pub mod websocket;

pub use app::App;
pub use before_fork::BeforeForkError;
/// The kit this crate builds on, re-exported so that a service depends on buvar-axum alone:
/// `buvar_axum::kit::config::ConfigSource`, `buvar_axum::kit::testing`, ...
pub use buvar_kit as kit;
pub use buvar_kit::extract::{Component, Config, Inject};
pub use buvar_kit::{
    BoxError, Cancel, Context, ContextLayer, Jobs, Plugin, Prepare, Secret, Section, Stage, section,
};
pub use config::HttpConfig;
#[cfg(feature = "grpc")]
pub use grpc::{GrpcRequestExt, PrepareGrpcExt};
pub use metrics::{MetricsConfig, MetricsError};
#[cfg(feature = "otel")]
pub use otel::{OtelConfig, OtelError};
pub use server::{
    InheritedSockets, PLUGIN_NAME, PrepareExt, Readiness, ReadinessConfig, ReadinessError,
    ServerError, SettingOutOfRange, Supervised, plugin, router,
};

/// What [`App::run`] says on a system other than Linux, where it cannot fork workers.
pub const PREFORK_NEEDS_LINUX: &str = "pre-forking needs Linux (signalfd, prctl and /proc): \
     on this system stage buvar_axum::plugin() with buvar_kit::Stage to serve in one process";

/// The README's code, compiled as a doc test so it cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
