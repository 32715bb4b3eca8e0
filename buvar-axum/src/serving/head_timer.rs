//! hyper's HTTP/1 header read timer, one per connection, with one tokio timer reused for every
//! request head.
//!
//! hyper (1.x) asks its [`Timer`] for a new sleep before each request head and drops it once the
//! head is read. With hyper-util's `TokioTimer` every keep-alive request then allocates a tokio
//! `Sleep`, inserts it into the runtime's timer wheel on its first poll and removes it again
//! (BENCHMARKS.md, issue 18 fourth round: this module saves 335 of the about 3,650 instructions the
//! default stack adds to plain axum per request).
//!
//! Here the tokio `Sleep` goes back to its connection when hyper drops the head's sleep, still
//! registered, and the next head keeps it as it is: each head's sleep holds its own deadline, and
//! only when the tokio sleep fires before that deadline does it move it there. On a busy
//! connection that is once per header read timeout, not once per request; a request that takes
//! longer than the timeout wakes its connection's task once, for nothing.
//!
//! Nor is the tokio sleep polled again while it waits in the wheel to wake the very task that
//! polls it: hyper polls the head's sleep before every read of a head, and each poll of a tokio
//! sleep registers the task's waker again.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// The timer of one connection: give each connection its own (`http1::Builder::timer`).
#[derive(Debug, Default)]
pub(crate) struct HeadTimer {
    spare: Arc<Spare>,
}

/// The connection's tokio sleep while no head is read.
type Spare = Mutex<Option<Registered>>;

/// A tokio sleep and the waker it last registered, which it wakes when it fires.
#[derive(Debug)]
struct Registered {
    sleep: Pin<Box<tokio::time::Sleep>>,
    waker: Option<Waker>,
}

impl Registered {
    fn new(deadline: tokio::time::Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            waker: None,
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        self.sleep.deadline()
    }

    fn reset(&mut self, deadline: tokio::time::Instant) {
        self.sleep.as_mut().reset(deadline);
    }

