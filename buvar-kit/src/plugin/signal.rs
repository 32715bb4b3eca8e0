use std::fmt;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use super::Cancel;
use crate::Context;

type Handler = Arc<dyn Fn(&Context) + Send + Sync>;

/// Which signals do what while the stage runs its tasks.
///
/// By default SIGINT and SIGTERM trigger [`Cancel`]; a second one while the grace period runs
/// aborts the remaining tasks at once. Handlers for other signals (HUP, QUIT, USR1, USR2, WINCH,
/// ...) get the plugin context.
///
/// ```
/// use tokio::signal::unix::SignalKind;
/// use buvar_kit::plugin::Signals;
///
/// let signals = Signals::default().on(SignalKind::hangup(), |_ctx| {
///     tracing::info!("reloading");
/// });
/// # let _ = signals;
/// ```
///
/// Once tokio listens for a signal, the process keeps its handler for good: after the stage
/// ends, SIGINT no longer kills the process by default.
#[derive(Clone)]
pub struct Signals {
    handlers: Vec<(SignalKind, Handler)>,
}

impl Default for Signals {
    fn default() -> Self {
        Self::none()
            .cancel_on(SignalKind::interrupt())
            .cancel_on(SignalKind::terminate())
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.handlers.iter().map(|(kind, _)| kind.as_raw_value()))
            .finish()
    }
}

impl Signals {
    /// No signal handling at all (e.g. in tests, or where a supervisor handles them).
    pub fn none() -> Self {
        Self {
            handlers: Vec::new(),
        }
    }

    /// `kind` triggers [`Cancel`]; a repeat while cancelling aborts the remaining tasks.
    pub fn cancel_on(self, kind: SignalKind) -> Self {
        self.on(kind, |ctx| {
            if let Ok(cancel) = ctx.get::<Cancel>() {
                if cancel.is_cancelled() {
                    cancel.cancel_now();
                } else {
                    cancel.cancel();
                }
            }
        })
    }

    /// Runs `handler` with the plugin context each time `kind` arrives.
    pub fn on(
        mut self,
        kind: SignalKind,
        handler: impl Fn(&Context) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.push((kind, Arc::new(handler)));
        self
    }

    /// Starts listening; the listeners stop when the returned guard drops.
    pub(crate) fn install(&self, context: &Context) -> SignalGuard {
        let mut listeners = Vec::new();
        for (kind, handler) in &self.handlers {
            match signal(*kind) {
                Ok(mut stream) => {
                    let handler = handler.clone();
                    let context = context.clone();
                    let raw = kind.as_raw_value();
                    listeners.push(tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            tracing::info!(signal = raw, "signal received");
                            handler(&context);
                        }
                    }));
                }
                Err(err) => tracing::warn!(
                    signal = kind.as_raw_value(),
                    error = %err,
                    "cannot listen for signal; is the tokio runtime built with `enable_all`?"
                ),
            }
        }
        SignalGuard { listeners }
    }
}

pub(crate) struct SignalGuard {
    listeners: Vec<JoinHandle<()>>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
    }
}
