//! A future polled only when something it waits on woke it.
//!
//! A connection's task wakes for every read and write of its socket, and a `select!` polls all
//! of its branches on every wake: the drain and kill signals and the abuse notice, each a
//! cancellation token or `Notify` that takes a lock to check its waker, cost a few hundred
//! instructions per request. Behind [`WhenWoken`] they are polled again only after one of their
//! own wakers fired; every other wake costs one atomic swap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

pin_project! {
    /// `inner`, polled on its first poll and then only after one of its wakers fired.
    pub(super) struct WhenWoken<F> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
    }
}

struct Shared {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F> WhenWoken<F> {
    pub(super) fn new(inner: F) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Registered before the flag is read, so a wake in between is not lost.
        this.shared.task.register(cx.waker());
        if !this.shared.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(this.shared.clone());
        this.inner.poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn the_inner_future_is_polled_again_only_after_its_own_wake() {
        let polls = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let counted = {
            let polls = polls.clone();
            let notify = notify.clone();
            let mut notified = Box::pin(notify.notified_owned());
            std::future::poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::Relaxed);
                notified.as_mut().poll(cx)
            })
        };
        let mut waiting = std::pin::pin!(WhenWoken::new(counted));
        let poll_once = |waiting: &mut Pin<&mut WhenWoken<_>>| {
            waiting
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        };
        assert!(poll_once(&mut waiting).is_pending());
        assert!(poll_once(&mut waiting).is_pending());
        assert!(poll_once(&mut waiting).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "polled without a wake");
        notify.notify_one();
        assert!(poll_once(&mut waiting).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_wake_reaches_the_task_that_awaits_it() {
        let cancel = tokio_util::sync::CancellationToken::new();
        let waiting = tokio::spawn(WhenWoken::new(cancel.clone().cancelled_owned()));
        tokio::task::yield_now().await;
        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
            .await
            .expect("the task was woken")
            .unwrap();
    }
}
