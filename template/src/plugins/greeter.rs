//! The greeter plugin, a sample with one of each part a plugin can have, and its tests:
//!
//! - a config section, `[greeter]` (`{{env_prefix}}_GREETER_GREETING=Hi` overrides it);
//! - a component, [`Greetings`], the count of greetings this worker served;
//! - an adapter that builds the injected service, [`Greeter`], from the section and the count;
//! - routes: `GET /greet/{name}` (text) and `GET /greetings` (JSON);
//! - a background task that logs the count every `report_interval` seconds until the service
//!   stops.
//!
//! **State is per worker.** Each worker process stages its own plugins, so `Greetings` counts
//! what *this* worker served: with `forks = 2`, two requests may answer from two counters. A
//! component lives in one worker and dies with it (a crash, recycling after `max_requests`, a
//! SIGHUP rollout). State every request must see belongs in a database or another process;
//! `forks = 1` keeps one process.
//!
//! To remove the sample: delete this file, its `pub mod greeter;` line in `plugins/mod.rs` and
//! its line in `main.rs` (the `[greeter]` table in `config.toml` then goes too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use buvar_axum::{Component, Config, Inject, PrepareExt, Service};
use buvar_kit::{BoxError, Cancel, Context, Plugin, Prepare};
use serde::{Deserialize, Serialize};

/// The `[greeter]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreeterConfig {
    /// The word a greeting starts with.
    pub greeting: String,
    /// Seconds between two log lines with the count of greetings; 0 turns them off.
    pub report_interval: u64,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
            report_interval: 60,
        }
    }
}

buvar_kit::section!(GreeterConfig, "greeter", default);

/// How many greetings this worker served: a component shared by the routes and the report.
#[derive(Debug, Default)]
pub struct Greetings(AtomicU64);

impl Greetings {
    /// The count so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Greets people; made once per worker by the [`greeter`] adapter.
#[derive(Debug)]
pub struct Greeter {
    greeting: String,
    greetings: Arc<Greetings>,
}

impl Greeter {
    /// `"<greeting>, <name>!"`, counted.
    pub fn greet(&self, name: &str) -> String {
        self.greetings.0.fetch_add(1, Ordering::Relaxed);
        format!("{}, {name}!", self.greeting)
    }
}

/// The adapter: its arguments are what a `Greeter` depends on.
fn greeter(config: Config<GreeterConfig>, greetings: Arc<Greetings>) -> Greeter {
    Greeter {
        greeting: config.greeting.clone(),
        greetings,
    }
}

async fn greet(Inject(greeter): Inject<Greeter>, Path(name): Path<String>) -> String {
    greeter.greet(&name)
}

/// The body of `GET /greetings`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GreetingCount {
    /// Greetings this worker served.
    pub greetings: u64,
    /// The worker's process id: with several workers, counts differ from one to the next.
    pub pid: u32,
}

async fn greetings(Component(greetings): Component<Greetings>) -> Json<GreetingCount> {
    Json(GreetingCount {
        greetings: greetings.count(),
        pid: std::process::id(),
    })
}

/// The background task: it gets its own child of the plugin context, and ends when the stage
/// cancels, so a stopping worker is never held up by it.
async fn report(ctx: Context) -> Result<(), BoxError> {
    let config: Config<GreeterConfig> = ctx.resolve().await?;
    let greetings = ctx.get::<Greetings>()?;
    let cancel = ctx.get::<Cancel>()?;
    if config.report_interval == 0 {
        return Ok(());
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(config.report_interval));
    // An interval's first tick is immediate; the first report is due one interval in.
    ticks.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticks.tick() => tracing::info!(greetings = greetings.count(), "greetings so far"),
        }
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.context().add(Greetings::default());
    cx.adapters().register_infallible(greeter).singleton();
    cx.routes(
        Router::new()
            .route("/greet/{name}", get(greet))
            .route("/greetings", get(greetings)),
    );
    cx.task("greetings report", report);
    Ok(())
}

/// The plugin, named `greeter`.
pub fn plugin() -> Plugin {
    Plugin::new("greeter", prepare)
}

/// Adds the plugin to `service` with the config section it reads: `main`'s one line for it.
pub fn install(service: Service) -> Service {
    service.section::<GreeterConfig>().load(plugin())
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use buvar_axum::testing::TestApp;
    use buvar_kit::ConfigSource;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn a_greeting_names_the_person_and_is_counted() {
        let greetings = Arc::new(Greetings::default());
        let greeter = Greeter {
            greeting: "Hi".to_owned(),
            greetings: greetings.clone(),
        };
        assert_eq!(greeter.greet("ada"), "Hi, ada!");
        assert_eq!(greetings.count(), 1);
    }

    #[tokio::test]
    async fn greets_through_the_router_without_a_socket() {
        let (status, body) = TestApp::new()
            .load(plugin())
            .router(|router| async move {
                let request = Request::get("/greet/ada").body(Body::empty()).unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let body = to_bytes(response.into_body(), 1024).await.unwrap();
                (status, body)
            })
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Hello, ada!");
    }

    #[tokio::test]
    async fn a_real_server_greets_with_the_configured_word_and_counts_in_json() {
        let config = ConfigSource::new()
            .toml("[greeter]\ngreeting = \"Hi\"")
            .unwrap();
        let server = TestApp::new()
            .config(config)
            .load(plugin())
            .serve()
            .await
            .unwrap();

        let client = reqwest::Client::new();
        let greeting = client.get(server.url("/greet/ada")).send().await.unwrap();
        assert_eq!(greeting.text().await.unwrap(), "Hi, ada!");
        let count: GreetingCount = client
            .get(server.url("/greetings"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            count,
            GreetingCount {
                greetings: 1,
                pid: std::process::id()
            }
        );
        let raw: serde_json::Value = client
            .get(server.url("/greetings"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(raw["greetings"], 1);

        let report = server.stop().await;
        assert!(report.is_success(), "{report:?}");
        let task = report
            .tasks()
            .iter()
            .find(|task| task.name() == "greetings report");
        assert!(task.is_some_and(|task| task.is_done()), "{report:?}");
    }
}
