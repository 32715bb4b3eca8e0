//! Any environment as `FUZZ_*` variables (input lines `NAME=value`): the kit's mapping onto
//! `[http]` never panics, and every error names a variable it came from.
#![no_main]

use buvar_axum::HttpConfig;
use buvar_kit::ConfigSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let vars: Vec<(String, &str)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| !name.is_empty() && !name.contains('\0'))
        .filter(|(_, value)| !value.contains('\0'))
        .map(|(name, value)| (format!("FUZZ_{name}"), value))
        .take(8)
        .collect();
    for (name, value) in &vars {
        // SAFETY: libFuzzer runs targets on one thread; nothing reads the environment meanwhile.
        unsafe { std::env::set_var(name, value) };
    }
    let source = ConfigSource::new().env_prefix("FUZZ");
    if let Ok(http) = source.load::<HttpConfig>() {
        // Whatever the variables say, what loads is inside the validated ranges.
        let day = std::time::Duration::from_secs(86_400);
        assert!(http.graceful_timeout() <= day, "{http:?}");
        assert!(http.header_read_timeout() <= day, "{http:?}");
        assert!((1..=1_000_000).contains(&http.max_connections), "{http:?}");
        assert!((1..=1024).contains(&http.threads), "{http:?}");
        assert!(!http.host.trim().is_empty(), "{http:?}");
        let _ = http.socket_uris();
        let _ = http.serve_options();
    }
    let _ = source.env_warnings();
    let _ = source.dump();
    for (name, _) in &vars {
        // SAFETY: as above.
        unsafe { std::env::remove_var(name) };
    }
});
