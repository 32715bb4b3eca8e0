//! Unix file modes in config, e.g. of a unix socket file: the octal string `"0660"` (also
//! `"660"` or `"0o660"`), or a TOML octal integer (`0o660`).
//!
//! A decimal number such as `660` is almost always an octal mode written without its prefix:
//! read as decimal it would be mode `0o1224`. Numbers above `0o777` are therefore refused with
//! a hint to quote the mode, instead of being applied.
//!
//! ```
//! use buvar_kit::config::ConfigSource;
//!
//! #[derive(Debug, serde::Deserialize, serde::Serialize)]
//! struct Socket {
//!     #[serde(default, with = "buvar_kit::config::file_mode")]
//!     mode: Option<u32>,
//! }
//! buvar_kit::section!(Socket, "socket");
//!
//! let read = |toml: &str| ConfigSource::new().toml(toml)?.load::<Socket>();
//! assert_eq!(read("[socket]\nmode = \"0660\"")?.mode, Some(0o660));
//! assert_eq!(read("[socket]\nmode = 0o600")?.mode, Some(0o600));
//! assert_eq!(read("[socket]")?.mode, None);
//! let error = read("[socket]\nmode = 660").unwrap_err();
//! assert!(error.to_string().contains("\"0660\""), "{error}");
//! # Ok::<(), buvar_kit::config::ConfigError>(())
//! ```

use std::fmt;

use serde::Serializer;
use serde::de::{self, Deserializer, Unexpected, Visitor};

/// The newtype name the field is traced under, so the schema reads it from the environment as
/// text (an octal string) rather than as a decimal number.
pub(crate) const NAME: &str = "buvar_kit::config::FileMode";

const EXPECTED: &str = "an octal file mode of at most 0777 written as a string, e.g. \"0660\"";

/// The highest mode accepted: permission bits only.
const MAX: u32 = 0o777;

/// Serialises a mode as the octal string a user would write (`"0660"`).
pub fn serialize<S: Serializer>(value: &Option<u32>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(mode) => serializer.serialize_some(&format!("{mode:04o}")),
        None => serializer.serialize_none(),
    }
}

/// Deserialises an optional mode from an octal string or an integer of at most `0o777`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    deserializer.deserialize_option(Optional)
}

/// Reads an octal mode such as `0660`, `660` or `0o660`.
pub(crate) fn parse(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0o").unwrap_or(trimmed);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= MAX && !digits.is_empty() => Ok(mode),
        _ => Err(format!("found {text:?}; expected {EXPECTED}")),
    }
}

struct Optional;

impl<'de> Visitor<'de> for Optional {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Option<u32>, D::Error> {
        inner.deserialize_newtype_struct(NAME, Mode).map(Some)
    }
}

struct Mode;

impl<'de> Visitor<'de> for Mode {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<u32, D::Error> {
        // `str`, not `u32`: a lossy loader would turn the text "0660" into the number 660.
        inner.deserialize_str(Mode)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u32, E> {
        parse(text).map_err(|_| E::invalid_value(Unexpected::Str(text), &EXPECTED))
    }

    fn visit_u64<E: de::Error>(self, mode: u64) -> Result<u32, E> {
        u32::try_from(mode)
            .ok()
            .filter(|mode| *mode <= MAX)
            .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(mode), &EXPECTED))
    }

    fn visit_i64<E: de::Error>(self, mode: i64) -> Result<u32, E> {
        u64::try_from(mode)
            .map_err(|_| E::invalid_value(Unexpected::Signed(mode), &EXPECTED))
            .and_then(|mode| self.visit_u64(mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_text_in_every_spelling_reads_as_a_mode() {
        assert_eq!(parse("0660"), Ok(0o660));
        assert_eq!(parse("660"), Ok(0o660));
        assert_eq!(parse("0o600"), Ok(0o600));
        assert_eq!(parse(" 0777 "), Ok(0o777));
    }

    #[test]
    fn text_that_is_no_permission_mode_is_refused() {
        for text in ["", "0o", "0690", "rw-rw----", "1777", "-1", "99999999999"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
