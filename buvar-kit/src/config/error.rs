//! Config errors: what was wrong, at which key, and which layer it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::error::Kind as FigmentKind;

use super::origin::{line_column, origin};

/// Why a config could not be built or a section could not be loaded.
///
/// The message names the key, what was expected, what was found and where the value came
/// from (file and line, TOML text, in-code defaults, or environment variable), e.g.
/// `http.port: expected u16, found string "abc", from environment variable APP_HTTP_PORT`.
/// Use the `is_*` predicates to react to a kind of failure.
///
/// ```
/// use buvar_kit::config::ConfigSource;
///
/// let error = ConfigSource::new().file("/nonexistent/app.toml").unwrap_err();
/// assert!(error.is_missing_file());
/// assert!(error.to_string().contains("/nonexistent/app.toml"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConfigError(Box<ErrorKind>);

impl ConfigError {
    /// A file that was asked for does not exist.
    pub fn is_missing_file(&self) -> bool {
        matches!(*self.0, ErrorKind::MissingFile { .. })
    }

    /// A file exists but could not be read: unreadable, not a regular file, or too large.
    pub fn is_io(&self) -> bool {
        matches!(
            *self.0,
            ErrorKind::ReadFile { .. } | ErrorKind::NotAFile { .. } | ErrorKind::TooLarge { .. }
        )
    }

    /// A file or text layer is not valid TOML.
    pub fn is_parse(&self) -> bool {
        matches!(*self.0, ErrorKind::Parse { .. })
    }

    /// A value has the wrong type or an unacceptable value.
    pub fn is_invalid_value(&self) -> bool {
        match &*self.0 {
            ErrorKind::Several(errors) => errors.iter().any(ConfigError::is_invalid_value),
            ErrorKind::Values(problems) => {
                problems.iter().any(|problem| problem.what == What::Invalid)
            }
            ErrorKind::EnvValue { .. }
            | ErrorKind::OutOfRange(_)
            | ErrorKind::NotATable { .. }
            | ErrorKind::Plugins { .. } => true,
            _ => false,
        }
    }

    /// A number is outside the range its section declares (see [`Limit`](super::Limit)).
    pub fn is_out_of_range(&self) -> bool {
        match &*self.0 {
            ErrorKind::OutOfRange(_) => true,
            ErrorKind::Several(errors) => errors.iter().any(ConfigError::is_out_of_range),
            _ => false,
        }
    }

    /// A required field has no value in any layer.
    pub fn is_missing_field(&self) -> bool {
        match &*self.0 {
            ErrorKind::Several(errors) => errors.iter().any(ConfigError::is_missing_field),
            ErrorKind::Values(problems) => {
                problems.iter().any(|problem| problem.what == What::Missing)
            }
            _ => false,
        }
    }

    /// A key matches no field of its section (only an error when asked for, see
    /// [`ConfigSource::deny_unknown_keys`](super::ConfigSource::deny_unknown_keys), or with
    /// `#[serde(deny_unknown_fields)]`).
    pub fn is_unknown_key(&self) -> bool {
        match &*self.0 {
            ErrorKind::Several(errors) => errors.iter().any(ConfigError::is_unknown_key),
            ErrorKind::Values(problems) => {
                problems.iter().any(|problem| problem.what == What::Unknown)
            }
            ErrorKind::UnknownKeys(_) => true,
            _ => false,
        }
    }

    /// The section type could not be reflected over, so environment variables that target it
    /// cannot be mapped to its fields.
    pub fn is_reflection(&self) -> bool {
        matches!(*self.0, ErrorKind::Reflection { .. })
    }

