//! The greeter plugin, one of each part a plugin can have:
//!
//! - a config section, `[greeter]` (`{{env_prefix}}_GREETER_GREETING=Hi` overrides it);
//! - a component, [`Greetings`], the count of greetings this worker served;
//! - an adapter that builds the injected service, [`Greeter`], from the section and the count;
//! - routes: `GET /greet/{name}` and `GET /greetings`;
//! - a background task that logs the count every `report_interval` seconds until the service
//!   stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use buvar_axum::{Component, Config, Inject, PrepareExt};
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

async fn greetings(Component(greetings): Component<Greetings>) -> String {
    greetings.count().to_string()
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

#[cfg(test)]
mod tests {
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
}
