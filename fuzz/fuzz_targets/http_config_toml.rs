//! Any text as a config file: loading `[http]` never panics, a loaded section holds only
//! numbers inside their validated ranges (the edges that once panicked: `inf`, `1e19`,
//! `18446744073709551615`, `0.000001`, `100000` are in the seed corpus), and yields durations,
//! options and socket URIs without panicking either.
#![no_main]

use buvar_axum::HttpConfig;
use buvar_kit::ConfigSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(source) = ConfigSource::new().toml(text) else {
        return;
    };
    if let Ok(http) = source.load::<HttpConfig>() {
        let day = std::time::Duration::from_secs(86_400);
        assert!(http.graceful_timeout() <= day, "{http:?}");
        assert!(http.request_timeout() <= day, "{http:?}");
        assert!(http.header_read_timeout() <= day, "{http:?}");
        assert!(http.heartbeat_timeout().is_none_or(|beat| beat <= day), "{http:?}");
        assert!((1..=1_000_000).contains(&http.max_connections), "{http:?}");
        assert!((1..=1024).contains(&http.threads), "{http:?}");
        assert!(http.forks <= 1024, "{http:?}");
        assert!(http.unix_mode.is_none_or(|mode| mode <= 0o777), "{http:?}");
        let _ = http.socket_uris();
        let _ = http.serve_options();
        let _ = http.bind_options();
        let _ = http.graceful_timeout();
        let _ = http.request_timeout();
        let _ = http.header_read_timeout();
        let _ = http.heartbeat_timeout();
    }
    let _ = source.dump();
});
