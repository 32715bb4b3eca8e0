//! Environment help: every variable a section type reads, for an `--env-help` flag.

use std::fmt;

use figment::value::Value;

use super::Section;
use super::layer::nest;
use super::schema::{Leaf, Schema, section_path};
use super::secret::REDACTED;

/// One variable a section reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name, e.g. `APP_HTTP_PORT`.
    pub name: String,
    /// The dotted key it sets, e.g. `http.port`.
    pub key: String,
    /// The field's type as shown to people, e.g. `u16`, `list of string`, `secret string`,
    /// `auto | json | pretty` (the values of an enum).
    pub type_label: String,
    /// The in-code default as TOML, `***` for secrets, `None` without one.
    pub default: Option<String>,
    /// The valid range in words (`between 1 and 100`), for fields with a
    /// [`Limit`](super::Limit).
    pub range: Option<String>,
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
/// assert!(help.contains("auto | json | pretty"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvHelp {
    vars: Vec<EnvVar>,
    /// Section types whose variables could not be listed, and why.
    problems: Vec<String>,
}

impl EnvHelp {
    /// The variables, in field order.
    pub fn vars(&self) -> &[EnvVar] {
        &self.vars
    }
}

impl fmt::Display for EnvHelp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(
                f,
                "(some environment variables cannot be listed: {problem})"
            )?;
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
            let mut default = match &var.default {
                Some(default) => format!("default {default}"),
                None => "no default".to_owned(),
            };
            if let Some(range) = &var.range {
                default = format!("{default}; {range}");
            }
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
/// [`ConfigSource::env_help`](super::ConfigSource::env_help) lists them for every known section.
pub fn env_help<T: Section>(prefix: &str) -> EnvHelp {
    let schema = Schema::of::<T>(T::SECTION, T::limits());
    match T::defaults() {
        Ok(defaults) => {
            let defaults = defaults
                .map(|dict| Value::from(nest(&section_path(T::SECTION), Value::from(dict))));
            EnvHelp::of([(&schema, defaults.as_ref())], prefix)
        }
        Err(error) => EnvHelp {
            vars: Vec::new(),
            problems: vec![error.to_string()],
        },
    }
}

impl EnvHelp {
    /// Help for sections given with their defaults (nested from the config root).
    pub(crate) fn of<'a>(
        sections: impl IntoIterator<Item = (&'a Schema, Option<&'a Value>)>,
        prefix: &str,
    ) -> Self {
        let prefix = prefix.trim_end_matches('_');
        let mut help = Self {
            vars: Vec::new(),
            problems: Vec::new(),
        };
        for (schema, defaults) in sections {
            if let Some(problem) = &schema.problem {
                help.problems
                    .push(format!("{}: {problem}", schema.type_name));
            }
            help.vars.extend(schema.leaves.iter().map(|leaf| EnvVar {
                name: leaf.env_name(prefix),
                key: leaf.key(),
                type_label: leaf.type_label(),
                default: defaults.and_then(|defaults| default_text(defaults, leaf)),
                range: schema.limit_of(&leaf.key()).map(ToString::to_string),
            }));
        }
        help
    }

    /// Orders the variables by name, for listing many sections together.
    pub fn sort(&mut self) {
        self.vars.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Adds a variable that is not a section field (a service's own, e.g. `APP_CONFIG`).
    pub fn push(&mut self, var: EnvVar) {
        self.vars.push(var);
    }
}

fn default_text(defaults: &Value, leaf: &Leaf) -> Option<String> {
    let value = defaults.find_ref(&leaf.key())?;
    if matches!(value, Value::Empty(..)) {
        return None;
    }
    Some(if leaf.secret {
        REDACTED.to_owned()
    } else {
        toml_text(value)
    })
}

/// A value in TOML syntax, as a user would write it.
fn toml_text(value: &Value) -> String {
    toml::Value::try_from(value).map_or_else(|_| format!("{value:?}"), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;

    #[test]
    fn an_enum_reads_as_its_values_and_its_default_as_serde_names_it() {
        let help = env_help::<LogConfig>("APP");
        let format = help
            .vars()
            .iter()
            .find(|var| var.name == "APP_LOG_FORMAT")
            .unwrap();
        assert_eq!(format.type_label, "auto | json | pretty");
        assert_eq!(format.default.as_deref(), Some("\"auto\""));
    }
}
