//! Why a socket URI could not be parsed or bound.

use std::io;

/// An error while parsing socket URIs or binding the sockets they name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The URI uses a scheme other than `tcp://` or `unix://`.
    #[error("socket URI `{uri}` has an unknown scheme: use `tcp://HOST:PORT` or `unix:///PATH`")]
    UnknownScheme {
        /// The URI as given.
        uri: String,
    },
    /// The URI has a known scheme but cannot be understood.
    #[error("socket URI `{uri}` is malformed: {reason}")]
    Malformed {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another socket is already bound to the address.
    #[error(
        "address {uri} is already in use: stop the other server or choose another port or path"
    )]
    AddressInUse {
        /// The normalised URI of the address.
        uri: String,
    },
    /// A path given as a unix socket exists and is not a socket, so it is not replaced.
    #[error("{path} exists and is not a unix socket: remove it or choose another path")]
    NotASocket {
        /// The path of the file in the way.
        path: String,
    },
    /// Any other failure of a socket call, with the URI and the step that failed.
    #[error("cannot {action} socket {uri}: {source}")]
    Io {
        /// The normalised URI of the socket.
        uri: String,
        /// The step that failed (`create`, `bind`, `listen`, ...).
        action: &'static str,
        /// The operating system error.
        #[source]
        source: io::Error,
    },
    /// `LISTEN_FDS` or `LISTEN_PID` is set but unusable.
    #[error("systemd socket activation: {reason} (check the unit's socket configuration)")]
    Activation {
        /// What is wrong with the inherited descriptors.
        reason: String,
    },
}
