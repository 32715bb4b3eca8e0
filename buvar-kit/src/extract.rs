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

/// The request has no buvar context: the router lacks [`ContextLayer`](crate::ContextLayer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request has no buvar context; add `ContextLayer` to the router (the server plugin does)"
)]
pub struct MissingRequestContext;

/// Declares an extractor's rejection: the reasons it fails, `status()`, `body_text()` and an
/// [`IntoResponse`] that logs the reason and answers without it (the reason names internal
/// types: it goes to the log, not to the client).
macro_rules! rejection {
    (
        $(#[$meta:meta])*
        $name:ident for $extractor:literal {
            $($(#[$variant_meta:meta])* $variant:ident($source:ty),)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$variant_meta])* #[error(transparent)] $variant(#[from] $source),)+
        }

        impl $name {
            /// The status it answers with: `500 Internal Server Error`, since each reason is a
            /// wiring mistake of the service, never of the client.
            pub fn status(&self) -> StatusCode {
                StatusCode::INTERNAL_SERVER_ERROR
            }

            /// The body it answers with; the reason itself is logged, not sent.
            pub fn body_text(&self) -> String {
                "Internal Server Error".to_owned()
            }
        }

        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                tracing::error!(extractor = $extractor, reason = %self, "request extraction failed");
                (self.status(), self.body_text()).into_response()
            }
        }
    };
}

rejection! {
    /// Why the [`Context`] extractor failed.
    ContextRejection for "Context" {
        /// The router lacks `ContextLayer`.
        MissingRequestContext(MissingRequestContext),
    }
}

rejection! {
    /// Why the [`Component`] extractor failed.
    ComponentRejection for "Component" {
        /// The router lacks `ContextLayer`.
        MissingRequestContext(MissingRequestContext),
        /// No component of the asked-for type.
        Missing(crate::ComponentError),
    }
}

rejection! {
    /// Why the [`Inject`] extractor failed.
    InjectRejection for "Inject" {
        /// The router lacks `ContextLayer`.
        MissingRequestContext(MissingRequestContext),
        /// Dependency injection failed; the error holds the whole chain.
        Resolve(crate::ResolveError),
    }
}

rejection! {
    /// Why the [`Config`] extractor failed.
    ConfigRejection for "Config" {
        /// The router lacks `ContextLayer`.
        MissingRequestContext(MissingRequestContext),
        /// The section is not available.
        Config(crate::di::ConfigLookupError),
    }
}

/// The request's context, as [`ContextLayer`](crate::ContextLayer) stored it.
fn request_context(parts: &Parts) -> Result<&RequestContext, MissingRequestContext> {
    parts
        .extensions
        .get::<RequestContext>()
        .ok_or(MissingRequestContext)
}

/// The request's own context (a child of the plugin context), to add to.
impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ContextRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(request_context(parts)?.context().clone())
    }
}

impl<S: Send + Sync, T: ?Sized + Send + Sync + 'static> FromRequestParts<S> for Component<T> {
    type Rejection = ComponentRejection;

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
///
/// `--check` and the start-up check cannot see what handlers inject: axum erases a handler's
/// extractor types once it is routed, and the kit would have to wrap every handler to record
/// them (a cost on every request, for a check that one request in a test makes as well). A `T`
/// that nothing provides answers 500 and logs the type and what is missing; a test that calls
/// each route once through `buvar_axum::testing::TestApp` finds it before production does.
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
    type Rejection = InjectRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = request_context(parts)?;
        // What a resolution would find first: a `T` in the context, else a made singleton
        // that is the first adapter for `T`. Both need neither the request's own context
        // (made only for a write) nor a resolver.
        let adapters = match request.nearest().get_or_nearest::<T, Adapters>() {
            Ok(value) => return Ok(Inject(value)),
            Err(adapters) => adapters,
        };
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
    type Rejection = ConfigRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Config::from_context(request_context(parts)?.nearest())?)
    }
}
