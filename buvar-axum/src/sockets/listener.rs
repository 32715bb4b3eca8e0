//! A tokio listener over either kind of socket, usable with `axum::serve`.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use socket2::{Domain, Socket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A tokio listener on a TCP or unix socket; implements [`axum::serve::Listener`].
///
/// ```no_run
/// # async fn demo(socket: buvar_axum::sockets::BoundSocket) -> std::io::Result<()> {
/// let router = axum::Router::new();
/// axum::serve(socket.listener()?, router).await
/// # }
/// ```
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A unix stream listener.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub(crate) fn from_socket(socket: Socket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let is_unix = socket.local_addr()?.domain() == Domain::UNIX;
        if is_unix {
            tokio::net::UnixListener::from_std(socket.into()).map(Listener::Unix)
        } else {
            tokio::net::TcpListener::from_std(socket.into()).map(Listener::Tcp)
        }
    }

    /// A connection the kernel has queued, taken at once (`None` when there is none). Unlike
    /// `accept`, it asks the kernel even when the runtime has not yet seen the listener become
    /// readable (it learns that only on its next turn): a drain that took the runtime's word
    /// would close connections already queued, and their clients would see a reset.
    pub(crate) fn try_accept(&self) -> io::Result<Option<Stream>> {
        let accepted = match self {
            Listener::Tcp(listener) => socket2::SockRef::from(listener).accept(),
            Listener::Unix(listener) => socket2::SockRef::from(listener).accept(),
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) => return Err(error),
        };
        socket.set_nonblocking(true)?;
        Ok(Some(match self {
            Listener::Tcp(_) => Stream::Tcp(tokio::net::TcpStream::from_std(socket.into())?),
            Listener::Unix(_) => Stream::Unix(tokio::net::UnixStream::from_std(socket.into())?),
        }))
    }

    async fn accept_once(&mut self) -> io::Result<(Stream, PeerAddr)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((Stream::Tcp(stream), PeerAddr::Tcp(addr)))
            }
            Listener::Unix(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((Stream::Unix(stream), PeerAddr::Unix(addr)))
            }
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.accept_once().await {
                Ok(accepted) => return accepted,
                // The peer gave up before we accepted: nothing to do but take the next one.
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    // Typically out of descriptors: back off instead of spinning.
                    tracing::error!(%error, "accept failed; retrying in one second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(PeerAddr::Tcp),
            Listener::Unix(listener) => listener.local_addr().map(PeerAddr::Unix),
        }
    }
}

pub(crate) fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The address of a peer (or of the listener itself).
#[derive(Debug, Clone)]
pub enum PeerAddr {
    /// A TCP address.
    Tcp(std::net::SocketAddr),
    /// A unix socket address (usually unnamed for peers).
    Unix(tokio::net::unix::SocketAddr),
}

/// An accepted connection over TCP or a unix socket.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(tokio::net::TcpStream),
    /// A unix stream connection.
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(stream) => stream.is_write_vectored(),
            Stream::Unix(stream) => stream.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn try_accept_takes_a_queued_connection_the_runtime_has_not_seen_yet() {
        let socket = Socket::new(Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(8).unwrap();
        let listener = Listener::from_socket(socket).unwrap();
        assert!(
            listener.try_accept().unwrap().is_none(),
            "nothing queued yet"
        );
        let Listener::Tcp(tcp) = &listener else {
            unreachable!("a TCP listener")
        };
        // Connected without an await between: the runtime's reactor has had no turn to learn
        // that the listener became readable.
        let _client = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        assert!(matches!(listener.try_accept(), Ok(Some(Stream::Tcp(_)))));
        assert!(listener.try_accept().unwrap().is_none(), "taken once");
    }
}
