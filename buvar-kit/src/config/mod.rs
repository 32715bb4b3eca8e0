//! Typed configuration: layers merged by figment, read as serde structs bound to sections,
//! overridden by prefixed environment variables that follow the structs' fields.
//!
//! ```
//! use buvar_kit::config::{ConfigSource, Secret};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, Deserialize, Serialize)]
//! struct Db {
//!     url: String,
//!     pool_size: u32,
//!     password: Secret<String>,
//! }
//! // `default` adds `Db::default()` under every layer and shows it in the env help.
//! buvar_kit::section!(Db, "db", default);
//!
//! let source = ConfigSource::new()
//!     .env_prefix("DOCTEST_MOD")
//!     .toml("[db]\nurl = \"postgres://localhost/app\"\npassword = \"hunter2\"")?;
//! let db = source.section::<Db>()?;
//! assert_eq!(db.pool_size, 0);
//! assert_eq!(db.password.expose(), "hunter2");
//! assert!(source.dump()?.contains("password = \"***\""));
//! # Ok::<(), buvar_kit::config::ConfigError>(())
//! ```
//!
//! # Environment variables
//!
//! With [`ConfigSource::env_prefix`]`("APP")`, every field of every section can be set from
//! the environment: the prefix, the section path and the field path joined with `_` and
//! upper-cased. `APP_DB_POOL_SIZE` sets `db.pool_size`, `APP_LOG_LEVEL` sets `log.level`
//! (or the root field `log_level` of a root section), `APP_BAR_FOO_BAZ` sets the nested
//! `bar.foo.baz`. The names are derived from the struct's fields (by reflecting over its serde
//! implementation), so underscores inside names and `#[serde(rename)]` work. Variables
//! override every layer. Values are coerced to the field's type:
//!
//! - booleans accept `1/true/yes/on` and `0/false/no/off` in any case;
//! - numbers are parsed; a value that does not parse fails with the key, the expected type
//!   and the variable's name;
//! - lists accept `a,b,c` (each item coerced to the item type) or TOML array syntax
//!   `["a", "b"]`; an empty value is an empty list;
//! - tables and structs set as a whole accept TOML inline-table syntax `{ a = 1 }`;
//! - durations (fields read with [`duration`]) take `30s`, `500ms`, `1h 30m` or seconds;
//! - enums take the variant name as serde spells it;
//! - an empty value for an `Option` field that is not a string leaves the field unset.
//!
//! `<PREFIX>_PLUGINS=a,b` overrides the root `plugins` list. Variables with the prefix that
//! set nothing are listed by [`ConfigSource::env_warnings`], with the closest real name;
//! [`env_help`] lists every variable a section reads.
//!
//! Section types must be reflectable: plain derived structs, enums, options, lists and maps
//! are; types whose `Deserialize` needs `deserialize_any` (untagged enums, `serde_json::Value`,
//! `#[serde(flatten)]`) are not. Such a section still loads from files; only a variable that
//! targets it is an error, so it is never silently ignored.

mod choices;
mod dump;
pub mod duration;
mod env;
mod error;
pub mod file_mode;
mod help;
mod layer;
mod limit;
mod origin;
mod schema;
mod secret;
mod source;
mod typo;
mod unknown;

pub use env::EnvWarning;
pub use error::ConfigError;
pub use help::{EnvHelp, EnvVar, env_help};
pub use layer::serialize_defaults;
pub use limit::Limit;
pub use secret::Secret;
pub use source::ConfigSource;
pub use unknown::UnknownKey;

/// A serde struct bound to a section of the config.
///
/// Implement it with [`section!`](crate::section): `buvar_kit::section!(HttpConfig, "http");`
/// binds `HttpConfig` to `[http]`, `""` binds a struct to the root, and a dotted name binds it
/// to a nested table (`"db.replica"` is `[db.replica]`).
pub trait Section: serde::de::DeserializeOwned + Send + Sync + 'static {
    /// Dotted path of the section, "" for the root.
    const SECTION: &'static str;

    /// In-code defaults of the section, used under every layer and shown by [`env_help`].
    /// `section!(T, "name", default)` fills this from `T::default()`.
    fn defaults() -> Result<Option<figment::value::Dict>, ConfigError> {
        Ok(None)
    }

    /// The ranges the section's numbers must fall in, checked at load time; see [`Limit`].
    fn limits() -> Vec<Limit> {
        Vec::new()
    }
}

/// Binds a serde struct to a config section in one line.
///
/// `section!(Type, "name")` binds `Type` to `[name]`; `section!(Type, "name", default)` also
/// uses `Type::default()` (which needs `Default` and `Serialize`) as in-code defaults.
///
/// ```
/// #[derive(serde::Deserialize, serde::Serialize, Default)]
/// struct Http { port: u16 }
/// buvar_kit::section!(Http, "http", default);
///
/// use buvar_kit::config::Section;
/// assert_eq!(Http::SECTION, "http");
/// ```
#[macro_export]
macro_rules! section {
    ($ty:ty, $name:literal) => {
        impl $crate::config::Section for $ty {
            const SECTION: &'static str = $name;
        }
    };
    ($ty:ty, $name:literal, default) => {
        impl $crate::config::Section for $ty {
            const SECTION: &'static str = $name;

            fn defaults() -> ::std::result::Result<
                ::std::option::Option<$crate::config::figment::value::Dict>,
                $crate::config::ConfigError,
            > {
                $crate::config::serialize_defaults(&<$ty as ::std::default::Default>::default())
                    .map(::std::option::Option::Some)
            }
        }
    };
}

/// The config engine, re-exported so providers passed to [`ConfigSource::merge`] and the
/// `section!` macro use the same version as the kit.
pub use figment;
