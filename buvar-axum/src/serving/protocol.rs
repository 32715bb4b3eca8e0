//! Which protocol a plain connection speaks, told by its first bytes without reading them:
//! HTTP/2 with prior knowledge (h2c) opens with the connection preface, anything else is
//! HTTP/1.1.
//!
//! The bytes are peeked at once per connection, so hyper's connection of the chosen protocol
//! then reads the socket itself. hyper-util's auto builder reads them instead and puts them
//! back with a wrapper that every later read of the connection passes through, which cost
//! HTTP/1.1 1.3 % more instructions per request (`scripts/bench-instructions.sh`; this way
//! costs nothing measurable, see BENCHMARKS.md).

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{Interest, Ready};
use tokio::net::{TcpStream, UnixStream};

use crate::sockets::Stream;

/// The protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// HTTP/1.1 (or 1.0), upgrades included.
    Http1,
    /// HTTP/2.
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol that a connection's first bytes tell; `None` while they are the start of the
/// preface and more must arrive. Most HTTP/1.1 requests differ from the preface in their first
/// or second byte.
fn classify(first: &[u8]) -> Option<Protocol> {
    let len = first.len().min(PREFACE.len());
    if first[..len] != PREFACE[..len] {
        Some(Protocol::Http1)
    } else if len == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Waits until the first bytes of `stream` tell its protocol, leaving them unread. A client
/// that closes its side before (or in the middle of the preface) is given to HTTP/1.1, whose
/// connection then ends on what there is.
pub(super) async fn sniff(stream: &Stream) -> io::Result<Protocol> {
    match stream {
        Stream::Tcp(stream) => sniff_socket(stream).await,
        Stream::Unix(stream) => sniff_socket(stream).await,
    }
}

async fn sniff_socket<S: Socket>(socket: &S) -> io::Result<Protocol> {
    let mut first = [0; PREFACE.len()];
    let mut seen = 0;
    loop {
        let ready = socket.ready_to_read().await?;
        // A peek leaves the bytes in the socket, so the socket stays readable: unless the peek
        // finds more than last time, it is reported as `WouldBlock`, which makes tokio wait
        // for the next arrival instead of spinning on the bytes already seen.
        let peeked = socket.try_read_io(|| {
            let peeked = recv(socket.as_raw_fd(), &mut first, MsgFlags::MSG_PEEK)?;
            if peeked == seen && peeked > 0 && !ready.is_read_closed() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(peeked)
        });
        let peeked = match peeked {
            Ok(peeked) => peeked,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        };
        match classify(&first[..peeked]) {
            Some(protocol) => return Ok(protocol),
            None if peeked == 0 || ready.is_read_closed() => return Ok(Protocol::Http1),
            None => seen = peeked,
        }
    }
}

/// What [`sniff`] needs of a tokio socket.
trait Socket: AsRawFd {
    async fn ready_to_read(&self) -> io::Result<Ready>;
    fn try_read_io(&self, io: impl FnOnce() -> io::Result<usize>) -> io::Result<usize>;
}

macro_rules! socket {
    ($socket:ty) => {
        impl Socket for $socket {
            async fn ready_to_read(&self) -> io::Result<Ready> {
                self.ready(Interest::READABLE).await
            }

            fn try_read_io(&self, io: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
                self.try_io(Interest::READABLE, io)
            }
        }
    };
}

socket!(TcpStream);
socket!(UnixStream);

#[cfg(test)]
mod tests {
    use super::*;

    use std::pin::pin;
    use std::time::Duration;

    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_first_differing_byte_tells_http1() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"POST"), Some(Protocol::Http1));
        assert_eq!(classify(b"PRI /x HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PR"), None);
        assert_eq!(classify(b""), None);
        assert_eq!(classify(PREFACE), Some(Protocol::Http2));
        assert_eq!(
            classify(&[PREFACE, b"\0\0\x12"].concat()),
            Some(Protocol::Http2)
        );
    }

    async fn pair() -> (Stream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Stream::Tcp(server), client)
    }

    #[tokio::test]
    async fn a_preface_sent_byte_by_byte_is_http2_and_stays_unread() {
        let (server, mut client) = pair().await;
        client.set_nodelay(true).unwrap();
        {
            let mut sniffing = pin!(sniff(&server));
            let (last, start) = PREFACE.split_last().unwrap();
            for byte in start {
                client.write_all(&[*byte]).await.unwrap();
                assert!(sniffing.as_mut().now_or_never().is_none());
            }
            client.write_all(&[*last]).await.unwrap();
            let sniffed = tokio::time::timeout(Duration::from_secs(10), sniffing).await;
            assert_eq!(sniffed.expect("no decision").unwrap(), Protocol::Http2);
        }
        let Stream::Tcp(mut server) = server else {
            unreachable!()
        };
        let mut read = [0; PREFACE.len()];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(read, PREFACE);
    }

    #[tokio::test]
    async fn a_preface_cut_short_by_the_client_closing_is_http1() {
        let (server, mut client) = pair().await;
        client.write_all(&PREFACE[..5]).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(sniff(&server).await.unwrap(), Protocol::Http1);
    }

    #[tokio::test]
    async fn a_connection_closed_without_a_byte_is_http1() {
        let (server, client) = pair().await;
        drop(client);
        assert_eq!(sniff(&server).await.unwrap(), Protocol::Http1);
    }
}
