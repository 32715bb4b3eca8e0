//! The per-request context layer: every request gets its own child of the plugin context.

use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::Context;

/// A tower [`Layer`] that gives each request a fresh child of `context`, stored in the
/// request's extensions as a [`RequestContext`], where the [extractors](crate::extract) find
/// it. What a request adds to its context never leaks into other requests or the plugin
/// context.
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
        request
            .extensions_mut()
            .insert(RequestContext::new(self.context.clone()));
        self.inner.call(request)
    }
}

/// A request's context, as [`ContextLayer`] stores it in the request's extensions.
///
/// The request's own layer (a child of the plugin context) is made when something first asks
/// for it, to write to it or to extract [`Context`]: a request that only reads components
/// costs no allocation, and reads go straight to the plugin context until then. A clone made
/// before the request's layer exists gets a layer of its own.
///
/// ```
/// use buvar_kit::{Context, RequestContext};
///
/// let plugins = Context::new();
/// plugins.add(String::from("shared"));
/// let request = RequestContext::new(plugins.clone());
/// assert_eq!(*request.nearest().get::<String>()?, "shared");
///
/// request.context().add(String::from("mine"));
/// assert_eq!(*request.nearest().get::<String>()?, "mine");
/// assert_eq!(*plugins.get::<String>()?, "shared");
/// # Ok::<(), buvar_kit::ComponentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequestContext {
    parent: Context,
    own: OnceLock<Context>,
}

impl RequestContext {
    /// A request context whose layer will be a child of `parent`.
    pub fn new(parent: Context) -> Self {
        Self {
            parent,
            own: OnceLock::new(),
        }
    }

    /// The request's own context, made now if it does not exist yet: where the request's
    /// writes go.
    pub fn context(&self) -> &Context {
        self.own.get_or_init(|| self.parent.push())
    }

    /// Where lookups start: the request's own context once it exists, else the plugin
    /// context, which then holds everything the request could find.
    pub fn nearest(&self) -> &Context {
        self.own.get().unwrap_or(&self.parent)
    }
}
