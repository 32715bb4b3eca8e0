use crate::BoxError;

/// Why a plugin could not be loaded or prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin's prepare step returned an error.
    #[error("plugin `{plugin}` failed to prepare: {source}")]
    Prepare {
        /// The plugin's name.
        plugin: String,
        /// What it returned.
        source: BoxError,
    },
    /// Plugins load each other in a circle.
    #[error("plugins load each other in a cycle: {}; remove one of these loads", .cycle.join(" -> "))]
    Cycle {
        /// The plugin names, from the first load to the repeated one.
        cycle: Vec<String>,
    },
    /// The config's `plugins` list could not be read.
    #[error("cannot read the plugins to load from the config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// No plugin of that name is known to the stage.
    #[error("unknown plugin `{name}`; known plugins: {}", if .known.is_empty() { "none (register them with `Stage::register`)".to_owned() } else { .known.join(", ") })]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names the stage knows, sorted.
        known: Vec<String>,
    },
}

impl PluginError {
    /// The plugin that failed (the innermost one for nested loads); `None` for a cycle or an
    /// unknown name.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Prepare { plugin, .. } => Some(plugin),
            _ => None,
        }
    }
}

/// Why a stage stopped before its tasks ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// Preparing the plugins failed; the teardown steps registered so far have run.
    #[error("{source}")]
    Prepare {
        /// What failed.
        source: PluginError,
        /// Teardown steps that failed afterwards, by name.
        teardown_failures: Vec<(String, BoxError)>,
    },
}

impl StageError {
    /// The plugin error behind this.
    pub fn plugin_error(&self) -> &PluginError {
        match self {
            Self::Prepare { source, .. } => source,
        }
    }
}
