//! What the server reports to the process that supervises it.

use std::future::Future;
use std::pin::Pin;

/// What the server tells the process that supervises it, found in the context as
/// `Arc<dyn Supervised>`: the pre-fork [`Worker`](crate::fork::Worker) implements it.
pub trait Supervised: Send + Sync {
    /// The server accepts connections.
    fn ready(&self);
    /// The server answered `[http] max_requests` (plus jitter) requests: replace this process.
    fn replace(&self);
    /// Resolves once the supervisor has released this process after asking it to stop: it
    /// closed its own copies of the listening sockets first (the service stops, or an upgrade
    /// handed them over), or it keeps them served by other workers (a rollout, a recycle), or
    /// it is gone. A draining server accepts until then, at most `[http] keep_alive_grace`:
    /// a stop signal sent to the whole process group reaches the workers as early as the
    /// supervisor, and a worker that stopped accepting first would leave connections to queue
    /// on a socket only the supervisor still holds, reset when it closes it. The default
    /// resolves at once.
    fn released(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(std::future::ready(()))
    }
}

/// [`Supervised::released`] of the process's supervisor, found in `context`; at once without one.
pub(crate) fn released(context: &buvar_kit::Context) -> impl Future<Output = ()> + Send + 'static {
    let supervisor = context.try_get::<dyn Supervised>();
    async move {
        if let Some(supervisor) = supervisor {
            supervisor.released().await;
        }
    }
}
