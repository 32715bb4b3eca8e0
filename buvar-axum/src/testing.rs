//! HTTP test helpers: call the staged router without a socket, or start a real server on an
//! ephemeral port.
//!
//! ```
//! use axum::{Router, routing::get};
//! use buvar_axum::{PrepareExt, testing::TestApp};
//! use buvar_kit::{BoxError, Plugin, Prepare};
//!
//! async fn hello(cx: Prepare) -> Result<(), BoxError> {
//!     cx.routes(Router::new().route("/", get(|| async { "Hello, world" })));
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Without a socket: drive the router with `tower::ServiceExt::oneshot`.
//! let status = TestApp::new()
//!     .load(Plugin::new("hello", hello))
//!     .router(|router| async move {
//!         use tower::ServiceExt;
//!         let request = axum::http::Request::get("/").body(axum::body::Body::empty()).unwrap();
//!         router.oneshot(request).await.unwrap().status()
//!     })
//!     .await;
//! assert_eq!(status, 200);
//!
//! // A real server on 127.0.0.1, port 0.
//! let server = TestApp::new().load(Plugin::new("hello", hello)).serve().await?;
//! assert!(server.url("/").starts_with("http://127.0.0.1:"));
//! server.stop().await;
//! # Ok::<(), BoxError>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::time::Duration;

use axum::Router;
use buvar_kit::plugin::{Signals, StageReport};
use buvar_kit::testing::TestStage;
use buvar_kit::{BoxError, Cancel, ConfigSource, Context, Plugin, Stage};
use tokio::task::JoinHandle;

use crate::server::{self, Readiness, ServicePlugins};
use crate::sockets::SocketUri;

/// A service's plugins staged for a test, with the [server plugin](crate::plugin).
#[derive(Debug)]
pub struct TestApp {
    config: ConfigSource,
    plugins: ServicePlugins,
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    /// No plugins yet, an empty config.
    pub fn new() -> Self {
        Self {
            config: ConfigSource::new(),
            plugins: ServicePlugins::default(),
        }
    }

    /// Uses `source` as the config (its `[http]` listening address is replaced by
    /// `127.0.0.1:0` for [`TestApp::serve`]).
    pub fn config(mut self, source: ConfigSource) -> Self {
        self.config = source;
        self
    }

    /// Loads `plugin`.
    pub fn load(mut self, plugin: Plugin) -> Self {
        self.plugins.load(plugin);
        self
    }

    /// Makes `plugin` loadable by name.
    pub fn register(mut self, plugin: Plugin) -> Self {
        self.plugins.register(plugin);
        self
    }

    fn stage(&self, config: ConfigSource) -> Stage {
        self.plugins.stage(
            Stage::new()
                .config(config)
                .signals(Signals::none())
                .cancel_timeout(Duration::from_secs(10)),
        )
    }

    /// Prepares the plugins, runs `body` with the server's router (all routes and layers, no
    /// socket), then tears down, also when `body` panics.
    ///
    /// # Panics
    ///
    /// When preparing fails, when the router cannot be built, when a teardown step fails,
    /// and, after teardown, with the body's own panic.
    pub async fn router<F, Fut>(self, body: F) -> Fut::Output
    where
        F: FnOnce(Router) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let stage = self.stage(self.config.clone());
        TestStage::with_stage(stage)
            .run(|cx| async move {
                let router = server::http_config(cx.context())
                    .and_then(|http| server::router(cx.context(), &http))
                    .unwrap_or_else(|err| panic!("building the router failed: {err}"));
                body(router).await
            })
            .await
    }

    /// Stages the plugins and serves them on `127.0.0.1` at a port the kernel picks; returns
    /// once the server accepts connections.
    ///
    /// Its drain closes idle keep-alive connections at once (`keep_alive_grace = 0`), so
    /// [`TestServer::stop`] does not wait on a test's HTTP client that is still alive.
    pub async fn serve(self) -> Result<TestServer, BoxError> {
        let config = self
            .config
            .clone()
            .toml("[http]\nhost = \"127.0.0.1\"\nport = 0\nsockets = []\nkeep_alive_grace = 0")?;
        let prepared = self.stage(config).prepare().await?;
        let context = prepared.context().clone();
        let cancel = prepared.cancel();
        let readiness = context.get::<Readiness>()?;
        let mut stage = tokio::spawn(prepared.run());
        let addrs = tokio::select! {
            addrs = readiness.wait() => addrs,
            report = &mut stage => {
                let report = report?;
                let reason = report
                    .first_failure()
                    .and_then(|task| task.error().map(ToString::to_string))
                    .unwrap_or_else(|| "the stage ended before the server was ready".to_owned());
                return Err(reason.into());
            }
        };
        let Some(SocketUri::Tcp(addr)) = addrs.first().cloned() else {
            return Err("the server is not listening on a TCP socket".into());
        };
        Ok(TestServer {
            base_url: format!("http://{addr}"),
            context,
            cancel,
            stage: Some(stage),
        })
    }
}

/// A real server for a test; stop it with [`TestServer::stop`] (dropping it cancels the stage
/// without waiting).
#[derive(Debug)]
pub struct TestServer {
    base_url: String,
    context: Context,
    cancel: Cancel,
    stage: Option<JoinHandle<StageReport>>,
}

impl TestServer {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The plugin context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The stage's cancel: triggering it starts the drain.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Cancels the stage, waits for the drain and the teardown, and returns the report. Idle
    /// connections are closed at once, so a client kept alive by the test does not hold it up;
    /// requests in flight still finish.
    ///
    /// # Panics
    ///
    /// When the stage itself panicked.
    pub async fn stop(mut self) -> StageReport {
        self.cancel.cancel();
        match self.stage.take() {
            Some(stage) => match stage.await {
                Ok(report) => report,
                Err(err) => panic!("the test server's stage panicked: {err}"),
            },
            None => unreachable!("the stage handle is only taken by `stop`"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::{Router, routing::get};
    use buvar_kit::{BoxError, Plugin, Prepare};

    use super::TestApp;
    use crate::PrepareExt;

    async fn hello(cx: Prepare) -> Result<(), BoxError> {
        cx.routes(Router::new().route("/", get(|| async { "hi" })));
        Ok(())
    }

    #[tokio::test]
    async fn stop_does_not_wait_for_an_idle_keep_alive_client() {
        let server = TestApp::new()
            .load(Plugin::new("hello", hello))
            .serve()
            .await
            .unwrap();
        // The client stays alive, its pooled connection idle on the server.
        let client = reqwest::Client::new();
        let response = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "hi");

        let started = Instant::now();
        let report = server.stop().await;
        let took = started.elapsed();
        assert!(report.is_success(), "{report:?}");
        // A drain that gave the idle client the service's default keep-alive grace would take
        // a whole second here.
        assert!(took < Duration::from_millis(500), "stop took {took:?}");
        drop(client);
    }
}
