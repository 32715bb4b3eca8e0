//! axum extractors for components, injected values and config sections.
//!
//! They read the request's context, which [`ContextLayer`](crate::ContextLayer) puts in the
//! request's extensions. A failure answers `500 Internal Server Error` and logs the reason (the
//! type, and for injection the whole chain); it never panics.

use std::any::TypeId;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Context;
use crate::RequestContext;
use crate::config::Section;
use crate::di::Adapters;
pub use crate::di::{Component, Config};

/// Why an extractor could not produce its value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractRejection {
    /// The request has no context: the router lacks `ContextLayer`.
    #[error(
        "the request has no buvar context; add `ContextLayer` to the router (the server plugin does)"
    )]
    NoContext,
    /// No component of the asked-for type.
    #[error(transparent)]
    Component(#[from] crate::ComponentError),
    /// Dependency injection failed.
    #[error(transparent)]
    Inject(#[from] crate::ResolveError),
    /// A config section is not available.
    #[error(transparent)]
    Config(#[from] crate::di::ConfigLookupError),
}

impl IntoResponse for ExtractRejection {
    fn into_response(self) -> Response {
        // The reason names internal types: it goes to the log, not to the client.
        tracing::error!(reason = %self, "request extraction failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
    }
}

/// The request's context, as [`ContextLayer`](crate::ContextLayer) stored it.
fn request_context(parts: &Parts) -> Result<&RequestContext, ExtractRejection> {
    parts
        .extensions
        .get::<RequestContext>()
        .ok_or(ExtractRejection::NoContext)
}

/// The request's own context (a child of the plugin context), to add to.
impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(request_context(parts)?.context().clone())
    }
}

impl<S: Send + Sync, T: ?Sized + Send + Sync + 'static> FromRequestParts<S> for Component<T> {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Component(request_context(parts)?.nearest().get::<T>()?))
    }
}

/// A value resolved by dependency injection in the request's context: adapters may depend on
/// the request's [`Parts`] (as `Arc<Parts>`, without its extensions), which the context holds
/// for them once an adapter asks for them.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use buvar_kit::{Context, ContextLayer, extract::Inject};
///
/// struct Caller(String);
/// fn caller(parts: Arc<http::request::Parts>) -> Caller {
///     let name = parts.headers.get("x-caller").and_then(|v| v.to_str().ok());
///     Caller(name.unwrap_or("anonymous").to_owned())
/// }
///
/// async fn whoami(Inject(caller): Inject<Caller>) -> String {
///     caller.0.clone()
/// }
///
/// let plugins = Context::new();
/// plugins.adapters().register_infallible(caller);
/// let app: Router = Router::new().route("/", get(whoami)).layer(ContextLayer::new(plugins));
/// ```
pub struct Inject<T>(pub Arc<T>);

impl<T> Deref for Inject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Inject<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Inject").field(&self.0).finish()
    }
}

impl<S: Send + Sync, T: Send + Sync + 'static> FromRequestParts<S> for Inject<T> {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = request_context(parts)?;
        // What a resolution would find first: a `T` in the context, else a made singleton
        // that is the first adapter for `T`. Both need neither the request's own context
        // (made only for a write) nor a resolver.
        let reads = request.nearest();
        if let Some(value) = reads.try_get::<T>() {
            return Ok(Inject(value));
        }
        let adapters = reads.try_get::<Adapters>();
        if let Some(value) = adapters.as_ref().and_then(|a| a.ready_singleton::<T>()) {
            return Ok(Inject(value));
        }
        // Resolution may add to the request's context (scoped products, the request head).
        let context = request.context().clone();
        let parts_needed = adapters
            .as_ref()
            .is_some_and(|adapters| adapters.requires(TypeId::of::<Parts>()));
        if parts_needed && !context.contains::<Parts>(None) {
            // The request's extensions hold its context: a copy of them inside that context
            // would be a reference cycle, and the request would never be freed.
            let extensions = std::mem::take(&mut parts.extensions);
            let head = parts.clone();
            parts.extensions = extensions;
            context.add(head);
        }
        Ok(Inject(
            context.nject_by_adapters::<T>(adapters.as_deref()).await?,
        ))
    }
}

impl<S: Send + Sync, T: Section> FromRequestParts<S> for Config<T> {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Config::from_context(request_context(parts)?.nearest())?)
    }
}
