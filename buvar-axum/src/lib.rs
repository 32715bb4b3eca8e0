//! buvar-axum: pre-forked axum serving on shared sockets.
//!
//! - [`sockets`]: socket URIs (`tcp://HOST:PORT`, `unix:///PATH`), bound once with socket2
//!   (or taken over from systemd socket activation), and tokio listeners over them.
//! - [`fork`]: a single-threaded supervisor that forks workers onto those sockets, forwards
//!   signals, replaces crashed workers, restarts them one by one on SIGHUP and stops them
//!   gracefully.

pub mod fork;
pub mod sockets;
