//! The valid ranges of the serving settings, checked when the `[http]` section is loaded, so
//! that an absurd value fails at start-up with its key instead of panicking in a worker.

use std::fmt;

use crate::HttpConfig;

/// A setting outside its valid range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "`{key}` must be between {min} and {max}, found {found}; fix the config file or the environment variable"
)]
pub struct SettingOutOfRange {
    /// The dotted key, e.g. `http.h2.max_concurrent_streams`.
    pub key: &'static str,
    min: String,
    max: String,
    found: String,
}

/// Checks that `value` of `key` lies in `min..=max` (NaN never does).
pub(crate) fn check<T: PartialOrd + fmt::Display>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), SettingOutOfRange> {
    if min <= value && value <= max {
        Ok(())
    } else {
        Err(SettingOutOfRange {
            key,
            min: min.to_string(),
            max: max.to_string(),
            found: value.to_string(),
        })
    }
}

/// Checks the `[http.h2]` table (the numbers of `[http]` itself have their ranges in its
/// [`Section::limits`](buvar_kit::config::Section::limits)).
pub(crate) fn check_http(http: &HttpConfig) -> Result<(), SettingOutOfRange> {
    let h2 = &http.h2;
    check(
        "http.h2.max_concurrent_streams",
        h2.max_concurrent_streams,
        1,
        10_000,
    )?;
    check(
        "http.h2.max_header_list_size",
        h2.max_header_list_size,
        1024,
        1 << 20,
    )?;
    check(
        "http.h2.max_pending_accept_reset_streams",
        h2.max_pending_accept_reset_streams,
        1,
        10_000,
    )?;
    check(
        "http.h2.max_local_error_reset_streams",
        h2.max_local_error_reset_streams,
        1,
        100_000,
    )?;
    check(
        "http.h2.max_reset_streams",
        h2.max_reset_streams,
        1,
        1_000_000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_are_in_range() {
        check_http(&HttpConfig::default()).unwrap();
    }

    #[test]
    fn http2_bounds_are_checked_with_their_keys() {
        let mut http = HttpConfig::default();
        http.h2.max_concurrent_streams = 0;
        assert_eq!(
            check_http(&http).unwrap_err().to_string(),
            "`http.h2.max_concurrent_streams` must be between 1 and 10000, found 0; \
             fix the config file or the environment variable"
        );
    }
}
