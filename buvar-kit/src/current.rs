//! The current context: the one of the task or request being run, read from anywhere inside it.
//!
//! The stage sets it for every plugin's prepare step (the plugin context), for every task (the
//! task's own child context) and for teardown steps; [`ContextLayer`](crate::ContextLayer) sets
//! it for the handler (the request's own child context, made when first needed); [`Jobs`](crate::Jobs) and
//! [`spawn`] carry it into what they spawn. The future it was set for holds it and makes it
//! current on the thread while that future is polled (as tokio's task-local values and
//! `tracing`'s instrumented futures do), so a plain `tokio::spawn` starts without it: a new
//! tokio task inherits nothing from the one that spawned it. For synchronous code on another thread
//! (`spawn_blocking`), see [`Context::in_scope`].
//!
//! Explicit passing keeps working everywhere and is what a library should do: its caller then
//! sees what it depends on. Application code (handlers, tasks and the helpers they call) may
//! prefer the ambient form and skip threading a [`Context`] through every function:
//!
//! ```
//! use buvar_kit::{BoxError, Cancel, Context, Plugin, Prepare, Stage};
//!
//! struct Greeting(&'static str);
//!
//! // Three calls deep, without a `Context` argument.
//! fn greeting() -> Result<&'static str, BoxError> {
//!     Ok(buvar_kit::get::<Greeting>()?.0)
//! }
//!
//! async fn app(cx: Prepare) -> Result<(), BoxError> {
//!     cx.context().add(Greeting("hello"));
//!     cx.task("greeter", |_: Context| async move {
//!         let greeting = greeting()?;
//!         buvar_kit::get::<Cancel>()?.cancel();
//!         Ok::<_, BoxError>(greeting)
//!     });
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = Stage::new().load(Plugin::new("app", app)).run().await?;
//! assert_eq!(report.tasks()[0].value::<&str>(), Some(&"hello"));
//! assert!(Context::try_current().is_none(), "outside the stage there is none");
//! # Ok::<(), BoxError>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::components::LazyChild;
use crate::di::{Dependency, ResolveError};
use crate::{ComponentError, Context};

// A reference to the context of the future being polled on this thread, set for the poll
// only: cheaper than a tokio task-local, which moves the value in and out of a `RefCell` on
// every poll, and every request's handler runs in one.
scoped_tls::scoped_thread_local!(static CURRENT: CurrentContext);

/// Reads the current context, if there is one.
fn try_with<R>(read: impl FnOnce(&CurrentContext) -> R) -> Option<R> {
    CURRENT.is_set().then(|| CURRENT.with(read))
}

/// What the current context is, as the task-local value holds it: a context, or a request's
/// context whose own layer is made only when something writes to it. One pointer: the request
/// layer's future holds it, and every layer above moves that future, so each byte counts.
#[derive(Clone)]
pub struct CurrentContext(LazyChild);

impl std::fmt::Debug for CurrentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CurrentContext")
            .field(self.nearest())
            .finish()
    }
}

pin_project! {
    /// A future run with a current context; see [`Context::scope`]. The context is current
    /// while the future is polled and while it is dropped.
    pub struct WithContext<F> {
        current: CurrentContext,
        // `None` once ready: dropped then, with its context current.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for WithContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.is_some() {
                CURRENT.set(this.current, || future.set(None));
            }
        }
    }
}

impl<F> std::fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithContext")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        CURRENT.set(this.current, || {
            let polled = future
                .as_mut()
                .as_pin_mut()
                .expect("a `WithContext` polled after it was ready")
                .poll(cx);
            if polled.is_ready() {
                future.set(None);
            }
            polled
        })
    }
}

impl CurrentContext {
    /// A child context made when first written to, as a request's is.
    #[cfg(feature = "axum")]
    pub(crate) fn lazy(child: LazyChild) -> Self {
        Self(child)
    }

    /// The context to write to.
    fn context(&self) -> Context {
        self.0.context().clone()
    }

