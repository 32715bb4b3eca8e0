//! One config layer: what a file, a TOML text, in-code defaults or an environment variable
//! adds, with the metadata that names where it came from.

use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::Serialize;

use super::error::ConfigError;
use super::secret::exposing;

/// One parsed config layer with the metadata that names where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(super) metadata: Metadata,
    pub(super) data: Dict,
}

impl Layer {
    /// A layer that sets `value` at `path`, from environment variable `var`.
    pub(crate) fn env(var: &str, path: &[String], value: Value) -> Self {
        Self {
            metadata: Metadata::named(format!("environment variable {var}")),
            data: nest(path, value),
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// The most a config file may hold: more is a mistake (a log, a device), not a config.
pub(crate) const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Reads a config file: a regular file (never a device or a pipe, which could be read forever
/// or block) of at most [`MAX_FILE_SIZE`] bytes.
pub(super) fn read_config_file(path: &Path, var: Option<&str>) -> Result<String, ConfigError> {
    use std::io::Read;

    let metadata =
        std::fs::metadata(path).map_err(|error| ConfigError::missing_file(path, var, error))?;
    if !metadata.is_file() {
        return Err(ConfigError::not_a_file(path, var, &metadata.file_type()));
    }
    let file =
        std::fs::File::open(path).map_err(|error| ConfigError::missing_file(path, var, error))?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file at the limit from a larger one.
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ConfigError::missing_file(path, var, error))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::too_large(path, var, MAX_FILE_SIZE));
    }
    String::from_utf8(bytes).map_err(|error| {
        ConfigError::missing_file(
            path,
            var,
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.utf8_error()),
        )
    })
}

/// `["a", "b"]`, `v` -> `{ a = { b = v } }`; an empty path keeps a table as it is.
pub(crate) fn nest(path: &[String], value: Value) -> Dict {
    let mut value = value;
    for key in path.iter().rev() {
        let mut dict = Dict::new();
        dict.insert(key.clone(), value);
        value = Value::from(dict);
    }
    value.into_dict().unwrap_or_default()
}

/// Serialises in-code defaults into a config table; [`Secret`](super::Secret) values keep
/// their real value here. Used by [`ConfigSource::defaults`](super::ConfigSource::defaults)
/// and by `section!(T, "name", default)`.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Http { port: u16 }
///
/// let table = buvar_kit::config::serialize_defaults(&Http { port: 8080 }).unwrap();
/// assert_eq!(table["port"].to_u128(), Some(8080));
/// ```
pub fn serialize_defaults<T: Serialize>(value: &T) -> Result<Dict, ConfigError> {
    let type_name = std::any::type_name::<T>();
    let value = exposing(|| Value::serialize(value).map_err(|error| error.to_string()))
        .map_err(|message| ConfigError::defaults(type_name, message))?;
    match value {
        Value::Dict(_, dict) => Ok(dict),
        other => Err(ConfigError::defaults(
            type_name,
            format!(
                "it serialises to {}, not to a table of keys",
                other.to_actual()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nest_wraps_a_value_in_tables_along_the_path() {
        let dict = nest(&["a".to_owned(), "b".to_owned()], Value::from(1));
        assert_eq!(
            Value::from(dict).find_ref("a.b").and_then(Value::to_i128),
            Some(1)
        );
    }
}
