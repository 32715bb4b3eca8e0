//! Side-by-side HTTP benchmarks of buvar-axum: the baseline servers (plain axum, actix-web), the
//! buvar-axum server they are compared with, and the harness that drives them with wrk.
//!
//! `scripts/bench-http.sh` builds everything in release mode and runs the `bench-http` binary,
//! then the criterion suites (`benches/extract.rs` here: the extractors against axum's
//! `State` and `Extension`); `BENCHMARKS.md` describes the method and holds the results.
//!
//! | module | concept |
//! | --- | --- |
//! | [`wrk`] | one load run with wrk and what it reports |
//! | [`criterion`] | criterion's saved results as ratios against their baselines |
//! | [`server`] | a server under test as a child process: readiness, memory, stop |
//! | [`stats`] | medians and ratios of the rounds |
//! | [`fixture`] | the components, adapter and config section the buvar server extracts |

pub mod criterion;
pub mod fixture;
pub mod server;
pub mod stats;
pub mod wrk;

use std::net::SocketAddr;

pub use fixture::{Greeter, GreeterConfig, Greeting, greeter};

/// Why a baseline server has no address to listen on.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// No argument was given.
    #[error("no listening address; pass one, e.g. `127.0.0.1:8080`")]
    Missing,
    /// The argument is not a socket address.
    #[error("`{given}` is not a socket address ({source}); pass one, e.g. `127.0.0.1:8080`")]
    Invalid {
        /// The argument as given.
        given: String,
        /// Why it did not parse.
        source: std::net::AddrParseError,
    },
}

/// The address a baseline server listens on: its first command-line argument.
pub fn listen_addr() -> Result<SocketAddr, AddrError> {
    parse_addr(std::env::args().nth(1))
}

fn parse_addr(arg: Option<String>) -> Result<SocketAddr, AddrError> {
    let given = arg.ok_or(AddrError::Missing)?;
    given
        .parse()
        .map_err(|source| AddrError::Invalid { given, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_argument_parses() {
        let addr = parse_addr(Some("127.0.0.1:8080".into())).unwrap();
        assert_eq!(addr.port(), 8080);
    }

    #[test]
    fn a_missing_or_bad_address_says_what_to_pass() {
        assert!(matches!(parse_addr(None), Err(AddrError::Missing)));
        let err = parse_addr(Some("localhost".into())).unwrap_err();
        assert!(err.to_string().contains("`localhost`"), "{err}");
        assert!(err.to_string().contains("127.0.0.1:8080"), "{err}");
    }
}
