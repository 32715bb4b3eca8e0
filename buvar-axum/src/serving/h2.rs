//! HTTP/2 on the same sockets as HTTP/1.1, and the bounds that keep a hostile HTTP/2 client from
//! costing more than an HTTP/1.1 one could.

use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

/// The `[http.h2]` table: HTTP/2 with prior knowledge (h2c) next to HTTP/1.1 on every listener,
/// told apart by the client's first bytes.
///
/// ```toml
/// [http.h2]
/// max_concurrent_streams = 100           # streams one connection may have open
/// max_header_list_size = 16384           # bytes of decoded headers per request
/// max_pending_accept_reset_streams = 20  # streams reset before the server saw them (rapid reset)
/// max_local_error_reset_streams = 1024   # streams the server had to reset for protocol errors
/// max_reset_streams = 100                # streams a client may cancel beyond those it let finish
/// keep_alive_interval = "20s"            # between PINGs; 0 = no PINGs
/// keep_alive_timeout = "20s"             # how long a PING may go unanswered; then the connection closes
/// ```
///
/// Each request is a stream, and every per-request rule of `[http]` holds per stream: the
/// request timeout, the body limit and `max_requests`. `header_read_timeout` bounds the time
/// from accepting a connection to its first request (for HTTP/2: the preface, the settings and
/// the first HEADERS frame), so a connection that says nothing is closed. A client that floods
/// SETTINGS or PING frames gets one acknowledgement at a time: once it stops reading them,
/// `write_timeout` closes the connection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct H2Config {
    /// The most streams one connection may have open at once; between 1 and 10 000.
    pub max_concurrent_streams: u32,
    /// The largest decoded header list of a request, in bytes; between 1 KiB and 1 MiB.
    pub max_header_list_size: u32,
    /// How many streams a client may reset before the server accepted them; one more and the
    /// connection is closed with `ENHANCE_YOUR_CALM` (the rapid reset attack,
    /// CVE-2023-44487); between 1 and 10 000.
    pub max_pending_accept_reset_streams: usize,
    /// How many streams the server may reset for a client's protocol errors before it closes
    /// the connection; between 1 and 100 000.
    pub max_local_error_reset_streams: usize,
    /// How many streams a client may cancel (reset after the server accepted them) beyond the
    /// streams it let finish; one more and the connection is closed (rapid reset again: such
    /// streams cost a call into the router each); between 1 and 1 000 000.
    pub max_reset_streams: u64,
    /// The time between keep-alive PINGs on a connection; 0 sends none; at most one day.
    #[serde(with = "buvar_kit::config::duration")]
    pub keep_alive_interval: Duration,
    /// How long a keep-alive PING may go unanswered before the connection is closed; between
    /// 10 ms and one day.
    #[serde(with = "buvar_kit::config::duration")]
    pub keep_alive_timeout: Duration,
}

impl Default for H2Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_reset_streams: 100,
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

impl H2Config {
    /// The builder of HTTP/2 connections.
    pub(super) fn builder(&self) -> http2::Builder<TokioExecutor> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(self.max_header_list_size)
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.max_local_error_reset_streams)
            .keep_alive_interval(
                (!self.keep_alive_interval.is_zero()).then_some(self.keep_alive_interval),
            )
            .keep_alive_timeout(self.keep_alive_timeout);
        builder
    }
}
