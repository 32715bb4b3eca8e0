//! Any text given as a socket URI: parsing never panics, and what parses prints back to a URI
//! that parses to the same value.
#![no_main]

use std::str::FromStr;

use buvar_axum::sockets::SocketUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(uri) = SocketUri::from_str(text) {
        let printed = uri.to_string();
        let again = SocketUri::from_str(&printed)
            .unwrap_or_else(|err| panic!("{text:?} printed as {printed:?}, which fails: {err}"));
        assert_eq!(again, uri, "{text:?} does not round-trip through {printed:?}");
    }
});