    pub(crate) fn missing_file(path: &Path, via: Option<&str>, source: std::io::Error) -> Self {
        let via = named_by(via);
        let kind = if source.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::MissingFile {
                path: path.to_owned(),
                via,
                source,
            }
        } else {
            ErrorKind::ReadFile {
                path: path.to_owned(),
                via,
                source,
            }
        };
        Self(Box::new(kind))
    }

    pub(crate) fn not_a_file(path: &Path, via: Option<&str>, kind: &std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;

        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a pipe"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        Self(Box::new(ErrorKind::NotAFile {
            path: path.to_owned(),
            via: named_by(via),
            kind,
        }))
    }

    pub(crate) fn too_large(path: &Path, via: Option<&str>, limit: u64) -> Self {
        Self(Box::new(ErrorKind::TooLarge {
            path: path.to_owned(),
            via: named_by(via),
            limit_mib: limit / (1024 * 1024),
        }))
    }

    pub(crate) fn parse(origin: String, text: &str, error: &toml::de::Error) -> Self {
        let at = error
            .span()
            .map(|span| {
                let (line, column) = line_column(text, span.start);
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        let message = error.message().trim_end().to_owned();
        Self(Box::new(ErrorKind::Parse {
            origin,
            at,
            message,
        }))
    }

    pub(crate) fn defaults(type_name: &'static str, message: String) -> Self {
        Self(Box::new(ErrorKind::Defaults { type_name, message }))
    }

    pub(crate) fn env_value(var: String, key: String, expected: String, message: String) -> Self {
        Self(Box::new(ErrorKind::EnvValue {
            var,
            key,
            expected,
            message,
        }))
    }

    pub(crate) fn env_not_unicode(var: String) -> Self {
        Self(Box::new(ErrorKind::EnvNotUnicode { var }))
    }

    pub(crate) fn not_a_table(section: String, found: String, origin: String) -> Self {
        Self(Box::new(ErrorKind::NotATable {
            section,
            found,
            origin,
        }))
    }

    /// `problems` are lines such as "`http.forks` must be between 0 and 1024, found 5000, from
    /// TOML text".
    pub(crate) fn out_of_range(problems: Vec<String>) -> Self {
        Self(Box::new(ErrorKind::OutOfRange(problems)))
    }

    /// `Ok` without errors, the error itself for one, all of them (one per line) for more.
    pub(crate) fn all(mut errors: Vec<ConfigError>) -> Result<(), Self> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Self(Box::new(ErrorKind::Several(errors)))),
        }
    }

    pub(crate) fn plugins(found: String, origin: String) -> Self {
        Self(Box::new(ErrorKind::Plugins { found, origin }))
    }

    pub(crate) fn reflection(type_name: &'static str, vars: Vec<String>, message: String) -> Self {
        Self(Box::new(ErrorKind::Reflection {
            type_name,
            vars: vars.join(", "),
            message,
        }))
    }

    pub(crate) fn unknown_keys(keys: Vec<super::UnknownKey>) -> Self {
        Self(Box::new(ErrorKind::UnknownKeys(keys)))
    }

    pub(crate) fn dump(message: String) -> Self {
        Self(Box::new(ErrorKind::Dump { message }))
    }

    /// Converts figment's extraction errors; `section` is prepended to each key path because
    /// sections are extracted from a focused figment.
    pub(crate) fn values(
        error: figment::Error,
        section: &[String],
        env_hint: &dyn Fn(&str) -> Option<String>,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Self {
        let problems = error
            .into_iter()
            .map(|error| Problem::new(error, section, env_hint, is_secret))
            .collect();
        Self(Box::new(ErrorKind::Values(problems)))
    }
}

