//! Environment help: every variable a section type reads, for an `--env-help` flag.

use std::fmt;

use figment::value::Value;

use super::Section;
use super::schema::{Schema, section_path};
use super::secret::REDACTED;

/// One variable a section reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name, e.g. `APP_HTTP_PORT`.
    pub name: String,
    /// The dotted key it sets, e.g. `http.port`.
    pub key: String,
    /// The field's type as shown to people, e.g. `u16`, `list of string`, `secret string`.
    pub type_label: String,
    /// The in-code default as TOML, `***` for secrets, `None` without one.
    pub default: Option<String>,
}

/// The variables a section type reads; `Display` prints one line per variable.
///
/// ```
/// use buvar_kit::config::env_help;
/// use buvar_kit::log::LogConfig;
///
/// let help = env_help::<LogConfig>("APP").to_string();
/// assert!(help.contains("APP_LOG_LEVEL"));
/// assert!(help.contains("default \"info\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvHelp {
    vars: Vec<EnvVar>,
    problem: Option<String>,
}

impl EnvHelp {
    /// The variables, in field order.
    pub fn vars(&self) -> &[EnvVar] {
        &self.vars
    }
}

impl fmt::Display for EnvHelp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(problem) = &self.problem {
            return writeln!(f, "(environment variables unavailable: {problem})");
        }
        let name_width = self
            .vars
            .iter()
            .map(|var| var.name.len())
            .max()
            .unwrap_or(0);
        let type_width = self
            .vars
            .iter()
            .map(|var| var.type_label.len())
            .max()
            .unwrap_or(0);
        for var in &self.vars {
            let default = match &var.default {
                Some(default) => format!("default {default}"),
                None => "no default".to_owned(),
            };
            writeln!(
                f,
                "{:name_width$}  {:type_width$}  {default}",
                var.name, var.type_label
            )?;
        }
        Ok(())
    }
}

/// Lists every environment variable section `T` reads with prefix `prefix`, with its type and
/// its in-code default (from `section!(T, "name", default)`).
pub fn env_help<T: Section>(prefix: &str) -> EnvHelp {
    let prefix = prefix.trim_end_matches('_');
    let schema = Schema::of::<T>();
    let defaults = match T::defaults() {
        Ok(defaults) => defaults.map(Value::from),
        Err(error) => {
            return EnvHelp {
                vars: Vec::new(),
                problem: Some(error.to_string()),
            };
        }
    };
    let skip = section_path(T::SECTION).len();
    let vars = schema
        .leaves
        .iter()
        .map(|leaf| {
            let default = defaults.as_ref().and_then(|defaults| {
                let relative = leaf.path.get(skip..).unwrap_or_default().join(".");
                let value = defaults.find_ref(&relative)?;
                if matches!(value, Value::Empty(..)) {
                    return None;
                }
                Some(if leaf.secret {
                    REDACTED.to_owned()
                } else {
                    toml_text(value)
                })
            });
            EnvVar {
                name: leaf.env_name(prefix),
                key: leaf.key(),
                type_label: leaf.type_label(),
                default,
            }
        })
        .collect();
    EnvHelp {
        vars,
        problem: schema.problem,
    }
}

/// A value in TOML syntax, as a user would write it.
fn toml_text(value: &Value) -> String {
    toml::Value::try_from(value).map_or_else(|_| format!("{value:?}"), |value| value.to_string())
}
