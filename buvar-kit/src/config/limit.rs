//! Validated ranges: every number a section reads is checked at load time, before it reaches
//! code that would panic or misbehave on it (an `Instant` overflow, a semaphore's limit).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use figment::value::{Num, Value};

use super::duration;

/// The range one number (or the one text) of a section must fall in, declared by [`Section::limits`](super::Section::limits).
///
/// The check runs on the value as written, before it is deserialised, so the error names the
/// key, the range, the value and where it came from:
/// `` `http.graceful_timeout` must be between 0s and 1day, found inf, from environment variable
/// APP_HTTP_GRACEFUL_TIMEOUT ``. `--env-help` shows the range next to the variable.
///
/// ```
/// use std::time::Duration;
/// use buvar_kit::config::{ConfigError, ConfigSource, Limit, Section};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Pool {
///     size: u32,
///     #[serde(with = "buvar_kit::config::duration")]
///     idle: Duration,
/// }
///
/// impl Section for Pool {
///     const SECTION: &'static str = "pool";
///
///     fn limits() -> Vec<Limit> {
///         vec![
///             Limit::count("size", 1..=100),
///             Limit::duration("idle", Duration::from_secs(1)..=Duration::from_secs(3600)),
///         ]
///     }
/// }
///
/// let source = ConfigSource::new().toml("[pool]\nsize = 1000\nidle = \"1h\"")?;
/// let error = source.section::<Pool>().unwrap_err();
/// assert!(error.is_out_of_range());
/// assert_eq!(
///     error.to_string(),
///     "`pool.size` must be between 1 and 100, found 1000, from TOML text"
/// );
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    key: &'static str,
    range: Range,
}

#[derive(Clone, Debug, PartialEq)]
enum Range {
    Count(RangeInclusive<u64>),
    Duration {
        range: RangeInclusive<Duration>,
        /// Whether 0 is also accepted (it usually turns the feature off).
        or_zero: bool,
    },
    /// Text that must not be empty (or only spaces), described for the error.
    NonEmpty(&'static str),
}

/// A number as written in a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Written {
    Int(i128),
    Float(f64),
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Int(value) => write!(f, "{value}"),
            Written::Float(value) => write!(f, "{value}"),
        }
    }
}

fn written(num: Num) -> Written {
    if let Some(value) = num.to_f64() {
        Written::Float(value)
    } else if let Some(value) = num.to_i128() {
        Written::Int(value)
    } else {
        Written::Int(num.to_u128().map_or(i128::MAX, |value| {
            i128::try_from(value).unwrap_or(i128::MAX)
        }))
    }
}

impl Limit {
    /// A whole number (count, size, id) of field `key` (relative to the section, dotted for
    /// nested fields) within `range`.
    pub fn count(key: &'static str, range: RangeInclusive<u64>) -> Self {
        Self {
            key,
            range: Range::Count(range),
        }
    }

    /// A duration (a field read with [`config::duration`](super::duration)) within `range`.
    pub fn duration(key: &'static str, range: RangeInclusive<Duration>) -> Self {
        Self {
            key,
            range: Range::Duration {
                range,
                or_zero: false,
            },
        }
    }

    /// Text of field `key` that must not be empty, where an empty value would silently mean
    /// something else; `what` says what to write instead (`"a host name or address"`).
    pub fn non_empty(key: &'static str, what: &'static str) -> Self {
        Self {
            key,
            range: Range::NonEmpty(what),
        }
    }

    /// Also accepts 0 for a duration, for settings where 0 turns a check off.
    pub fn or_zero(mut self) -> Self {
        if let Range::Duration { or_zero, .. } = &mut self.range {
            *or_zero = true;
        }
        self
    }

    /// The field's key relative to its section.
    pub fn key(&self) -> &str {
        self.key
    }

