//! Serving an axum router in a worker without the plugin stage.

use std::io;

use axum::Router;

use super::{Shutdown, ShutdownWatch, Worker};
use crate::serving::{ServeOptions, Serving};

/// Serves `router` on all the worker's sockets until SIGTERM, SIGINT or the supervisor's
/// death, then drains; call it inside the worker's tokio runtime.
///
/// It is [`Worker::watch_shutdown`], [`Serving::start`], [`Worker::notify_ready`] and
/// [`drain_on_shutdown`] in a row.
pub async fn serve(worker: &mut Worker, router: Router) -> io::Result<Shutdown> {
    let mut shutdown = worker.watch_shutdown()?;
    let options = ServeOptions::default().graceful_timeout(worker.graceful_timeout());
    let serving = Serving::start(worker.take_sockets(), router.with_state(()), options)?;
    worker.notify_ready()?;
    Ok(drain_on_shutdown(worker, &mut shutdown, serving).await)
}

/// Waits for a reason to stop, then drains `serving`; returns the reason. Without a
/// supervisor nobody else cuts a drain short, so a second stop request does. Once `serving`
/// reached its `max_requests`, it asks the supervisor for a replacement and serves on until
/// that one is ready and this worker is told to stop.
pub async fn drain_on_shutdown(
    worker: &Worker,
    shutdown: &mut ShutdownWatch,
    serving: Serving,
) -> Shutdown {
    let reached = serving.max_requests_reached();
    let reason = tokio::select! {
        reason = shutdown.wait() => reason,
        () = reached => {
            if let Err(error) = worker.request_replacement() {
                tracing::error!(index = worker.index(), %error, "cannot ask the supervisor for a replacement");
            }
            shutdown.wait().await
        }
    };
    tracing::info!(index = worker.index(), ?reason, "worker draining");
    let open = serving.open_connections();
    if worker.is_supervised() {
        serving.drain().await;
    } else {
        tokio::select! {
            _ = serving.drain() => {}
            again = shutdown.wait() => {
                tracing::warn!(index = worker.index(), ?again, open, "second stop request; dropping the open connections");
            }
        }
    }
    reason
}
