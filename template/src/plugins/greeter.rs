//! The greeter plugin, a sample with one of each part a plugin can have, and its tests:
//!
//! - a config section, `[greeter]` (`{{env_prefix}}_GREETER_GREETING=Hi` overrides it);
//! - a component, [`Greetings`], the count of greetings this worker served;
//! - an adapter that builds the injected service, [`Greeter`], from the section and the count;
//! - a route: `GET /greet/{name}`;
//! - a metric, `greetings_total`: the greetings of the whole service, on the metrics port;
//! - a background task that logs this worker's count every `report_interval` seconds until the
//!   service stops.
//!
//! **State is per worker; metrics are not.** Each worker process stages its own plugins, so
//! the `Greetings` component counts what *this* worker served: with `forks = 2`, two workers
//! hold two counts, and a count dies with its worker (a crash, recycling after `max_requests`,
//! a SIGHUP rollout). A `metrics::counter!` is different: buvar sums it over every worker,
//! including the ones that are gone, so `greetings_total` in a scrape is the service's count and
//! never goes backwards. Other state every request must see belongs in a database or another
//! process; `forks = 1` keeps one process.
//!
//! To remove the sample: delete this file, its `pub mod greeter;` line in `plugins/mod.rs` and
//! its line in `main.rs` (the `[greeter]` table in `config.toml` then goes too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use buvar_axum::{App, BoxError, Cancel, Config, Context, Inject, Plugin, Prepare, PrepareExt};
use serde::{Deserialize, Serialize};

/// The metric of the greetings the whole service served.
pub const GREETINGS_TOTAL: &str = "greetings_total";

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

buvar_axum::section!(GreeterConfig, "greeter", default);

/// How many greetings this worker served: a plain per-worker component, shared by the adapter
/// and the report task (the service's count is the `greetings_total` metric).
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
    total: metrics::Counter,
}

impl Greeter {
    /// `"<greeting>, <name>!"`, counted in this worker and in the service's metric.
    pub fn greet(&self, name: &str) -> String {
        self.greetings.0.fetch_add(1, Ordering::Relaxed);
        self.total.increment(1);
        format!("{}, {name}!", self.greeting)
    }
}

/// The adapter: its arguments are what a `Greeter` depends on. It runs at the first request
/// (a singleton per worker), once the server plugin installed buvar's recorder, so the counter
/// handle it keeps records into the service's metrics.
fn greeter(config: Config<GreeterConfig>, greetings: Arc<Greetings>) -> Greeter {
    metrics::describe_counter!(GREETINGS_TOTAL, "Greetings served by every worker");
    Greeter {
        greeting: config.greeting.clone(),
        greetings,
        total: metrics::counter!(GREETINGS_TOTAL),
    }
}

async fn greet(Inject(greeter): Inject<Greeter>, Path(name): Path<String>) -> String {
    greeter.greet(&name)
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
            _ = ticks.tick() => {
                tracing::info!(greetings = greetings.count(), "greetings so far in this worker");
            }
        }
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.context().add(Greetings::default());
    cx.adapters().register_infallible(greeter).singleton();
    cx.routes(Router::new().route("/greet/{name}", get(greet)));
    cx.task("greetings report", report);
    Ok(())
}

/// The plugin, named `greeter`.
pub fn plugin() -> Plugin {
    Plugin::new("greeter", prepare)
}

/// Adds the plugin to `service` with the config section it reads: `main`'s one line for it.
pub fn install(service: App) -> App {
    service.section::<GreeterConfig>().load(plugin())
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use buvar_axum::kit::ConfigSource;
    use buvar_axum::testing::{TestApp, TestServer};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn a_greeting_names_the_person_and_is_counted() {
        let greetings = Arc::new(Greetings::default());
        let greeter = Greeter {
            greeting: "Hi".to_owned(),
            greetings: greetings.clone(),
            total: metrics::Counter::noop(),
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

    /// `greetings_total` in a scrape of the server's `/metrics`; 0 before the first greeting.
    async fn greetings_total(client: &reqwest::Client, server: &TestServer) -> (u64, String) {
        let scrape = client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let total = scrape
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{GREETINGS_TOTAL} ")))
            .map_or(0, |value| value.parse().unwrap());
        (total, scrape)
    }

    #[tokio::test]
    async fn a_real_server_greets_with_the_configured_word_and_counts_in_the_metrics() {
        let config = ConfigSource::new()
            .toml("[greeter]\ngreeting = \"Hi\"")
            .unwrap();
        let server = TestApp::new()
            .config(config)
            .load(plugin())
            .serve()
            .await
            .unwrap();

        // The recorder is the process's: other tests here may greet too, so only the increase
        // is known.
        let client = reqwest::Client::new();
        let (before, _) = greetings_total(&client, &server).await;
        for name in ["ada", "grace"] {
            let greeting = client
                .get(server.url(&format!("/greet/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(greeting.text().await.unwrap(), format!("Hi, {name}!"));
        }
        let (after, scrape) = greetings_total(&client, &server).await;
        assert!(after >= before + 2, "{before} then {after}:\n{scrape}");
        assert!(
            scrape.contains(&format!("# TYPE {GREETINGS_TOTAL} counter")),
            "{scrape}"
        );

        let report = server.stop().await;
        assert!(report.is_success(), "{report:?}");
        let task = report
            .tasks()
            .iter()
            .find(|task| task.name() == "greetings report");
        assert!(task.is_some_and(|task| task.is_done()), "{report:?}");
    }
}
