//! Background jobs: fire-and-forget futures that are still tracked, limited and stopped.
//!
//! The stage puts a [`Jobs`] in the plugin context and stops it at teardown, before the
//! teardown steps run (jobs tend to use what those steps close).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::current::CurrentContext;
use crate::outcome::{TaskOutput, panic_message};

/// Spawns tracked background jobs, optionally at most `limit` at a time. A failed or panicked
/// job is logged with its name and error and counted; [`Jobs::shutdown`] cancels the rest and
/// waits for them.
///
/// ```
/// use buvar_kit::Jobs;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let jobs = Jobs::with_limit(2);
/// jobs.spawn("send mail", async { Ok::<_, std::io::Error>(()) });
/// jobs.spawn("refresh cache", async { Err::<(), _>(std::io::Error::other("cache down")) });
/// jobs.wait_idle().await;
/// assert_eq!(jobs.failed(), 1);
/// jobs.shutdown().await;
/// # });
/// ```
pub struct Jobs {
    tracker: TaskTracker,
    cancel: CancellationToken,
    limit: Option<Arc<Semaphore>>,
    failed: Arc<AtomicUsize>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.tracker.len())
            .field("failed", &self.failed())
            .field("stopped", &self.cancel.is_cancelled())
            .finish()
    }
}

impl Jobs {
    /// A runner without a concurrency limit.
    pub fn new() -> Self {
        Self {
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            limit: None,
            failed: Arc::default(),
        }
    }

    /// A runner that runs at most `limit` jobs at a time; the others wait their turn.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit: Some(Arc::new(Semaphore::new(limit.max(1)))),
            ..Self::new()
        }
    }

    /// Spawns `job` on the current tokio runtime, with the [current context](crate::Context::current)
    /// where it is spawned (a plain `tokio::spawn` would start it without one; see
    /// [`crate::spawn`]). Its output is `()` or `Result<T, E>`.
    pub fn spawn<F>(&self, name: impl Into<String>, job: F)
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
    {
        let name = name.into();
        if self.cancel.is_cancelled() {
            tracing::warn!(job = %name, "background jobs are shut down; job not started");
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cancel = self.cancel.clone();
        let limit = self.limit.clone();
        let failed = self.failed.clone();
        let job = CurrentContext::carry(job);
        self.tracker.spawn(async move {
            let _permit = match limit {
                Some(limit) => tokio::select! {
                    permit = limit.acquire_owned() => permit.ok(),
                    () = cancel.cancelled() => return,
                },
                None => None,
            };
            // A nested task, so that a panic is caught and reported like an error.
            let run = tokio::spawn(async move { job.await.into_task_result().map(drop) });
            let abort = run.abort_handle();
            let error = tokio::select! {
                joined = run => match joined {
                    Ok(Ok(())) => return,
                    Ok(Err(err)) => err.to_string(),
                    Err(err) if err.is_panic() => panic_message(err.into_panic()),
                    Err(err) => err.to_string(),
                },
                () = cancel.cancelled() => {
                    abort.abort();
                    tracing::debug!(job = %name, "background job cancelled");
                    return;
                }
            };
            failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job = %name, error = %error, "background job failed");
        });
    }

    /// How many jobs are running or waiting for a slot.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no job is running or waiting.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// How many jobs failed, panicked or were refused after shutdown.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until every job spawned so far has ended, without stopping the runner.
    pub async fn wait_idle(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }

    /// Cancels every job and waits for them to end; later spawns are refused (and logged).
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::{Barrier, oneshot};

    use super::*;

    fn explode(message: &str) {
        panic!("{message}")
    }

    #[tokio::test]
    async fn jobs_run_and_failures_are_counted() {
        let jobs = Jobs::new();
        let (tx, rx) = oneshot::channel();
        jobs.spawn("ok", async move {
            tx.send(7).ok();
        });
        jobs.spawn("fails", async {
            Err::<(), _>(std::io::Error::other("nope"))
        });
        jobs.spawn("panics", async { explode("job exploded") });
        assert_eq!(rx.await.unwrap(), 7);
        jobs.wait_idle().await;
        assert_eq!(jobs.failed(), 2);
        assert!(jobs.is_empty());
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_job_is_logged_with_its_name_and_error() {
        let lines = Lines::default();
        let writer = lines.clone();
        let config = crate::log::LogConfig {
            level: "info".into(),
            format: crate::log::LogFormat::Json,
        };
        let dispatch = crate::log::subscriber(&config, move || writer.clone()).unwrap();
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let jobs = Jobs::new();
        jobs.spawn("make error", async {
            Err::<(), _>(std::io::Error::other("foobar"))
        });
        jobs.wait_idle().await;
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let event: serde_json::Value = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .find(|event: &serde_json::Value| event["message"] == "background job failed")
            .expect("the failure is logged");
        assert_eq!(event["level"], "ERROR");
        assert_eq!(event["job"], "make error");
        assert_eq!(event["error"], "foobar");
    }

    #[tokio::test]
    async fn limit_bounds_how_many_jobs_run_at_once() {
        let jobs = Jobs::with_limit(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        for i in 0..8 {
            let running = running.clone();
            let peak = peak.clone();
            jobs.spawn(format!("job {i}"), async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        jobs.wait_idle().await;
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(jobs.failed(), 0);
    }

    #[tokio::test]
    async fn shutdown_cancels_running_jobs_and_waits_for_them() {
        let jobs = Jobs::new();
        let started = Arc::new(Barrier::new(2));
        let job_started = started.clone();
        jobs.spawn("forever", async move {
            job_started.wait().await;
            std::future::pending::<()>().await;
        });
        started.wait().await;
        assert_eq!(jobs.len(), 1);
        tokio::time::timeout(Duration::from_secs(5), jobs.shutdown())
            .await
            .expect("shutdown waits for cancelled jobs, not forever");
        assert!(jobs.is_empty());
    }

    #[tokio::test]
    async fn spawning_after_shutdown_is_refused_and_counted() {
        let jobs = Jobs::new();
        jobs.shutdown().await;
        jobs.spawn("late", async {});
        assert_eq!(jobs.failed(), 1);
        assert!(jobs.is_empty());
    }
}
