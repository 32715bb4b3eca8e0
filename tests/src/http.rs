//! Raw HTTP/1.1 over a plain stream, for tests that need the bytes on the wire or a unix
//! socket, with no client library in between.

use std::io::{Read, Write};
use std::time::Duration;

/// An HTTP/1.1 answer: its status code, and its body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The body after the head (a `Connection: close` answer's body is the rest of the stream).
    pub body: String,
}

/// Sends `GET target` with `Connection: close` on `stream` and reads the answer to the end of
/// the stream (at most 10 s between two reads when `stream` is a TCP or unix stream whose read
/// timeout was set by [`connect_tcp`]).
///
/// # Errors
///
/// When writing or reading fails, or what came back has no HTTP status line.
pub fn get(mut stream: impl Read + Write, target: &str) -> std::io::Result<RawResponse> {
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no HTTP/1.1 status line in {answer:?}"),
            )
        })?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(RawResponse { status, body })
}

/// A TCP connection to `addr` whose reads give up after 10 s, so a hung server fails the test
/// instead of hanging it.
///
/// # Errors
///
/// When the connection cannot be made.
pub fn connect_tcp(addr: &str) -> std::io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}