    /// Whether `value` (as written in a layer) is acceptable; `Err` holds the value as shown
    /// in the error. Values of the wrong type pass here: deserialising reports them.
    pub(crate) fn check(&self, value: &Value) -> Result<(), String> {
        match (&self.range, value) {
            (Range::Count(range), Value::Num(_, num)) => Self::check_count(range, written(*num)),
            // Loading reads numbers written as strings too (`"8"`), so they are checked alike.
            (Range::Count(range), Value::String(_, text)) => match text.trim().parse::<i128>() {
                Ok(found) => Self::check_count(range, Written::Int(found)),
                Err(_) => Ok(()),
            },
            (Range::NonEmpty(_), Value::String(_, text)) if text.trim().is_empty() => {
                Err(format!("{text:?}"))
            }
            (Range::Duration { .. }, Value::Num(_, num)) => self.check_seconds(written(*num)),
            (Range::Duration { .. }, Value::String(_, text)) => {
                if let Ok(seconds) = text.trim().parse::<f64>() {
                    return self.check_seconds(Written::Float(seconds));
                }
                match duration::parse(text) {
                    Ok(found) if !self.accepts(found) => Err(format!("{text:?}")),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn check_count(range: &RangeInclusive<u64>, found: Written) -> Result<(), String> {
        match found {
            Written::Int(found)
                if found < i128::from(*range.start()) || found > i128::from(*range.end()) =>
            {
                Err(found.to_string())
            }
            _ => Ok(()),
        }
    }

    fn check_seconds(&self, found: Written) -> Result<(), String> {
        let seconds = match found {
            Written::Int(value) => u64::try_from(value).ok().map(Duration::from_secs),
            Written::Float(value) => duration::from_seconds(value).ok(),
        };
        match seconds {
            Some(seconds) if self.accepts(seconds) => Ok(()),
            _ => Err(found.to_string()),
        }
    }

    fn accepts(&self, found: Duration) -> bool {
        match &self.range {
            Range::Duration { range, or_zero } => {
                range.contains(&found) || (*or_zero && found.is_zero())
            }
            Range::Count(_) | Range::NonEmpty(_) => true,
        }
    }
}

impl fmt::Display for Limit {
    /// The range in words: `between 1 and 100`, `0 (off) or between 100ms and 1day`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.range {
            Range::Count(range) => write!(f, "between {} and {}", range.start(), range.end()),
            Range::NonEmpty(what) => f.write_str(what),
            Range::Duration { range, or_zero } => {
                if *or_zero {
                    f.write_str("0 (off) or ")?;
                }
                write!(
                    f,
                    "between {} and {}",
                    duration::format(*range.start()),
                    duration::format(*range.end())
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn counts_outside_the_range_show_the_number_written() {
        let limit = Limit::count("max_connections", 1..=1_000_000);
        assert_eq!(limit.check(&Value::from(10_u64)), Ok(()));
        assert_eq!(
            limit.check(&Value::from(u64::MAX)),
            Err("18446744073709551615".to_owned())
        );
        assert_eq!(limit.check(&Value::from(0_u64)), Err("0".to_owned()));
        assert_eq!(limit.check(&Value::from(-5_i64)), Err("-5".to_owned()));
        assert_eq!(limit.check(&Value::from(" 0 ")), Err("0".to_owned()));
        // The wrong type is deserialisation's to report, with the expected type.
        assert_eq!(limit.check(&Value::from("ten")), Ok(()));
    }

    #[test]
    fn durations_outside_the_range_show_the_value_written() {
        let limit = Limit::duration("graceful_timeout", Duration::ZERO..=DAY);
        assert_eq!(limit.check(&Value::from(30.0)), Ok(()));
        assert_eq!(limit.check(&Value::from("30s")), Ok(()));
        assert_eq!(
            limit.check(&Value::from(f64::INFINITY)),
            Err("inf".to_owned())
        );
        assert_eq!(
            limit.check(&Value::from(1e19)),
            Err("10000000000000000000".to_owned())
        );
        assert_eq!(limit.check(&Value::from(-1.0)), Err("-1".to_owned()));
        assert_eq!(limit.check(&Value::from(f64::NAN)), Err("NaN".to_owned()));
        assert_eq!(
            limit.check(&Value::from("2days")),
            Err("\"2days\"".to_owned())
        );
        assert_eq!(limit.check(&Value::from(" inf ")), Err("inf".to_owned()));
        assert_eq!(limit.to_string(), "between 0s and 1day");
    }

    #[test]
    fn non_empty_text_refuses_blank_values() {
        let limit = Limit::non_empty("host", "a host name or address");
        assert_eq!(limit.check(&Value::from("::1")), Ok(()));
        assert_eq!(limit.check(&Value::from(" ")), Err("\" \"".to_owned()));
        assert_eq!(limit.to_string(), "a host name or address");
    }

    #[test]
    fn or_zero_accepts_zero_below_the_range() {
        let limit =
            Limit::duration("heartbeat_timeout", Duration::from_millis(100)..=DAY).or_zero();
        assert_eq!(limit.check(&Value::from(0)), Ok(()));
        assert_eq!(
            limit.check(&Value::from(0.000_001)),
            Err("0.000001".to_owned())
        );
        assert_eq!(limit.to_string(), "0 (off) or between 100ms and 1day");
    }
}
