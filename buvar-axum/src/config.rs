//! The `[http]` config section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serving::{H2Config, ServeOptions};
use crate::sockets::{BindOptions, SocketError, SocketUri, parse_uris};

/// The `[http]` section: where and how the server listens.
///
/// ```toml
/// [http]
/// host = "0.0.0.0"          # with `port`, used when `sockets` is empty
/// port = 8080
/// sockets = ["tcp://:8080", "unix:///run/svc.sock"]
/// forks = 0                 # 0 = one worker per CPU, 1 = no fork
/// threads = 1               # tokio worker threads per worker; 1 = current-thread runtime
/// graceful_timeout = 30     # seconds a stopping worker may drain
/// request_timeout = 30      # seconds a handler may wait; then 408
/// header_read_timeout = 10  # seconds a client may take to send its headers
/// write_timeout = 30        # seconds a response may make no progress (peer not reading)
/// body_limit = 2097152      # bytes; a larger body gets 413
/// backlog = 1024
/// max_connections = 10000   # per worker; beyond it clients wait in the backlog
/// max_requests = 0          # replace a worker after this many responses; 0 = never
/// max_requests_jitter = 0   # up to this many more, at random per worker
/// heartbeat_timeout = 30    # seconds a worker's runtime may stay blocked; 0 = unchecked
/// user = "nobody"           # workers switch to this user after binding (needs root)
/// group = "nogroup"         # ... and this group (default: the user's primary group)
/// unix_mode = 0o660         # file mode of unix socket files (default: the umask's)
///
/// [http.h2]                 # HTTP/2 next to HTTP/1.1: see `H2Config`
/// max_concurrent_streams = 100
/// ```
///
/// Every field can be set from the environment: `APP_HTTP_PORT=9000`, `APP_HTTP_FORKS=1`, ...
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to bind when `sockets` is empty.
    pub host: String,
    /// The port to bind when `sockets` is empty; 0 picks a free one.
    pub port: u16,
    /// Socket URIs to bind instead of `host:port`.
    pub sockets: Vec<String>,
    /// Worker processes: 0 = one per available CPU, 1 = serve in this process.
    pub forks: usize,
    /// Runtime threads per worker: 1 = a current-thread runtime.
    pub threads: usize,
    /// Seconds a stopping worker may take to finish in-flight requests.
    pub graceful_timeout: f64,
    /// Seconds a handler may take, counted from its first wait, before the request is answered
    /// with 408 (a handler that answers without waiting is never cut off).
    pub request_timeout: f64,
    /// Seconds a client may take to send the request head.
    pub header_read_timeout: f64,
    /// Seconds a response may make no write progress (the client reads nothing) before the
    /// connection is closed; between 0.01 and 86400.
    pub write_timeout: f64,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The accept queue length of each socket.
    pub backlog: i32,
    /// The most connections a worker keeps open; further clients wait in the backlog.
    pub max_connections: usize,
    /// Responses after which a worker is replaced (gracefully, new one first); 0 = never.
    pub max_requests: u64,
    /// Up to this many responses are added to `max_requests`, at random per worker.
    pub max_requests_jitter: u64,
    /// Seconds a worker's runtime may go without ticking before the worker is replaced;
    /// 0 turns the check off.
    pub heartbeat_timeout: f64,
    /// The user (name or id) workers run as; they switch after the sockets are bound.
    pub user: Option<String>,
    /// The group (name or id) workers run as; default: the user's primary group.
    pub group: Option<String>,
    /// The file mode of unix socket files, e.g. `0o660` in TOML (432 in an environment
    /// variable); default: what the umask leaves.
    pub unix_mode: Option<u32>,
    /// HTTP/2 (h2c with prior knowledge) on the same sockets, and its bounds.
    pub h2: H2Config,
}

buvar_kit::section!(HttpConfig, "http", default);

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            sockets: Vec::new(),
            forks: 0,
            threads: 1,
            graceful_timeout: 30.0,
            request_timeout: 30.0,
            header_read_timeout: 10.0,
            write_timeout: 30.0,
            body_limit: 2 * 1024 * 1024,
            backlog: 1024,
            max_connections: 10_000,
            max_requests: 0,
            max_requests_jitter: 0,
            heartbeat_timeout: 30.0,
            user: None,
            group: None,
            unix_mode: None,
            h2: H2Config::default(),
        }
    }
}

