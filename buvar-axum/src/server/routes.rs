//! Routes contributed by plugins, merged into one router.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use buvar_kit::{BoxError, Context, Prepare};

use super::ServerError;
use super::readiness::Checks;

/// The routers plugins contributed, in order, with the plugin that gave each.
#[derive(Default)]
pub(crate) struct Routes {
    contributions: Mutex<Vec<(String, Router)>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

impl Routes {
    fn of(context: &Context) -> Arc<Routes> {
        match context.try_get::<Routes>() {
            Some(routes) => routes,
            None => context.add(Routes::default()),
        }
    }

    /// Merges every contribution; a clash (two handlers for one method and path) is an error
    /// naming the plugin whose router clashed.
    pub(crate) fn merged(context: &Context) -> Result<Router, ServerError> {
        let contributions = Self::of(context)
            .contributions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut merged = Router::new();
        for (plugin, router) in contributions {
            merged = merge(merged, router, &plugin)?;
        }
        Ok(merged)
    }
}

/// axum reports overlapping routes by panicking; this turns that into an error.
pub(crate) fn merge(base: Router, other: Router, plugin: &str) -> Result<Router, ServerError> {
    catch_unwind(AssertUnwindSafe(|| base.merge(other))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "overlapping routes".to_owned());
        ServerError::RouteClash {
            plugin: plugin.to_owned(),
            message,
        }
    })
}

/// Lets plugins contribute routes to the server plugin.
///
/// ```
/// use axum::{Router, routing::get};
/// use buvar_axum::PrepareExt;
/// use buvar_kit::{BoxError, Prepare};
///
/// async fn prepare(cx: Prepare) -> Result<(), BoxError> {
///     cx.routes(Router::new().route("/", get(|| async { "Hello, world" })));
///     Ok(())
/// }
/// ```
pub trait PrepareExt {
    /// Adds `router`'s routes to the server's router.
    fn routes(&self, router: Router);

    /// Adds a check named `name` to `/readyz`: the worker is ready only while every check
    /// passes. `check` gets the plugin context and runs with `[readiness] timeout`; its outcome
    /// is reused for `[readiness] cache` seconds. A failing check never restarts the worker
    /// (`/healthz` ignores it); its error text is served by `/readyz?verbose` with the
    /// passwords of URLs redacted.
    ///
    /// ```
    /// use buvar_axum::PrepareExt;
    /// use buvar_kit::{BoxError, Prepare};
    ///
    /// struct Pool;
    /// impl Pool {
    ///     async fn ping(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// }
    ///
    /// async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    ///     cx.context().add(Pool);
    ///     cx.readiness_check("db", |ctx| async move { ctx.get::<Pool>()?.ping().await?; Ok(()) });
    ///     Ok(())
    /// }
    /// ```
    fn readiness_check<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static;
}

impl PrepareExt for Prepare {
    fn routes(&self, router: Router) {
        Routes::of(self.context())
            .contributions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.plugin_name().to_owned(), router));
    }

    fn readiness_check<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Checks::add(self.context(), self.plugin_name(), name, check);
    }
}