    /// Polls the tokio sleep, unless it waits in the wheel to wake the task polling now.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let waker = cx.waker();
        // A task dump (`--cfg tokio_unstable`) polls a sleep without registering it, and
        // nothing here can tell: built so, every poll registers.
        if !cfg!(tokio_unstable)
            && !self.sleep.is_elapsed()
            && self.waker.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            return Poll::Pending;
        }
        // Out of budget, tokio answers `Pending` without registering anything.
        let registers = tokio::task::coop::has_budget_remaining();
        let polled = self.sleep.as_mut().poll(cx);
        // Rare: once per head the tokio sleep fires early for, or a poll from another task.
        self.waker = (polled.is_pending() && registers).then(|| waker.clone());
        polled
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // A second sleep while the first one lives (hyper takes one at a time) gets its own.
        let sleep = spare.unwrap_or_else(|| Registered::new(deadline));
        let mut head = HeadSleep {
            sleep: Some(sleep),
            deadline,
            spare: self.spare.clone(),
        };
        head.reset(deadline);
        Box::pin(head)
    }

    /// tokio's clock, which a paused runtime (tests) controls.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeadSleep>() {
            Some(head) => head
                .get_mut()
                .reset(tokio::time::Instant::from_std(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One head's sleep: hands its tokio sleep back to the connection when dropped.
struct HeadSleep {
    /// Always `Some` until dropped. Due at `deadline` or earlier: it moves on when it fires early.
    sleep: Option<Registered>,
    deadline: tokio::time::Instant,
    spare: Arc<Spare>,
}

impl HeadSleep {
    fn reset(&mut self, deadline: tokio::time::Instant) {
        self.deadline = deadline;
        // A later deadline waits until the tokio sleep fires; an earlier one cannot.
        if let Some(sleep) = &mut self.sleep
            && deadline < sleep.deadline()
        {
            sleep.reset(deadline);
        }
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Self {
            sleep, deadline, ..
        } = self.get_mut();
        let Some(sleep) = sleep else {
            return Poll::Ready(());
        };
        while sleep.poll(cx).is_ready() {
            if sleep.deadline() >= *deadline {
                return Poll::Ready(());
            }
            sleep.reset(*deadline);
        }
        Poll::Pending
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn spare_address(timer: &HeadTimer) -> Option<*const tokio::time::Sleep> {
        let spare = timer.spare.lock().unwrap();
        spare
            .as_ref()
            .map(|registered| &*registered.sleep as *const _)
    }

    /// Whether `sleep` elapsed, polled once.
    async fn elapsed(sleep: &mut Pin<Box<dyn Sleep>>) -> bool {
        poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_ready())).await
    }

    /// A connection's timer after one head read within `timeout`: that head's tokio sleep,
    /// due `timeout` from now, is the spare.
    async fn after_a_head(timeout: Duration) -> HeadTimer {
        let timer = HeadTimer::default();
        let mut first = timer.sleep(timeout);
        assert!(!elapsed(&mut first).await);
        drop(first);
        timer
    }

    #[tokio::test(start_paused = true)]
    async fn every_head_of_a_connection_reuses_the_one_tokio_sleep() {
        let timer = after_a_head(Duration::from_secs(10)).await;
        let reused = spare_address(&timer).expect("the sleep went back to the connection");
        let mut second = timer.sleep(Duration::from_secs(10));
        assert_eq!(spare_address(&timer), None, "the second head took it");
        assert!(!elapsed(&mut second).await);
        drop(second);
        assert_eq!(spare_address(&timer), Some(reused));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_sleep_elapses_at_its_new_deadline_not_the_old_one() {
        let timer = after_a_head(Duration::from_secs(1)).await;
        let mut later = timer.sleep(Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!elapsed(&mut later).await, "the old deadline passed");
        tokio::time::advance(Duration::from_millis(3_010)).await;
        assert!(elapsed(&mut later).await, "the new deadline passed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_taken_after_the_old_deadline_fired_elapses_at_its_own() {
        let timer = after_a_head(Duration::from_secs(1)).await;
        // A request longer than the header read timeout: the spare's deadline passes.
        tokio::time::advance(Duration::from_secs(3)).await;
        let mut next = timer.sleep(Duration::from_secs(1));
        assert!(!elapsed(&mut next).await);
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert!(elapsed(&mut next).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_moves_the_deadline_earlier_too_and_a_second_sleep_gets_its_own() {
        let timer = HeadTimer::default();
        let mut sleep = timer.sleep(Duration::from_secs(10));
        assert!(!elapsed(&mut sleep).await);
        timer.reset(&mut sleep, timer.now() + Duration::from_secs(1));
        let mut other = timer.sleep(Duration::from_secs(30));
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert!(elapsed(&mut sleep).await);
        assert!(!elapsed(&mut other).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_due_before_the_reused_sleep_elapses_at_its_own_deadline() {
        let timer = after_a_head(Duration::from_secs(10)).await;
        let mut sooner = timer.sleep(Duration::from_secs(1));
        assert!(!elapsed(&mut sooner).await);
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert!(elapsed(&mut sooner).await);
    }

    /// A waker that counts its wakes.
    fn counting() -> (Waker, Arc<AtomicUsize>) {
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        (Waker::from(Arc::new(Count(count.clone()))), count)
    }

    fn poll_with(sleep: &mut Pin<Box<dyn Sleep>>, waker: &Waker) -> bool {
        sleep
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_not_polled_again_for_the_same_task_still_wakes_that_task() {
        let (task, woken) = counting();
        let timer = HeadTimer::default();
        let mut first = timer.sleep(Duration::from_secs(1));
        assert!(!poll_with(&mut first, &task));
        drop(first);
        let mut second = timer.sleep(Duration::from_secs(1));
        assert!(!poll_with(&mut second, &task));
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(poll_with(&mut second, &task));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_by_another_task_moves_the_wake_to_that_task() {
        let (first_task, first_woken) = counting();
        let (other_task, other_woken) = counting();
        let timer = HeadTimer::default();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        assert!(!poll_with(&mut sleep, &first_task));
        assert!(!poll_with(&mut sleep, &other_task));
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert_eq!(other_woken.load(Ordering::SeqCst), 1);
        assert_eq!(first_woken.load(Ordering::SeqCst), 0);
        assert!(poll_with(&mut sleep, &other_task));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_out_of_budget_is_not_taken_for_a_registration() {
        let (task, woken) = counting();
        let timer = HeadTimer::default();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        poll_fn(|cx| {
            while tokio::task::coop::has_budget_remaining() {
                let _ = std::pin::pin!(tokio::task::coop::consume_budget()).poll(cx);
            }
            assert!(!poll_with(&mut sleep, &task));
            Poll::Ready(())
        })
        .await;
        tokio::task::yield_now().await;
        assert!(tokio::task::coop::has_budget_remaining());
        assert!(!poll_with(&mut sleep, &task));
        // tokio wakes a task it refuses for want of budget: that wake is not the timer's.
        let before = woken.load(Ordering::SeqCst);
        tokio::time::advance(Duration::from_millis(1_010)).await;
        assert_eq!(
            woken.load(Ordering::SeqCst),
            before + 1,
            "the second poll registered"
        );
    }
}
