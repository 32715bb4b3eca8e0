//! What the buvar server's extracting handler (`BENCH_HANDLER=extract`) extracts: a component, an injected value made by
//! an adapter, and a config section.

use buvar_kit::Config;
use serde::{Deserialize, Serialize};

/// A plain component, read with `Component<Greeting>`.
#[derive(Debug)]
pub struct Greeting(pub String);

/// The `[greeter]` section, read with `Config<GreeterConfig>` and by the [`greeter`] adapter.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct GreeterConfig {
    /// The greeting word.
    pub greeting: String,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
        }
    }
}

buvar_kit::section!(GreeterConfig, "greeter", default);

/// An injected value, read with `Inject<Greeter>`.
#[derive(Debug)]
pub struct Greeter {
    /// The greeting word, from the config section.
    pub greeting: String,
}

/// The adapter making a [`Greeter`] from its config section.
pub fn greeter(config: Config<GreeterConfig>) -> Greeter {
    Greeter {
        greeting: config.greeting.clone(),
    }
}
