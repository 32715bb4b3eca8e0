//! The `[metrics]` config section.

use serde::{Deserialize, Serialize};

use crate::sockets::{SocketUri, parse_uris};

/// The most series one metric may have at most.
const MAX_SERIES_LIMIT: u64 = 1_000_000;

/// The `[metrics]` section: Prometheus metrics of the whole service, across its workers.
///
/// ```toml
/// [metrics]
/// enabled = true
/// path = "/metrics"
/// listen = "tcp://:9090"        # optional: served only there, not on the service's port
/// series_limit = 10000          # label combinations per metric; the rest fold into one
///                               # series labelled overflow="true"
/// per_worker_gauges = ["queue_depth"]  # gauges shown per worker (label `worker`), not summed
/// buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
/// ```
///
/// Every field can be set from the environment: `APP_METRICS_LISTEN=tcp://:9090`, ...
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether the metrics are recorded and served.
    pub enabled: bool,
    /// The path the metrics are served at.
    pub path: String,
    /// A socket URI to serve the metrics on instead of the service's own sockets; bound once
    /// by the supervisor, like every other socket.
    pub listen: Option<String>,
    /// How many label combinations one metric may have; the rest are counted in one series
    /// labelled `overflow="true"` (and a warning is logged once per metric and worker).
    pub series_limit: u64,
    /// Gauges reported once per worker with a `worker` label instead of summed over the
    /// workers (the default, right for counts such as in-flight requests).
    pub per_worker_gauges: Vec<String>,
    /// The upper bounds of every histogram's buckets, in increasing order.
    pub buckets: Vec<f64>,
}

buvar_kit::section!(MetricsConfig, "metrics", default);

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".to_owned(),
            listen: None,
            series_limit: 10_000,
            per_worker_gauges: Vec::new(),
            // OpenTelemetry's advice for `http.server.request.duration`.
            buckets: vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ],
        }
    }
}

/// A `[metrics]` value that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A value out of its range or malformed.
    #[error("`[metrics] {key}` = {value}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What it must be instead.
        reason: &'static str,
    },
    /// `listen` is also one of the service's own sockets.
    #[error(
        "`[metrics] listen` = `{uri}` is also a socket of `[http]`; give the metrics a socket of \
         their own, or unset `listen` to serve them at `[metrics] path` on the service's sockets"
    )]
    SharedListen {
        /// The URI.
        uri: String,
    },
    /// The shared memory of the metrics cannot be mapped.
    #[error("cannot map the shared memory of the metrics: {0}")]
    Map(#[source] std::io::Error),
}

impl MetricsConfig {
    /// Checks every value; the first problem is the error.
    pub fn validate(&self) -> Result<(), MetricsError> {
        if !self.path.starts_with('/') || self.path.contains(['{', '}', '*', '?', '#']) {
            return Err(MetricsError::Invalid {
                key: "path",
                value: format!("{:?}", self.path),
                reason: "must start with `/` and be a plain path (no `{`, `}`, `*`, `?`, `#`)",
            });
        }
        if !(1..=MAX_SERIES_LIMIT).contains(&self.series_limit) {
            return Err(MetricsError::Invalid {
                key: "series_limit",
                value: self.series_limit.to_string(),
                reason: "must be between 1 and 1000000",
            });
        }
        let increasing = self.buckets.windows(2).all(|pair| pair[0] < pair[1]);
        if self.buckets.is_empty()
            || self.buckets.len() > 64
            || !increasing
            || self.buckets.iter().any(|b| !b.is_finite())
        {
            return Err(MetricsError::Invalid {
                key: "buckets",
                value: format!("{:?}", self.buckets),
                reason: "must be 1 to 64 finite bounds in increasing order",
            });
        }
        self.listen_uri()?;
        Ok(())
    }

    /// `listen` parsed.
    pub fn listen_uri(&self) -> Result<Option<SocketUri>, MetricsError> {
        let Some(listen) = &self.listen else {
            return Ok(None);
        };
        let invalid = || MetricsError::Invalid {
            key: "listen",
            value: format!("{listen:?}"),
            reason: "must be one socket URI such as `tcp://:9090` or `unix:///run/metrics.sock`",
        };
        let mut uris = parse_uris([listen]).map_err(|_| invalid())?;
        match (uris.pop(), uris.is_empty()) {
            (Some(uri), true) => Ok(Some(uri)),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        MetricsConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = [
            MetricsConfig {
                path: "metrics".into(),
                ..MetricsConfig::default()
            },
            MetricsConfig {
                series_limit: 0,
                ..MetricsConfig::default()
            },
            MetricsConfig {
                buckets: vec![1.0, 0.5],
                ..MetricsConfig::default()
            },
            MetricsConfig {
                listen: Some("http://x".into()),
                ..MetricsConfig::default()
            },
        ];
        for (config, key) in bad
            .iter()
            .zip(["path", "series_limit", "buckets", "listen"])
        {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`[metrics] {key}`")), "{err}");
        }
    }
}