    /// The context to read from; for a request, the plugin context until the request's own
    /// layer exists.
    fn nearest(&self) -> &Context {
        self.0.nearest()
    }

    /// Runs `future` with `self` as the current context.
    pub(crate) fn scope<F: Future>(self, future: F) -> WithContext<F> {
        WithContext {
            current: self,
            future: Some(future),
        }
    }

    /// Runs `future` in the context that is current now, if any: what a new task needs, since
    /// it inherits nothing from the one that spawns it.
    pub(crate) fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
        let current = try_with(Self::clone);
        async move {
            match current {
                Some(current) => current.scope(future).await,
                None => future.await,
            }
        }
    }
}

/// There is no current context: the code runs outside of everything that sets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no current buvar context here; one exists in a plugin's prepare step, a stage task, a teardown step, a request handler behind `ContextLayer`, and what `Jobs::spawn` or `buvar_kit::spawn` start from them (a plain `tokio::spawn` carries none); use one of those or pass a `Context` explicitly"
)]
pub struct NoCurrentContext;

impl Context {
    /// The context of the task or request being run: a stage task's own child context, the
    /// plugin context in a prepare or teardown step, a request's own child context in a
    /// handler. See the [module docs](crate::current) for where it is set.
    ///
    /// ```
    /// use buvar_kit::Context;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let err = Context::current().unwrap_err();
    /// assert!(err.to_string().contains("a stage task"));
    ///
    /// let ctx = Context::new();
    /// ctx.add(7_u8);
    /// let seven = ctx.scope(async { *buvar_kit::get::<u8>().unwrap() }).await;
    /// assert_eq!(seven, 7);
    /// # });
    /// ```
    pub fn current() -> Result<Context, NoCurrentContext> {
        Self::try_current().ok_or(NoCurrentContext)
    }

    /// Like [`Context::current`], but `None` outside of a task or request that has one.
    pub fn try_current() -> Option<Context> {
        try_with(CurrentContext::context)
    }

    /// Runs `future` with this context as the current one (see [`Context::current`]).
    pub fn scope<F: Future>(self, future: F) -> WithContext<F> {
        CurrentContext(LazyChild::made(self)).scope(future)
    }

    /// Runs `run` with this context as the current one: for synchronous code that runs
    /// apart from the task that has one, such as a closure given to `spawn_blocking`.
    ///
    /// ```
    /// use buvar_kit::Context;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = Context::new();
    /// ctx.add(String::from("carried"));
    /// let found = tokio::task::spawn_blocking(move || {
    ///     ctx.in_scope(|| buvar_kit::get::<String>().map(|s| s.len()))
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!(found, 7);
    /// assert!(Context::try_current().is_none(), "only inside the closure");
    /// # Ok::<(), buvar_kit::ComponentError>(())
    /// # }).unwrap();
    /// ```
    pub fn in_scope<R>(&self, run: impl FnOnce() -> R) -> R {
        CURRENT.set(&CurrentContext(LazyChild::made(self.clone())), run)
    }
}

/// Reads the current context without making a request's own layer.
fn with_nearest<R>(read: impl FnOnce(&Context) -> R) -> Result<R, NoCurrentContext> {
    try_with(|current| read(current.nearest())).ok_or(NoCurrentContext)
}

/// [`Context::get`] on the [current context](Context::current).
///
/// Call it qualified (`buvar_kit::get::<T>()`): a bare `get` reads as axum's routing function.
pub fn get<T: ?Sized + Send + Sync + 'static>() -> Result<Arc<T>, ComponentError> {
    with_nearest(Context::get::<T>).unwrap_or_else(|_| Err(ComponentError::outside::<T>(None)))
}

/// [`Context::get_named`] on the [current context](Context::current).
pub fn get_named<T: ?Sized + Send + Sync + 'static>(name: &str) -> Result<Arc<T>, ComponentError> {
    with_nearest(|context| context.get_named::<T>(name))
        .unwrap_or_else(|_| Err(ComponentError::outside::<T>(Some(name))))
}

