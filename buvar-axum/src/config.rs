//! The `[http]` config section.

use std::time::Duration;

use buvar_kit::config::figment::value::Dict;
use buvar_kit::config::{ConfigError, Limit, Section, serialize_defaults};
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
/// graceful_timeout = "30s"  # how long a stopping worker may drain
/// keep_alive_grace = "1s"   # how long a drain leaves idle keep-alive clients; 0 = close at once
/// shutdown_delay = 0        # serving on after SIGTERM with /readyz 503 (0 to 1h)
/// request_timeout = "30s"   # how long a handler may wait; then 408
/// header_read_timeout = 10  # a number is seconds: how long a client may take to send its headers
/// write_timeout = "30s"     # how long a response may make no progress (peer not reading)
/// body_limit = 2097152      # bytes; a larger body gets 413
/// backlog = 1024
/// max_connections = 10000   # per worker; beyond it clients wait in the backlog
/// max_requests = 0          # replace a worker after this many responses; 0 = never
/// max_requests_jitter = 0   # up to this many more, at random per worker
/// heartbeat_timeout = "30s" # how long a worker's runtime may stay blocked; 0 = unchecked
/// user = "nobody"           # workers switch to this user after binding (needs root)
/// group = "nogroup"         # ... and this group (default: the user's primary group)
/// unix_mode = "0660"        # file mode of unix socket files (default: the umask's)
/// pidfile = "/run/app.pid"  # the supervisor's pid, rewritten by a binary upgrade (default: none)
/// upgrade_timeout = "60s"   # how long a new binary (SIGUSR2) may take to be ready
///
/// [http.h2]                 # HTTP/2 next to HTTP/1.1: see `H2Config`
/// max_concurrent_streams = 100
///
/// [http.tls]                # feature `tls`: TLS on every socket, see `tls::TlsConfig`
/// cert = "/etc/svc/tls.crt"
/// key = "/etc/svc/tls.key"
/// ```
///
/// Every field can be set from the environment: `APP_HTTP_PORT=9000`, `APP_HTTP_FORKS=1`, ...
/// Durations take `"30s"`, `"500ms"`, `"1h 30m"` or a number of seconds. Every number has a
/// validated range (see [`HttpConfig::limits`](buvar_kit::config::Section::limits) and
/// `--env-help`): a value outside it fails loading with the key, the range and where it came
/// from.
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
    /// How long a stopping worker may take to finish in-flight requests.
    #[serde(with = "buvar_kit::config::duration")]
    pub graceful_timeout: Duration,
    /// How long a drain lets idle keep-alive clients send one more request before closing their
    /// connections (at most `graceful_timeout`); 0 closes them at once. A pre-forked worker
    /// also keeps accepting, for at most this long, until its supervisor has let go of the
    /// listening sockets.
    #[serde(with = "buvar_kit::config::duration")]
    pub keep_alive_grace: Duration,
    /// How long, from 0 to an hour, between SIGTERM and the drain: `/readyz` answers 503 at once
    /// while the workers keep accepting and serving, so load balancers (Kubernetes endpoints)
    /// stop routing here first; a second SIGTERM or SIGINT skips the rest. The drain's
    /// `graceful_timeout` starts after it: a grace period must cover both.
    #[serde(with = "buvar_kit::config::duration")]
    pub shutdown_delay: Duration,
    /// How long a handler may take, counted from its first wait, before the request is answered
    /// with 408 (a handler that answers without waiting is never cut off).
    #[serde(with = "buvar_kit::config::duration")]
    pub request_timeout: Duration,
    /// How long a client may take to send the request head.
    #[serde(with = "buvar_kit::config::duration")]
    pub header_read_timeout: Duration,
    /// How long a response may make no write progress (the client reads nothing) before the
    /// connection is closed.
    #[serde(with = "buvar_kit::config::duration")]
    pub write_timeout: Duration,
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
    /// How long a worker's runtime may go without ticking before the worker is replaced;
    /// 0 turns the check off.
    #[serde(with = "buvar_kit::config::duration")]
    pub heartbeat_timeout: Duration,
    /// The user (name or id) workers run as; they switch after the sockets are bound.
    pub user: Option<String>,
    /// The group (name or id) workers run as; default: the user's primary group.
    pub group: Option<String>,
    /// The file mode of unix socket files, an octal string such as `"0660"` (or `0o660` in
    /// TOML); default: what the umask leaves.
    #[serde(with = "buvar_kit::config::file_mode")]
    pub unix_mode: Option<u32>,
    /// A file the supervisor writes its pid to, atomically, at start; a binary upgrade's new
    /// supervisor rewrites it when it takes over. Not needed under systemd (`Type=notify`
    /// follows the new supervisor by `MAINPID=`).
    #[serde(deserialize_with = "file_path")]
    pub pidfile: Option<std::path::PathBuf>,
    /// How long a new binary started by SIGUSR2 may take until all its workers are ready;
    /// then it is killed and the running one serves on.
    #[serde(with = "buvar_kit::config::duration")]
    pub upgrade_timeout: Duration,
    /// HTTP/2 (h2c with prior knowledge) on the same sockets, and its bounds.
    pub h2: H2Config,
    /// TLS on every socket (feature `tls`): see [`TlsConfig`](crate::tls::TlsConfig).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsConfig>,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Section for HttpConfig {
    const SECTION: &'static str = "http";

    fn defaults() -> Result<Option<Dict>, ConfigError> {
        serialize_defaults(&Self::default()).map(Some)
    }

    /// Ranges that keep every number away from what panics or never becomes ready: an
    /// `Instant` overflow (durations), tokio's semaphore limit (`max_connections`), thread and
    /// process counts a machine cannot hold, a heartbeat too short to ever be met.
    fn limits() -> Vec<Limit> {
        vec![
            // An empty host would bind every interface: that must be asked for explicitly.
            Limit::non_empty(
                "host",
                "a host name or address (0.0.0.0 or :: to listen on every interface)",
            ),
            Limit::count("forks", 0..=1024),
            Limit::count("threads", 1..=1024),
            Limit::duration("graceful_timeout", Duration::ZERO..=DAY),
            Limit::duration("keep_alive_grace", Duration::ZERO..=DAY),
            Limit::duration("shutdown_delay", Duration::ZERO..=Duration::from_secs(3600)),
            Limit::duration("request_timeout", Duration::from_millis(1)..=DAY),
            Limit::duration("header_read_timeout", Duration::from_millis(1)..=DAY),
            Limit::duration("write_timeout", Duration::from_millis(10)..=DAY),
            Limit::count("body_limit", 0..=1 << 40),
            Limit::count("backlog", 1..=65_535),
            Limit::count("max_connections", 1..=1_000_000),
            Limit::count("max_requests", 0..=1 << 48),
            Limit::count("max_requests_jitter", 0..=1 << 48),
            Limit::duration("heartbeat_timeout", Duration::from_millis(100)..=DAY).or_zero(),
            Limit::duration(
                "upgrade_timeout",
                Duration::from_secs(1)..=Duration::from_secs(3600),
            ),
            Limit::count("h2.max_concurrent_streams", 1..=10_000),
            Limit::count("h2.max_header_list_size", 1024..=1 << 20),
            Limit::count("h2.max_pending_accept_reset_streams", 1..=10_000),
            Limit::count("h2.max_local_error_reset_streams", 1..=100_000),
            Limit::count("h2.max_reset_streams", 1..=1_000_000),
            Limit::duration("h2.keep_alive_interval", Duration::ZERO..=DAY),
            Limit::duration("h2.keep_alive_timeout", Duration::from_millis(10)..=DAY),
            #[cfg(feature = "tls")]
            Limit::duration("tls.reload_interval", crate::tls::RELOAD_INTERVALS),
        ]
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            sockets: Vec::new(),
            forks: 0,
            threads: 1,
            graceful_timeout: Duration::from_secs(30),
            keep_alive_grace: Duration::from_secs(1),
            shutdown_delay: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            body_limit: 2 * 1024 * 1024,
            backlog: 1024,
            max_connections: 10_000,
            max_requests: 0,
            max_requests_jitter: 0,
            heartbeat_timeout: Duration::from_secs(30),
            user: None,
            group: None,
            unix_mode: None,
            pidfile: None,
            upgrade_timeout: Duration::from_secs(60),
            h2: H2Config::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl HttpConfig {
    /// The socket URIs to bind: `sockets`, or `host:port` when that is empty. An empty host is
    /// an error: listening on every interface must be asked for (`0.0.0.0` or `::`).
    pub fn socket_uris(&self) -> Result<Vec<SocketUri>, SocketError> {
        if self.sockets.is_empty() {
            if self.host.trim().is_empty() {
                return Err(SocketError::Malformed {
                    uri: format!("tcp://{}:{}", self.host, self.port),
                    reason: "`http.host` is empty; write 0.0.0.0 or :: to listen on every \
                             interface, or a host name or address",
                });
            }
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
        BindOptions::default()
            .backlog(self.backlog)
            .unix_mode(self.unix_mode)
    }

    /// How the server treats connections.
    pub fn serve_options(&self) -> ServeOptions {
        let options = ServeOptions::default();
        #[cfg(feature = "tls")]
        let options = options.tls(self.tls.clone());
        options
            .graceful_timeout(self.graceful_timeout())
            .keep_alive_grace(self.keep_alive_grace)
            .header_read_timeout(self.header_read_timeout())
            .write_timeout(self.write_timeout)
            .h2(self.h2.clone())
            .max_connections(self.max_connections)
            .max_requests(
                (self.max_requests > 0).then_some(self.max_requests),
                self.max_requests_jitter,
            )
    }

    /// `heartbeat_timeout`; `None` when 0 (unchecked).
    pub fn heartbeat_timeout(&self) -> Option<Duration> {
        (!self.heartbeat_timeout.is_zero()).then_some(self.heartbeat_timeout)
    }

    /// `graceful_timeout`.
    pub fn graceful_timeout(&self) -> Duration {
        self.graceful_timeout
    }

    /// `shutdown_delay`.
    pub fn shutdown_delay(&self) -> Duration {
        self.shutdown_delay
    }

    /// `request_timeout`.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `header_read_timeout`.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }
}

/// An optional file path that is not empty: `pidfile = ""` is a mistake (the write would fail
/// only when the supervisor starts), so it is refused where the config is read.
fn file_path<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::path::PathBuf>, D::Error> {
    let path = Option::<std::path::PathBuf>::deserialize(deserializer)?;
    if path
        .as_ref()
        .is_some_and(|path| path.as_os_str().is_empty())
    {
        return Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(""),
            &"a file path (leave the key out for none)",
        ));
    }
    Ok(path)
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
    fn an_empty_pidfile_is_an_error_naming_the_key() {
        let error = load("[http]\npidfile = \"\"").unwrap_err().to_string();
        assert!(error.contains("http.pidfile"), "{error}");
        assert!(error.contains("a file path"), "{error}");
        let http = load("[http]\npidfile = \"/run/app.pid\"").unwrap();
        assert_eq!(
            http.pidfile.as_deref(),
            Some(std::path::Path::new("/run/app.pid"))
        );
    }

    #[test]
    fn an_empty_host_is_an_error_not_every_interface() {
        let error = load("[http]\nhost = \"\"").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`http.host` must be a host name or address (0.0.0.0 or :: to listen on every \
             interface), found \"\", from TOML text"
        );
        let http = HttpConfig {
            host: " ".into(),
            ..HttpConfig::default()
        };
        assert!(
            http.socket_uris()
                .unwrap_err()
                .to_string()
                .contains("0.0.0.0")
        );
    }

    #[test]
    fn unix_mode_reads_octal_text_and_refuses_decimal_lookalikes() {
        assert_eq!(
            load("[http]\nunix_mode = \"0660\"").unwrap().unix_mode,
            Some(0o660)
        );
        assert_eq!(
            load("[http]\nunix_mode = 0o600").unwrap().unix_mode,
            Some(0o600)
        );
        let error = load("[http]\nunix_mode = 660").unwrap_err().to_string();
        assert!(
            error.starts_with("http.unix_mode: expected an octal file mode"),
            "{error}"
        );
        assert!(error.contains("found unsigned int `660`"), "{error}");
        let error = load("[http]\nunix_mode = \"0999\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"0999\""), "{error}");
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

    fn load(toml: &str) -> Result<HttpConfig, ConfigError> {
        ConfigSource::new().toml(toml).unwrap().load::<HttpConfig>()
    }

    #[test]
    fn a_shutdown_delay_out_of_range_is_an_error_naming_the_key_and_value() {
        let http = load("[http]\nshutdown_delay = 2.5").unwrap();
        assert_eq!(http.shutdown_delay(), Duration::from_millis(2500));
        assert_eq!(HttpConfig::default().shutdown_delay(), Duration::ZERO);
        for bad in ["-1", "3601", "inf", "nan"] {
            let err = load(&format!("[http]\nshutdown_delay = {bad}")).unwrap_err();
            assert!(err.is_out_of_range(), "{bad}: {err}");
            let err = err.to_string();
            assert!(
                err.contains("`http.shutdown_delay` must be between 0s and 1h"),
                "{err}"
            );
        }
    }

    #[test]
    fn durations_read_as_text_or_seconds() {
        let http = load(
            "[http]\ngraceful_timeout = \"500ms\"\nrequest_timeout = 2.5\n\
             header_read_timeout = \"1m 30s\"\nheartbeat_timeout = \"0\"",
        )
        .unwrap();
        assert_eq!(http.graceful_timeout(), Duration::from_millis(500));
        assert_eq!(http.request_timeout(), Duration::from_millis(2500));
        assert_eq!(http.header_read_timeout(), Duration::from_secs(90));
        assert_eq!(http.heartbeat_timeout(), None);
        let whole = load("[http]\ngraceful_timeout = 5").unwrap();
        assert_eq!(whole.graceful_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn numbers_that_used_to_panic_are_refused_with_key_range_and_value() {
        let cases = [
            (
                "header_read_timeout = inf",
                "`http.header_read_timeout` must be between 1ms and 1day, found inf",
            ),
            (
                "header_read_timeout = 9.3e18",
                "`http.header_read_timeout` must be between 1ms and 1day, found 9300000000000000000",
            ),
            (
                "graceful_timeout = inf",
                "`http.graceful_timeout` must be between 0s and 1day, found inf",
            ),
            (
                "graceful_timeout = 1e19",
                "`http.graceful_timeout` must be between 0s and 1day, found 10000000000000000000",
            ),
            (
                "graceful_timeout = -1",
                "`http.graceful_timeout` must be between 0s and 1day, found -1",
            ),
            (
                "request_timeout = nan",
                "`http.request_timeout` must be between 1ms and 1day, found NaN",
            ),
            (
                "max_connections = 9223372036854775807",
                "`http.max_connections` must be between 1 and 1000000, found 9223372036854775807",
            ),
            (
                "heartbeat_timeout = 0.000001",
                "`http.heartbeat_timeout` must be 0 (off) or between 100ms and 1day, found 0.000001",
            ),
            (
                "threads = 100000",
                "`http.threads` must be between 1 and 1024, found 100000",
            ),
            (
                "forks = 100000",
                "`http.forks` must be between 0 and 1024, found 100000",
            ),
            (
                "backlog = -1",
                "`http.backlog` must be between 1 and 65535, found -1",
            ),
            (
                "graceful_timeout = \"2days\"",
                "`http.graceful_timeout` must be between 0s and 1day, found \"2days\"",
            ),
        ];
        for (toml, expected) in cases {
            let error = load(&format!("[http]\n{toml}")).unwrap_err();
            assert!(error.is_out_of_range(), "{toml}: {error}");
            assert_eq!(
                error.to_string(),
                format!("{expected}, from TOML text"),
                "{toml}"
            );
        }
    }

    #[test]
    fn every_number_of_the_section_has_a_range() {
        let help = buvar_kit::config::env_help::<HttpConfig>("APP");
        for var in help.vars() {
            let numeric = var.type_label.contains("duration")
                || ["u16", "u32", "u64", "usize", "i32"]
                    .iter()
                    .any(|ty| var.type_label.ends_with(ty));
            // `port` is bounded by its type; `unix_mode` by its own parser.
            if numeric && !["http.port", "http.unix_mode"].contains(&var.key.as_str()) {
                assert!(var.range.is_some(), "{} has no range", var.key);
            }
        }
        let text = help
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(
                "APP_HTTP_GRACEFUL_TIMEOUT duration default \"30s\"; between 0s and 1day"
            ),
            "{text}"
        );
    }
}