fn named_by(var: Option<&str>) -> String {
    var.map(|var| format!(" (named by environment variable {var})"))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ErrorKind {
    #[error("config file {} not found{via}: {source}; create it or point to an existing file", path.display())]
    MissingFile {
        path: PathBuf,
        via: String,
        source: std::io::Error,
    },
    #[error("cannot read config file {}{via}: {source}; check its permissions", path.display())]
    ReadFile {
        path: PathBuf,
        via: String,
        source: std::io::Error,
    },
    #[error("config file {}{via} is {kind}, not a regular file; point to a TOML file", path.display())]
    NotAFile {
        path: PathBuf,
        via: String,
        kind: &'static str,
    },
    #[error("config file {}{via} is larger than {limit_mib} MiB; a config file is never that large, check the path", path.display())]
    TooLarge {
        path: PathBuf,
        via: String,
        limit_mib: u64,
    },
    #[error("{origin} is not valid TOML{at}: {message}")]
    Parse {
        origin: String,
        at: String,
        message: String,
    },
    #[error("defaults of {type_name} cannot be used as a config layer: {message}")]
    Defaults {
        type_name: &'static str,
        message: String,
    },
    #[error("{key}: expected {expected}, {message}, from environment variable {var}")]
    EnvValue {
        var: String,
        key: String,
        expected: String,
        message: String,
    },
    #[error("environment variable {var} is not valid UTF-8; set it to a UTF-8 value")]
    EnvNotUnicode { var: String },
    #[error("{section}: expected a table (section [{section}]), found {found}, from {origin}")]
    NotATable {
        section: String,
        found: String,
        origin: String,
    },
    #[error("plugins: expected a list of plugin names (strings), found {found}, from {origin}")]
    Plugins { found: String, origin: String },
    #[error(
        "cannot map environment variables {vars} to the fields of {type_name}: its serde \
         implementation cannot be reflected over ({message}); use plain derived types for \
         config fields or set these values in a config file"
    )]
    Reflection {
        type_name: &'static str,
        vars: String,
        message: String,
    },
    #[error("{}", Lines(.0))]
    UnknownKeys(Vec<super::UnknownKey>),
    #[error("{}", Lines(.0))]
    OutOfRange(Vec<String>),
    #[error("{}", Lines(.0))]
    Several(Vec<ConfigError>),
    #[error("{}", Lines(.0))]
    Values(Vec<Problem>),
    #[error("cannot print the effective config as TOML: {message}")]
    Dump { message: String },
}

/// Displays items one per line.
struct Lines<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Lines<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum What {
    Invalid,
    Missing,
    Unknown,
    Other,
}

/// One problem figment found while extracting a section.
#[derive(Debug)]
pub(crate) struct Problem {
    what: What,
    message: String,
}

impl Problem {
    fn new(
        error: figment::Error,
        section: &[String],
        env_hint: &dyn Fn(&str) -> Option<String>,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Self {
        let mut path: Vec<String> = section.to_vec();
        path.extend(error.path.iter().cloned());
        // A malformed secret is still a secret: name the key and the source, never the value.
        let secret = is_secret(&key(&path));
        let shown = |found: &dyn fmt::Display| {
            if secret {
                "a value that is not shown (the key holds a secret)".to_owned()
            } else {
                found.to_string()
            }
        };
        let origin = error
            .metadata
            .as_ref()
            .map(|metadata| origin(metadata, &path));
        let from = origin
            .map(|origin| format!(", from {origin}"))
            .unwrap_or_default();
        let (what, message) = match &error.kind {
            FigmentKind::InvalidType(found, expected)
            | FigmentKind::InvalidValue(found, expected) => (
                What::Invalid,
                format!(
                    "{}: expected {expected}, found {}{from}",
                    key(&path),
                    shown(found)
                ),
            ),
            FigmentKind::InvalidLength(length, expected) => (
                What::Invalid,
                format!(
                    "{}: expected {expected}, found {length} items{from}",
                    key(&path)
                ),
            ),
            FigmentKind::UnknownVariant(found, expected) => (
                What::Invalid,
                format!(
                    "{}: expected {}, found {}{from}",
                    key(&path),
                    figment::error::OneOf(expected),
                    shown(&format_args!("{found:?}"))
                ),
            ),
            FigmentKind::MissingField(field) => {
                path.push(field.to_string());
                let key = key(&path);
                let env = env_hint(&key)
                    .map(|var| format!(" or with {var}"))
                    .unwrap_or_default();
                (
                    What::Missing,
                    format!(
                        "{key}: missing, and the section has no default for it; set it in a config layer{env}"
                    ),
                )
            }
            FigmentKind::UnknownField(field, expected) => {
                // figment's path may already end with the field.
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                (
                    What::Unknown,
                    format!(
                        "{}: unknown key{from}; expected {}",
                        key(&path),
                        figment::error::OneOf(expected)
                    ),
                )
            }
            other => (What::Other, format!("{}: {other}{from}", key(&path))),
        };
        Self { what, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn key(path: &[String]) -> String {
    if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.join(".")
    }
}
