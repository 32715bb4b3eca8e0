//! `--print-config`: the effective config as TOML, secrets shown as `***`.

use figment::Figment;
use figment::value::{Dict, Value};

use super::error::ConfigError;
use super::secret::REDACTED;

/// The whole of `figment` as TOML, with the values at `secrets` (key paths) redacted.
pub(super) fn to_toml<'a>(
    figment: &Figment,
    secrets: impl Iterator<Item = &'a [String]>,
) -> Result<String, ConfigError> {
    let mut value = match figment.find_value("") {
        Ok(value) => value,
        Err(error) if error.missing() => Value::from(Dict::new()),
        Err(error) => return Err(ConfigError::values(error, &[], &|_| None, &|_| false)),
    };
    strip_empty(&mut value);
    for path in secrets {
        redact(&mut value, path);
    }
    let table =
        toml::Value::try_from(&value).map_err(|error| ConfigError::dump(error.to_string()))?;
    toml::to_string_pretty(&table).map_err(|error| ConfigError::dump(error.to_string()))
}

/// TOML has no null: drop what serialised as `None`.
fn strip_empty(value: &mut Value) {
    match value {
        Value::Dict(_, dict) => {
            dict.retain(|_, value| !matches!(value, Value::Empty(..)));
            dict.values_mut().for_each(strip_empty);
        }
        Value::Array(_, items) => {
            items.retain(|value| !matches!(value, Value::Empty(..)));
            items.iter_mut().for_each(strip_empty);
        }
        _ => {}
    }
}

fn redact(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for key in parents {
        let Value::Dict(_, dict) = current else {
            return;
        };
        let Some(next) = dict.get_mut(key) else {
            return;
        };
        current = next;
    }
    if let Value::Dict(_, dict) = current {
        if let Some(secret) = dict.get_mut(last) {
            *secret = Value::from(REDACTED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layer::nest;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|key| (*key).to_owned()).collect()
    }

    #[test]
    fn redact_replaces_only_the_value_at_the_path() {
        let mut value = Value::from(nest(&path(&["db", "password"]), Value::from("hunter2")));
        redact(&mut value, &path(&["db", "password"]));
        redact(&mut value, &path(&["db", "absent", "deeper"]));
        assert_eq!(
            value.find_ref("db.password").and_then(Value::as_str),
            Some(REDACTED)
        );
        assert!(value.find_ref("db.absent").is_none());
    }

    #[test]
    fn strip_empty_drops_none_values_at_any_depth() {
        let mut inner = Dict::new();
        inner.insert("gone".to_owned(), Value::serialize(None::<u8>).unwrap());
        inner.insert("kept".to_owned(), Value::from(1));
        let mut value = Value::from(nest(&path(&["a"]), Value::from(inner)));
        strip_empty(&mut value);
        assert!(value.find_ref("a.gone").is_none());
        assert!(value.find_ref("a.kept").is_some());
    }
}
