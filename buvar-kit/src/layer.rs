//! The per-request context layer: every request gets its own child of the plugin context,
//! made when the request first needs it.

use std::future::Future;
use std::task::{Context as TaskContext, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::Context;
use crate::components::LazyChild;
use crate::current::{CurrentContext, WithContext};

/// A tower [`Layer`] that gives each request its own child of `context` (made when first
/// needed, see [`RequestContext`]), stored in the request's extensions as a [`RequestContext`],
/// where the [extractors](crate::extract) find it, and as the [current
/// context](Context::current) of the handler and the middleware inside the layer. What a
/// request adds to its context never leaks into other requests or the plugin context.
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
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let context = RequestContext::attach(&self.context, &mut request);
        context.scope(self.inner.call(request))
    }
}

/// A request's context, as [`ContextLayer`] stores it in the request's extensions.
///
/// The request's own layer (a child of the plugin context) is made when something first asks
/// for it ([`context`](Self::context): to write to it, to extract [`Context`], or for
/// `Inject<T>`, whose resolution may add to it): a request that only reads components costs no
/// allocation beyond this handle, and reads go straight to the plugin context until then. A
/// clone shares the request's layer, made or not: what one copy adds the other finds.
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
    lazy: LazyChild,
}

impl RequestContext {
    /// A request context whose layer will be a child of `parent`.
    pub fn new(parent: Context) -> Self {
        Self {
            lazy: LazyChild::new(parent),
        }
    }

    /// A request context whose layer will be a child of `parent`, stored in `request`'s
    /// extensions, where the extractors look for it, as [`ContextLayer`] does; for a layer of
    /// one's own, which then runs the handler in its [`scope`](Self::scope).
    ///
    /// ```
    /// use buvar_kit::{Context, RequestContext};
    ///
    /// let plugins = Context::new();
    /// let mut request = http::Request::new(());
    /// let context = RequestContext::attach(&plugins, &mut request);
    /// context.context().add(3_u8);
    /// let stored = request.extensions().get::<RequestContext>().unwrap();
    /// assert_eq!(*stored.nearest().get::<u8>()?, 3);
    /// # Ok::<(), buvar_kit::ComponentError>(())
    /// ```
    pub fn attach<B>(parent: &Context, request: &mut Request<B>) -> Self {
        let context = Self::new(parent.clone());
        request.extensions_mut().insert(context.clone());
        context
    }

    /// The request's own context, made now if it does not exist yet: where the request's
    /// writes go.
    pub fn context(&self) -> &Context {
        self.lazy.context()
    }

    /// Where lookups start: the request's own context once it exists, else the plugin
    /// context, which then holds everything the request could find. For reading only: a
    /// value added to it before the request's own context exists would go to the plugin
    /// context, shared by every request; add through [`context`](Self::context).
    pub fn nearest(&self) -> &Context {
        self.lazy.nearest()
    }

    /// Runs `future` with this request's context as the [current](Context::current) one, as
    /// [`ContextLayer`] runs the handler: for a layer of one's own that does the same work in
    /// its own future (after [`attach`](Self::attach)).
    ///
    /// ```
    /// use buvar_kit::{Context, RequestContext};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plugins = Context::new();
    /// plugins.add(1_u8);
    /// let request = RequestContext::new(plugins.clone());
    /// let seen = request.scope(async { *buvar_kit::get::<u8>().unwrap() }).await;
    /// assert_eq!(seen, 1);
    /// # });
    /// ```
    pub fn scope<F: Future>(self, future: F) -> WithContext<F> {
        CurrentContext::lazy(self.lazy).scope(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_shares_the_request_layer_even_when_made_before_it() {
        let plugins = Context::new();
        let request = RequestContext::new(plugins.clone());
        let copy = request.clone();
        copy.context().add(7_u32);
        assert_eq!(*request.nearest().get::<u32>().unwrap(), 7);
        assert!(
            plugins.get::<u32>().is_err(),
            "nothing reached the plugin context"
        );
    }

    #[test]
    fn reads_go_to_the_plugin_context_until_the_request_layer_is_made() {
        let plugins = Context::new();
        plugins.add(1_u8);
        let request = RequestContext::new(plugins.clone());
        assert!(!request.lazy.is_made());
        assert_eq!(*request.nearest().get::<u8>().unwrap(), 1);
        assert!(!request.lazy.is_made(), "a read made no layer");
        request.context().add(2_u8);
        assert_eq!(*request.nearest().get::<u8>().unwrap(), 2);
        assert_eq!(*plugins.get::<u8>().unwrap(), 1);
    }
}
