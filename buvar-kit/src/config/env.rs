//! Environment overrides: from `APP_HTTP_PORT=8080` to `http.port = 8080`.
//!
//! The rules are documented on the `config` module; values are coerced here, before figment
//! sees them, so a bad value still fails with figment's typed error and the variable's name.

use std::collections::BTreeMap;
use std::fmt;

use figment::value::{Dict, Value};

use super::error::ConfigError;
use super::layer::Layer;
use super::schema::{Kind, Leaf, Schema};
use super::typo::closest;

/// The environment variables that start with the prefix, read once per load.
#[derive(Debug, Default)]
pub(crate) struct EnvSnapshot {
    /// `None` for a value that is not UTF-8.
    vars: BTreeMap<String, Option<String>>,
}

impl EnvSnapshot {
    pub(crate) fn read(prefix: &str) -> Self {
        // An empty prefix maps `HTTP_PORT` to `http.port`: every variable is a candidate.
        let stem = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}_")
        };
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                name.starts_with(&stem)
                    .then(|| (name, value.into_string().ok()))
            })
            .collect();
        Self { vars }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Result<&str, ConfigError>> {
        self.vars.get(name).map(|value| {
            value
                .as_deref()
                .ok_or_else(|| ConfigError::env_not_unicode(name.to_owned()))
        })
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// One config layer per variable that sets a field of `schema`, so errors and the dump can
/// name the variable a value came from.
pub(crate) fn overrides(
    schema: &Schema,
    prefix: &str,
    env: &EnvSnapshot,
) -> Result<Vec<Layer>, ConfigError> {
    if let Some(problem) = &schema.problem {
        let stem = schema.env_stem(prefix);
        let targeted: Vec<String> = env
            .names()
            .filter(|name| {
                name.strip_prefix(&stem)
                    .is_some_and(|rest| rest.starts_with('_'))
            })
            .map(str::to_owned)
            .collect();
        if targeted.is_empty() {
            return Ok(Vec::new());
        }
        return Err(ConfigError::reflection(
            schema.type_name,
            targeted,
            problem.clone(),
        ));
    }
    let mut layers = Vec::new();
    for leaf in &schema.leaves {
        let name = leaf.env_name(prefix);
        let Some(raw) = env.get(&name) else { continue };
        let raw = raw?;
        if let Some(value) = coerce_leaf(leaf, &name, raw)? {
            layers.push(Layer::env(&name, &leaf.path, value));
        }
    }
    Ok(layers)
}

/// The value a variable sets for `leaf`, or `None` when it sets nothing.
pub(crate) fn coerce_leaf(leaf: &Leaf, var: &str, raw: &str) -> Result<Option<Value>, ConfigError> {
    if leaf.optional && raw.trim().is_empty() && !matches!(leaf.kind, Kind::Str) {
        return Ok(None);
    }
    coerce(raw, &leaf.kind).map(Some).map_err(|message| {
        ConfigError::env_value(var.to_owned(), leaf.key(), leaf.type_label(), message)
    })
}

fn coerce(raw: &str, kind: &Kind) -> Result<Value, String> {
    let trimmed = raw.trim();
    Ok(match kind {
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Value::from(true),
            "0" | "false" | "no" | "off" => Value::from(false),
            _ => Value::from(raw),
        },
        Kind::Int(_) => {
            if let Ok(number) = trimmed.parse::<i64>() {
                Value::from(number)
            } else if let Ok(number) = trimmed.parse::<u64>() {
                Value::from(number)
            } else {
                Value::from(raw)
            }
        }
        // A duration in seconds stays a number, so its range check sees the number written.
        Kind::Float(_) | Kind::Duration => trimmed
            .parse::<f64>()
            .map_or_else(|_| Value::from(raw), Value::from),
        Kind::List(item) => {
            if trimmed.starts_with('[') {
                toml_value(trimmed)?
            } else if trimmed.is_empty() {
                Value::from(Vec::<Value>::new())
            } else {
                let items: Result<Vec<Value>, String> = trimmed
                    .split(',')
                    .map(|part| coerce(part.trim(), item))
                    .collect();
                Value::from(items?)
            }
        }
        Kind::Tuple(items) => {
            if trimmed.starts_with('[') {
                toml_value(trimmed)?
            } else {
                let values: Result<Vec<Value>, String> = trimmed
                    .split(',')
                    .enumerate()
                    .map(|(i, part)| coerce(part.trim(), items.get(i).unwrap_or(&Kind::Unknown)))
                    .collect();
                Value::from(values?)
            }
        }
        Kind::Map(_) | Kind::Named(_) | Kind::Unknown
            if trimmed.starts_with('{') || trimmed.starts_with('[') =>
        {
            toml_value(trimmed)?
        }
        Kind::Str
        | Kind::FileMode
        | Kind::Char
        | Kind::Bytes
        | Kind::Unit
        | Kind::Map(_)
        | Kind::OneOf(_)
        | Kind::Named(_)
        | Kind::Unknown => Value::from(raw),
    })
}

