//! Closing connections whose peer stops reading.
//!
//! A client that pipelines requests and never reads the answers fills the kernel's send queue;
//! from then on every write of the connection waits. Without a bound that connection, and its
//! slot under `max_connections`, is held forever. [`WriteTimeout`] fails a write that has made no
//! progress for the timeout, and the connection ends with that error.
//!
//! Writes that complete at once (nearly all of them) touch no timer: the deadline is only armed
//! when a write has to wait, and disarmed by the next write that goes through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    /// An I/O stream whose writes fail with [`io::ErrorKind::TimedOut`] once they made no progress
    /// for the timeout.
    #[derive(Debug)]
    pub(crate) struct WriteTimeout<S> {
        #[pin]
        inner: S,
        timeout: Duration,
        stall: Stall,
    }
}

/// Whether writes are waiting, and since when.
#[derive(Debug)]
enum Stall {
    /// The last write went through.
    Flowing,
    /// A write has been waiting; it fails when the sleep ends. The sleep stays allocated for
    /// the next stall of the same connection.
    Waiting(Pin<Box<Sleep>>),
    /// The last write went through after an earlier stall; the sleep is kept for reuse.
    Idle(Pin<Box<Sleep>>),
}

impl<S> WriteTimeout<S> {
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stall: Stall::Flowing,
        }
    }
}

impl Stall {
    /// Records the outcome of one write attempt: progress disarms, waiting arms (once) and fails
    /// when the deadline passed.
    fn observe<T>(
        &mut self,
        timeout: Duration,
        cx: &mut Context<'_>,
        attempt: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match attempt {
            Poll::Ready(done) => {
                if let Stall::Waiting(_) = self {
                    *self = match std::mem::replace(self, Stall::Flowing) {
                        Stall::Waiting(sleep) | Stall::Idle(sleep) => Stall::Idle(sleep),
                        Stall::Flowing => Stall::Flowing,
                    };
                }
                Poll::Ready(done)
            }
            Poll::Pending => {
                let mut sleep = match std::mem::replace(self, Stall::Flowing) {
                    Stall::Waiting(sleep) => sleep,
                    Stall::Idle(mut sleep) => {
                        // A timeout too long for the clock keeps the deadline it had, as far.
                        if let Some(deadline) = Instant::now().checked_add(timeout) {
                            sleep.as_mut().reset(deadline);
                        }
                        sleep
                    }
                    Stall::Flowing => Box::pin(tokio::time::sleep(timeout)),
                };
                let passed = sleep.as_mut().poll(cx).is_ready();
                *self = Stall::Waiting(sleep);
                if passed {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer read nothing for {timeout:?} (http.write_timeout)"),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncRead> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let attempt = this.inner.poll_write(cx, buf);
        this.stall.observe(*this.timeout, cx, attempt)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let attempt = this.inner.poll_write_vectored(cx, bufs);
        this.stall.observe(*this.timeout, cx, attempt)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let attempt = this.inner.poll_flush(cx);
        this.stall.observe(*this.timeout, cx, attempt)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let attempt = this.inner.poll_shutdown(cx);
        this.stall.observe(*this.timeout, cx, attempt)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_timeout() {
        let (near, _far) = tokio::io::duplex(16);
        let mut stream = WriteTimeout::new(near, TIMEOUT);
        stream.write_all(&[0; 16]).await.unwrap();
        let started = Instant::now();
        let err = stream.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        assert!(err.to_string().contains("http.write_timeout"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_timeout() {
        use tokio::io::AsyncReadExt;

        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = WriteTimeout::new(near, TIMEOUT);
        stream.write_all(&[0; 16]).await.unwrap();
        // The peer reads a little, twice, each time just before the deadline: every read lets
        // a waiting write progress, so no write fails although the whole took longer.
        let writer = tokio::spawn(async move { stream.write_all(&[0; 32]).await.map(|()| stream) });
        let mut buf = [0; 16];
        for _ in 0..3 {
            tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
            far.read_exact(&mut buf).await.unwrap();
        }
        let stream = writer.await.unwrap().expect("no write timed out");
        assert!(matches!(stream.stall, Stall::Idle(_) | Stall::Flowing));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_go_through_arm_no_timer() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut stream = WriteTimeout::new(near, TIMEOUT);
        for _ in 0..10 {
            stream.write_all(b"hello").await.unwrap();
        }
        assert!(matches!(stream.stall, Stall::Flowing));
    }
}
