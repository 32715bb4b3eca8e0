//! Routes contributed by plugins, merged into one router.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use buvar_kit::{Context, Prepare};

use super::ServerError;

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
}

impl PrepareExt for Prepare {
    fn routes(&self, router: Router) {
        Routes::of(self.context())
            .contributions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.plugin_name().to_owned(), router));
    }
}
