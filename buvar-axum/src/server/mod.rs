//! The axum server plugin: one router from every plugin's routes, served on the shared
//! listeners with graceful shutdown on [`Cancel`].

pub(crate) mod guard;
mod inherited;
mod ranges;
mod readiness;
pub(crate) mod request;
mod request_id;
mod routes;
mod stack;
mod supervised;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use buvar_kit::{BoxError, Cancel, ConfigSource, Context, Plugin, Prepare, Stage};

pub use inherited::InheritedSockets;
pub use ranges::SettingOutOfRange;
pub(crate) use ranges::check_http;
#[cfg(feature = "grpc")]
pub(crate) use readiness::ReadyVerdict;
pub use readiness::{Readiness, ReadinessConfig, ReadinessError};
pub use routes::PrepareExt;
pub(crate) use routes::merge as merge_routes;
pub use stack::router;
pub use supervised::Supervised;
pub(crate) use supervised::released;

use crate::HttpConfig;
use crate::serving::Serving;
use crate::sockets::{SocketError, SocketUri};

/// The name of the server plugin.
pub const PLUGIN_NAME: &str = "buvar-axum.server";

/// The server plugin: prepares the `[http]` section and hands the stage a task that serves the
/// merged router of every plugin's routes on the listeners found in the context (or binds
/// `host:port` itself when there are none), with `/healthz` and `/readyz` built in.
///
/// Each inherited socket's bound address becomes a [`SocketUri`] component named by the URI
/// it was asked for (`ctx.get_named::<SocketUri>("tcp://0.0.0.0:8080")`).
pub fn plugin() -> Plugin {
    Plugin::new(PLUGIN_NAME, prepare)
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    let http = http_config(cx.context())?;
    let readiness = cx.context().add(Readiness::default());
    if let Some(metrics) = crate::metrics::prepare(&cx)? {
        cx.context().add(metrics);
    }
    if let Some(inherited) = cx.context().try_get::<InheritedSockets>() {
        for (uri, local) in inherited.addresses() {
            cx.context().add_named(&uri.to_string(), local);
        }
    }
    cx.task("http server", move |ctx: Context| {
        serve(ctx, http, readiness)
    });
    Ok(())
}

/// The plugins of a service, staged with the server plugin.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServicePlugins {
    loads: Vec<Plugin>,
    registered: Vec<Plugin>,
}

impl ServicePlugins {
    pub(crate) fn load(&mut self, plugin: Plugin) {
        self.loads.push(plugin);
    }

    pub(crate) fn register(&mut self, plugin: Plugin) {
        self.registered.push(plugin);
    }

    /// `stage` with the server plugin, then the service's plugins, to load.
    pub(crate) fn stage(&self, stage: Stage) -> Stage {
        let stage = self
            .registered
            .iter()
            .fold(stage, |stage, plugin| stage.register(plugin.clone()));
        self.loads
            .iter()
            .fold(stage.load(plugin()), |stage, plugin| {
                stage.load(plugin.clone())
            })
    }
}

/// The `[http]` section of the config source in the context, or the defaults without one.
pub(crate) fn http_config(context: &Context) -> Result<Arc<HttpConfig>, ServerError> {
    let http = match context.try_get::<ConfigSource>() {
        Some(source) => source.section::<HttpConfig>()?,
        None => Arc::new(HttpConfig::default()),
    };
    check_http(&http)?;
    Ok(http)
}

/// Why the server could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Two plugins contributed a handler for the same method and path.
    #[error("routes of plugin `{plugin}` clash with routes added before: {message}")]
    RouteClash {
        /// The plugin whose router clashed.
        plugin: String,
        /// axum's description of the clash.
        message: String,
    },
    /// The `[http]` section is invalid.
    #[error(transparent)]
    Config(#[from] buvar_kit::config::ConfigError),
    /// A setting is outside its valid range.
    #[error(transparent)]
    OutOfRange(#[from] SettingOutOfRange),
    /// Binding the sockets failed.
    #[error(transparent)]
    Bind(#[from] SocketError),
    /// The readiness checks cannot be set up.
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

async fn serve(
    context: Context,
    http: Arc<HttpConfig>,
    readiness: Arc<Readiness>,
) -> Result<(), ServerError> {
    let service = stack::service(&context, &http)?;
    let cancel = context
        .get::<Cancel>()
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let sockets = match context.try_get::<InheritedSockets>() {
        Some(inherited) => inherited.take(),
        None => Vec::new(),
    };
    let sockets = if sockets.is_empty() {
        crate::sockets::bind(&http.socket_uris()?, &http.bind_options())?
    } else {
        sockets
    };
    let addrs: Vec<SocketUri> = sockets.iter().map(|s| s.local_addr().clone()).collect();
    let serving = Serving::start(sockets, service, http.serve_options())?;
    for addr in &addrs {
        tracing::info!(%addr, "serving");
    }
    readiness.set_ready(addrs);
    if let Some(supervisor) = context.try_get::<dyn Supervised>() {
        supervisor.ready();
        let reached = serving.max_requests_reached();
        tokio::spawn(async move {
            reached.await;
            supervisor.replace();
        });
    }
    cancel.cancelled().await;
    tracing::info!("draining");
    serving.drain_after(supervised::released(&context)).await;
    Ok(())
}

/// How long [`Cancel`] leaves the server to drain before the stage aborts it: a little more than
/// the graceful timeout, so the server ends its own drain.
pub(crate) fn stage_grace(http: &HttpConfig) -> Duration {
    http.graceful_timeout() + Duration::from_secs(1)
}