/// Parses one TOML value (array or inline table).
fn toml_value(text: &str) -> Result<Value, String> {
    let mut dict: Dict = toml::from_str(&format!("value = {text}")).map_err(|error| {
        format!(
            "found {text:?}, which is not valid TOML ({})",
            error.message().trim_end()
        )
    })?;
    dict.remove("value")
        .ok_or_else(|| format!("found {text:?}, which is not one TOML value"))
}

/// A variable with the source's prefix that sets no field of any known section.
///
/// ```
/// use buvar_kit::config::ConfigSource;
///
/// // With APP_HTTP_PORTT set and a section with field `http.port` loaded:
/// // "environment variable APP_HTTP_PORTT sets no config field; did you mean APP_HTTP_PORT?"
/// let warnings = ConfigSource::new().env_prefix("DOCTEST_NOTHING").env_warnings();
/// assert!(warnings.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvWarning {
    var: String,
    suggestion: Option<String>,
}

impl EnvWarning {
    /// The variable's name.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The closest variable that does set a field, if one is close enough to be a typo.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "environment variable {} sets no config field", self.var)?;
        match &self.suggestion {
            Some(suggestion) => write!(f, "; did you mean {suggestion}?"),
            None => f.write_str("; remove it or check the prefix and field name"),
        }
    }
}

/// Warnings for every variable in `env` that is not in `known`.
pub(crate) fn warnings(
    env: &EnvSnapshot,
    known: &[String],
    known_stems: &[String],
) -> Vec<EnvWarning> {
    env.names()
        .filter(|name| !known.iter().any(|known| known == name))
        .filter(|name| {
            !known_stems.iter().any(|stem| {
                name.strip_prefix(stem.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
            })
        })
        .map(|name| EnvWarning {
            var: name.to_owned(),
            suggestion: closest(name, known.iter().map(String::as_str)).map(str::to_owned),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_words_and_digits_in_any_case() {
        for raw in ["1", "true", "YES", "On", " tRuE "] {
            assert_eq!(
                coerce(raw, &Kind::Bool).unwrap().to_bool(),
                Some(true),
                "{raw}"
            );
        }
        for raw in ["0", "false", "No", "OFF"] {
            assert_eq!(
                coerce(raw, &Kind::Bool).unwrap().to_bool(),
                Some(false),
                "{raw}"
            );
        }
        assert_eq!(
            coerce("maybe", &Kind::Bool).unwrap().as_str(),
            Some("maybe")
        );
    }

    #[test]
    fn numbers_parse_and_bad_numbers_stay_strings() {
        assert_eq!(
            coerce("8080", &Kind::Int("u16")).unwrap().to_i128(),
            Some(8080)
        );
        assert_eq!(coerce("-3", &Kind::Int("i8")).unwrap().to_i128(), Some(-3));
        assert_eq!(
            coerce("0.5", &Kind::Float("f64")).unwrap().to_f64(),
            Some(0.5)
        );
        assert_eq!(
            coerce("abc", &Kind::Int("u16")).unwrap().as_str(),
            Some("abc")
        );
    }

    #[test]
    fn lists_split_on_commas_or_parse_as_toml() {
        let list = Kind::List(Box::new(Kind::Int("u8")));
        let split = coerce("1, 2,3", &list).unwrap();
        let toml = coerce("[1, 2, 3]", &list).unwrap();
        assert_eq!(split.deserialize::<Vec<u8>>().unwrap(), [1, 2, 3]);
        assert_eq!(toml.deserialize::<Vec<u8>>().unwrap(), [1, 2, 3]);
        let empty = coerce("", &Kind::List(Box::new(Kind::Str))).unwrap();
        assert_eq!(
            empty.deserialize::<Vec<String>>().unwrap(),
            Vec::<String>::new()
        );
        assert!(
            coerce("[1, 2", &list)
                .unwrap_err()
                .contains("not valid TOML")
        );
    }

    #[test]
    fn maps_parse_as_inline_tables() {
        let map = coerce("{ a = 1 }", &Kind::Map(Box::new(Kind::Int("u8")))).unwrap();
        assert_eq!(map.find("a").and_then(|v| v.to_i128()), Some(1));
    }
}