impl HttpConfig {
    /// The socket URIs to bind: `sockets`, or `host:port` when that is empty.
    pub fn socket_uris(&self) -> Result<Vec<SocketUri>, SocketError> {
        if self.sockets.is_empty() {
            let host = if self.host.contains(':') && !self.host.starts_with('[') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            parse_uris([format!("tcp://{host}:{}", self.port)])
        } else {
            parse_uris(&self.sockets)
        }
    }

    /// How to bind the sockets.
    pub fn bind_options(&self) -> BindOptions {
        BindOptions {
            backlog: self.backlog,
            unix_mode: self.unix_mode,
            ..BindOptions::default()
        }
    }

    /// How the server treats connections.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions::default()
            .graceful_timeout(self.graceful_timeout())
            .header_read_timeout(self.header_read_timeout())
            .write_timeout(seconds(self.write_timeout))
            .h2(self.h2.clone())
            .max_connections(self.max_connections)
            .max_requests(
                (self.max_requests > 0).then_some(self.max_requests),
                self.max_requests_jitter,
            )
    }

    /// `heartbeat_timeout` as a duration; `None` when 0 (unchecked).
    pub fn heartbeat_timeout(&self) -> Option<Duration> {
        (self.heartbeat_timeout > 0.0).then(|| seconds(self.heartbeat_timeout))
    }

    /// `graceful_timeout` as a duration.
    pub fn graceful_timeout(&self) -> Duration {
        seconds(self.graceful_timeout)
    }

    /// `request_timeout` as a duration.
    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout)
    }

    /// `header_read_timeout` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        seconds(self.header_read_timeout)
    }
}

/// Negative, NaN or absurd values would panic in `Duration::from_secs_f64`; they mean "as short"
/// or "as long as possible" respectively.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use buvar_kit::ConfigSource;

    use super::*;

    #[test]
    fn defaults_are_loopback_8080_and_one_worker_per_cpu() {
        let http = ConfigSource::new().load::<HttpConfig>().unwrap();
        assert_eq!(http, HttpConfig::default());
        assert_eq!(
            http.socket_uris().unwrap()[0].to_string(),
            "tcp://127.0.0.1:8080"
        );
        assert_eq!(http.forks, 0);
        assert_eq!(http.graceful_timeout(), Duration::from_secs(30));
        assert_eq!(http.body_limit, 2 * 1024 * 1024);
    }

    #[test]
    fn sockets_win_over_host_and_port() {
        let http = ConfigSource::new()
            .toml("[http]\nport = 1\nsockets = [\"tcp://[::1]:9000\", \"unix:///tmp/x.sock\"]")
            .unwrap()
            .load::<HttpConfig>()
            .unwrap();
        let uris: Vec<String> = http
            .socket_uris()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(uris, ["tcp://[::1]:9000", "unix:///tmp/x.sock"]);
    }

    #[test]
    fn an_ipv6_host_is_bracketed() {
        let http = HttpConfig {
            host: "::1".into(),
            port: 81,
            ..HttpConfig::default()
        };
        assert_eq!(http.socket_uris().unwrap()[0].to_string(), "tcp://[::1]:81");
    }

    #[test]
    fn unknown_http_keys_are_errors_naming_them() {
        let err = ConfigSource::new()
            .toml("[http]\nprot = 1")
            .unwrap()
            .load::<HttpConfig>()
            .unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn reliability_settings_reach_the_serve_and_bind_options() {
        let http = ConfigSource::new()
            .toml(
                "[http]\nmax_connections = 7\nmax_requests = 100\nmax_requests_jitter = 5\n\
                 heartbeat_timeout = 0\nunix_mode = 0o660\nuser = \"nobody\"",
            )
            .unwrap()
            .load::<HttpConfig>()
            .unwrap();
        let serve = http.serve_options();
        assert_eq!(serve.max_connections, 7);
        assert_eq!(serve.max_requests, Some(100));
        assert_eq!(serve.max_requests_jitter, 5);
        assert_eq!(http.heartbeat_timeout(), None);
        assert_eq!(http.bind_options().unix_mode, Some(0o660));
        assert_eq!(http.user.as_deref(), Some("nobody"));
        assert_eq!(HttpConfig::default().serve_options().max_requests, None);
        assert_eq!(
            HttpConfig::default().heartbeat_timeout(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn odd_durations_do_not_panic() {
        let http = HttpConfig {
            graceful_timeout: -1.0,
            request_timeout: f64::NAN,
            header_read_timeout: 1e300,
            ..HttpConfig::default()
        };
        assert_eq!(http.graceful_timeout(), Duration::ZERO);
        assert_eq!(http.request_timeout(), Duration::ZERO);
        assert_eq!(http.header_read_timeout(), Duration::MAX);
    }
}