/// [`Context::nject`] on the [current context](Context::current).
pub async fn nject<T: Send + Sync + 'static>() -> Result<Arc<T>, ResolveError> {
    match Context::try_current() {
        Some(context) => context.nject::<T>().await,
        None => Err(ResolveError::outside::<T>()),
    }
}

/// [`Context::nject_named`] on the [current context](Context::current).
pub async fn nject_named<T: Send + Sync + 'static>(name: &str) -> Result<Arc<T>, ResolveError> {
    match Context::try_current() {
        Some(context) => context.nject_named::<T>(name).await,
        None => Err(ResolveError::outside::<T>()),
    }
}

/// [`Context::resolve`] on the [current context](Context::current).
pub async fn resolve<D: Dependency>() -> Result<D, ResolveError> {
    match Context::try_current() {
        Some(context) => context.resolve::<D>().await,
        None => Err(ResolveError::outside::<D>()),
    }
}

/// Spawns `future` on the current tokio runtime with the current context, so that
/// [`Context::current`] and [`get`] work inside it as they do where it was spawned; a plain
/// `tokio::spawn` starts a task without one. The spawned task shares the context (what it adds,
/// the spawner sees); give it `Context::current()?.push().scope(future)` to keep its writes
/// apart. For tracked jobs that are stopped at teardown, use [`Jobs::spawn`](crate::Jobs::spawn),
/// which carries the context too.
///
/// ```
/// use buvar_kit::Context;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ctx = Context::new();
/// ctx.add(String::from("carried"));
/// let joined = ctx
///     .scope(async {
///         let carried = buvar_kit::spawn(async { buvar_kit::get::<String>().is_ok() });
///         let plain = tokio::spawn(async { buvar_kit::get::<String>().is_ok() });
///         (carried.await.unwrap(), plain.await.unwrap())
///     })
///     .await;
/// assert_eq!(joined, (true, false));
/// # });
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(CurrentContext::carry(future))
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Mutex;

    use super::*;

    /// Notes, when dropped, the `u8` of the context current then.
    struct SeenOnDrop(Arc<Mutex<Option<u8>>>);

    impl Drop for SeenOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = get::<u8>().ok().map(|n| *n);
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn context_of(n: u8) -> Context {
        let context = Context::new();
        context.add(n);
        context
    }

    #[test]
    fn a_future_is_dropped_with_its_context_current_whether_ready_or_not() {
        let runtime = runtime();
        let seen = Arc::new(Mutex::new(None));
        let guard = SeenOnDrop(seen.clone());
        runtime.block_on(context_of(1).scope(async move {
            let _guard = guard;
        }));
        assert_eq!(*seen.lock().unwrap(), Some(1), "dropped when ready");

        let guard = SeenOnDrop(seen.clone());
        let pending = context_of(2).scope(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let mut pending = Box::pin(pending);
        let waker = std::task::Waker::noop();
        assert!(
            pending
                .as_mut()
                .poll(&mut TaskContext::from_waker(waker))
                .is_pending()
        );
        drop(pending);
        assert_eq!(*seen.lock().unwrap(), Some(2), "dropped while pending");
        assert!(Context::try_current().is_none());
    }

    #[test]
    fn an_inner_scope_gives_the_outer_context_back_when_it_is_done() {
        let runtime = runtime();
        let seen = runtime.block_on(context_of(1).scope(async {
            let inner = context_of(2).scope(async { *get::<u8>().unwrap() }).await;
            (inner, *get::<u8>().unwrap())
        }));
        assert_eq!(seen, (2, 1));
        assert!(Context::try_current().is_none());
    }

    #[test]
    fn a_panic_in_a_poll_leaves_no_context_current() {
        let runtime = runtime();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(context_of(1).scope(async { panic!("in the poll") }))
        }));
        assert!(panicked.is_err());
        assert!(Context::try_current().is_none());
        let in_scope = catch_unwind(|| context_of(3).in_scope(|| panic!("in the closure")));
        assert!(in_scope.is_err());
        assert!(Context::try_current().is_none());
    }
}
