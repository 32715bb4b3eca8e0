//! Any text as a config file: loading `[http]` never panics, and a loaded section yields
//! durations, options and socket URIs without panicking either.
#![no_main]

use buvar_axum::HttpConfig;
use buvar_kit::ConfigSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(source) = ConfigSource::new().toml(text) else {
        return;
    };
    if let Ok(http) = source.load::<HttpConfig>() {
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
