//! The per-request context layer: every request gets its own child of the plugin context.

use std::task::{Context as TaskContext, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::Context;

/// A tower [`Layer`] that gives each request a fresh child of `context`, stored in the
/// request's extensions, where the [extractors](crate::extract) find it. What a request adds to
/// its context never leaks into other requests or the plugin context.
///
/// ```
/// use axum::{Router, routing::get};
/// use buvar_kit::{Context, ContextLayer, extract::Component};
///
/// async fn hello(Component(greeting): Component<String>) -> String {
///     greeting.to_string()
/// }
///
/// let plugins = Context::new();
/// plugins.add(String::from("Hello, world"));
/// let app: Router = Router::new().route("/", get(hello)).layer(ContextLayer::new(plugins));
/// ```
#[derive(Debug, Clone)]
pub struct ContextLayer {
    context: Context,
}

impl ContextLayer {
    /// A layer whose request contexts are children of `context`.
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            context: self.context.clone(),
        }
    }
}

/// The service [`ContextLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct ContextService<S> {
    inner: S,
    context: Context,
}

impl<S, B> Service<Request<B>> for ContextService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.context.push());
        self.inner.call(request)
    }
}
