//! Test helpers: the counterparts of buvar's pytest fixtures.
//!
//! [`TestStage`] prepares plugins into a fresh, independent stage (tests may run many in
//! parallel), hands the test body the plugin context and a loader, and runs teardown at the
//! end, also when the body fails or panics. Tasks the plugins hand back are not run: a test
//! drives what it needs itself.
//!
//! ```
//! use buvar_kit::{BoxError, Cancel, plugin::{Plugin, Prepare}, testing::TestStage};
//!
//! async fn prepare(cx: Prepare) -> Result<(), BoxError> {
//!     cx.context().add(String::from("foobar"));
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! TestStage::new()
//!     .load(Plugin::new("tests.prepare", prepare))
//!     .run(|cx| async move {
//!         assert_eq!(*cx.context().get::<String>().unwrap(), "foobar");
//!         assert!(cx.context().get::<Cancel>().is_ok());
//!     })
//!     .await;
//! # });
//! ```

use std::future::Future;
use std::time::Duration;

use crate::Context;
use crate::plugin::{Plugin, Prepare, Prepared, Signals, Stage};

/// A stage for one test; see the [module docs](self).
#[derive(Debug)]
pub struct TestStage {
    stage: Stage,
}

impl Default for TestStage {
    fn default() -> Self {
        Self::new()
    }
}

impl TestStage {
    /// A stage on a fresh context, with no signal handling and a 5 s grace period.
    pub fn new() -> Self {
        Self::with_context(Context::new())
    }

    /// A stage whose plugin context is a child of `context` (e.g. one holding a config source).
    pub fn with_context(context: Context) -> Self {
        Self::with_stage(Stage::with_context(context))
    }

    /// Tests `stage` as it is configured (plugins, config, context), without signal handling
    /// and with a 5 s grace period.
    pub fn with_stage(stage: Stage) -> Self {
        Self {
            stage: stage
                .signals(Signals::none())
                .cancel_timeout(Duration::from_secs(5)),
        }
    }

    /// Loads `plugin` when the stage prepares.
    pub fn load(mut self, plugin: Plugin) -> Self {
        self.stage = self.stage.load(plugin);
        self
    }

    /// Makes `plugin` loadable by name.
    pub fn register(mut self, plugin: Plugin) -> Self {
        self.stage = self.stage.register(plugin);
        self
    }

    /// Prepares the plugins, runs `body` with a top-level [`Prepare`] (its context is the plugin
    /// context, also the [current one](Context::current); it can load more plugins), then
    /// tears down.
    ///
    /// # Panics
    ///
    /// When preparing fails, when a teardown step fails, and, after teardown, with the body's
    /// own panic.
    pub async fn run<F, Fut>(self, body: F) -> Fut::Output
    where
        F: FnOnce(Prepare) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let prepared = match self.stage.prepare().await {
            Ok(prepared) => prepared,
            Err(err) => panic!("preparing the test stage failed: {err}"),
        };
        let body = prepared.context().clone().scope(body(prepared.loader()));
        let outcome = tokio::spawn(body).await;
        finish(prepared).await;
        match outcome {
            Ok(value) => value,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("the test body was cancelled: {err}"),
        }
    }
}

async fn finish(prepared: Prepared) {
    let failures = prepared.teardown().await;
    if let Some((name, err)) = failures.first() {
        panic!(
            "teardown step `{name}` failed: {err} ({} failure(s) in all)",
            failures.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::BoxError;

    fn flagging(flag: Arc<AtomicBool>) -> Plugin {
        Plugin::new("flagging", move |cx: Prepare| {
            let flag = flag.clone();
            async move {
                cx.teardown(
                    "set flag",
                    async move { flag.store(true, Ordering::SeqCst) },
                );
                Ok::<_, BoxError>(())
            }
        })
    }

    #[tokio::test]
    async fn body_result_is_returned_after_teardown() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let value = TestStage::new()
            .load(flagging(torn_down.clone()))
            .run(|_| async { 42 })
            .await;
        assert_eq!(value, 42);
        assert!(torn_down.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn teardown_runs_when_the_body_panics_and_the_panic_is_resumed() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let stage = TestStage::new().load(flagging(torn_down.clone()));
        let outcome = tokio::spawn(stage.run(|_| async {
            panic!("test body failed");
        }))
        .await;
        let payload = outcome.unwrap_err().into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"test body failed"));
        assert!(torn_down.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn body_can_load_more_plugins() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let flag = torn_down.clone();
        TestStage::new()
            .run(move |cx| async move {
                cx.load(flagging(flag)).await.unwrap();
            })
            .await;
        assert!(torn_down.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn stages_in_one_test_are_independent() {
        let a = TestStage::new().run(|cx| async move {
            cx.context().add(1_u8);
            cx.context().clone()
        });
        let b = TestStage::new().run(|cx| async move { cx.context().clone() });
        let (a, b) = tokio::join!(a, b);
        assert!(a.get::<u8>().is_ok());
        assert!(b.get::<u8>().is_err());
    }
}
