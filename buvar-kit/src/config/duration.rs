//! Durations in config: `"30s"`, `"500ms"`, `"1h 30m"` or a plain number of seconds.
//!
//! Use it on a `std::time::Duration` field with `#[serde(with = "buvar_kit::config::duration")]`:
//!
//! ```
//! use std::time::Duration;
//! use buvar_kit::config::ConfigSource;
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Client {
//!     #[serde(with = "buvar_kit::config::duration")]
//!     timeout: Duration,
//!     #[serde(with = "buvar_kit::config::duration")]
//!     backoff: Duration,
//!     #[serde(with = "buvar_kit::config::duration")]
//!     idle: Duration,
//! }
//! buvar_kit::section!(Client, "client");
//!
//! let source = ConfigSource::new()
//!     .toml("[client]\ntimeout = \"500ms\"\nbackoff = 2.5\nidle = \"1m 30s\"")?;
//! let client = source.section::<Client>()?;
//! assert_eq!(client.timeout, Duration::from_millis(500));
//! assert_eq!(client.backoff, Duration::from_millis(2500));
//! assert_eq!(client.idle, Duration::from_secs(90));
//! # Ok::<(), buvar_kit::config::ConfigError>(())
//! ```
//!
//! Such fields are shown as `duration` in the environment help, and their defaults and the
//! effective config print as durations (`"30s"`).

use std::fmt;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// The newtype name the field is traced under, so the schema knows a duration when it sees one.
pub(crate) const NAME: &str = "buvar_kit::config::Duration";

/// What a duration may be written as, for messages.
pub(crate) const EXPECTED: &str =
    "a duration such as \"30s\", \"500ms\", \"1h 30m\" or a number of seconds";

/// Serialises a duration as text (`"30s"`, `"1m 30s"`), as a user would write it.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_newtype_struct(NAME, &format(*value))
}

/// Deserialises a duration from text (`"30s"`, `"500ms"`, `"2.5"`) or a number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_newtype_struct(NAME, Outer)
}

/// A duration as a user writes it: whole units in humantime's notation.
pub(crate) fn format(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// Reads text as a duration: a number of seconds, or humantime's notation.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return from_seconds(seconds);
    }
    humantime::parse_duration(text).map_err(|error| format!("{text:?} is not {EXPECTED} ({error})"))
}

/// A number of seconds as a duration; negative, NaN and overflowing numbers are errors.
pub(crate) fn from_seconds(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{seconds} seconds is not {EXPECTED} (it must be finite and >= 0)"))
}

struct Outer;

impl<'de> Visitor<'de> for Outer {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<Duration, D::Error> {
        // `f64` rather than `any`: the schema reflection traces it, and self-describing formats
        // hand over whatever they hold anyway.
        inner.deserialize_f64(Inner)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        Inner.visit_str(text)
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        Inner.visit_f64(seconds)
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Inner.visit_u64(seconds)
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        Inner.visit_i64(seconds)
    }
}

struct Inner;

impl Visitor<'_> for Inner {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        from_seconds(seconds).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| {
                E::custom(format!(
                    "{seconds} seconds is not {EXPECTED} (it must be >= 0)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_numbers_of_seconds_both_read_as_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn impossible_durations_are_errors_not_panics() {
        for text in ["inf", "-1", "NaN", "1e20", "ten", "", "5 parsecs"] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert!(from_seconds(f64::INFINITY).is_err());
    }

    #[test]
    fn durations_print_as_written() {
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_secs(86_400)), "1day");
    }
}
