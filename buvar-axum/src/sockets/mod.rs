//! Listening sockets named by URI, bound once in the supervisor and shared by every worker.
//!
//! ```
//! use buvar_axum::sockets::{BindOptions, bind, parse_uris};
//!
//! let sockets = bind(&parse_uris(["tcp://127.0.0.1:0"])?, &BindOptions::default())?;
//! println!("listening on {}", sockets[0].local_addr());
//! # Ok::<(), buvar_axum::sockets::SocketError>(())
//! ```

pub(crate) mod activation;
mod bind;
mod error;
mod listener;
#[cfg(target_os = "linux")]
pub(crate) mod open_files;
mod uri;

pub use bind::{BindOptions, BoundSocket, bind};
pub use error::SocketError;
pub(crate) use listener::is_connection_error;
pub use listener::{Listener, PeerAddr, Stream};
pub use uri::{SocketUri, parse_uris};
