//! Helpers for the supervisor's tests: a log pipe nobody reads, and load that counts every
//! request.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// A pipe of one page for a child's stdout, which the test reads only when it chooses to: a
/// log collector that stalls.
#[derive(Debug)]
pub struct StalledPipe {
    reader: BufReader<File>,
    write: Option<OwnedFd>,
}

impl StalledPipe {
    /// A new pipe holding at most one page (4 KiB), so a few log lines fill it.
    ///
    /// # Panics
    ///
    /// When the pipe cannot be made.
    pub fn new() -> Self {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("a pipe");
        fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(4096)).expect("shrink the pipe");
        Self {
            reader: BufReader::new(File::from(read)),
            write: Some(write),
        }
    }

    /// The write end, for a child's stdout (once).
    ///
    /// # Panics
    ///
    /// When taken twice.
    pub fn stdout(&mut self) -> Stdio {
        Stdio::from(self.write.take().expect("the write end, once"))
    }

    /// The next line the child wrote (blocking until one comes); `None` at end of file.
    pub fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    }

    /// How many bytes wait in the pipe, unread.
    ///
    /// # Panics
    ///
    /// When the pipe cannot be asked.
    pub fn unread(&self) -> usize {
        let mut bytes: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which points at one.
        let done = unsafe {
            libc::ioctl(
                self.reader.get_ref().as_raw_fd(),
                libc::FIONREAD,
                &mut bytes,
            )
        };
        assert_eq!(done, 0, "FIONREAD: {}", std::io::Error::last_os_error());
        usize::try_from(bytes).unwrap_or(0)
    }

    /// Starts reading again: every further line, on a thread of its own.
    pub fn resume(self) -> std::sync::mpsc::Receiver<String> {
        crate::line_channel(self.reader)
    }
}

impl Default for StalledPipe {
    fn default() -> Self {
        Self::new()
    }
}

/// Live (non-zombie) processes in process group `pgrp`.
pub fn group_members(pgrp: u32) -> Vec<i32> {
    crate::processes()
        .into_iter()
        .filter(|p| i64::from(p.pgrp) == i64::from(pgrp) && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// What a [`CountedLoad`] saw: every request it sent is in exactly one count.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answered with 2xx.
    pub ok: usize,
    /// Never sent: the connection was refused, or reset while connecting (nothing listens any
    /// more; see [`is_refused`]).
    pub refused: usize,
    /// Sent and not answered with 2xx: errors, resets, other statuses.
    pub failed: Vec<String>,
    /// Each connection loop's 2xx bodies, in the order they arrived.
    pub answers: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
struct Counts {
    ok: AtomicUsize,
    refused: AtomicUsize,
    failed: Mutex<Vec<String>>,
    answers: Mutex<Vec<Vec<String>>>,
}

/// Keep-alive HTTP load, like `wrk -c N`: each connection sends its next request as soon as the
/// last is answered, until its connection is refused (the server is gone) or it is stopped.
#[derive(Debug)]
pub struct CountedLoad {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<()>,
}

impl CountedLoad {
    /// Starts `connections` loops of `GET url`; call it inside a tokio runtime.
    ///
    /// # Panics
    ///
    /// When no HTTP client can be built.
    pub fn start(url: &str, connections: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let counts = Arc::new(Counts::default());
        *counts.answers.lock().unwrap() = vec![Vec::new(); connections];
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for connection in 0..connections {
            let (client, url, counts, stop) =
                (client.clone(), url.to_owned(), counts.clone(), stop.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match client.get(&url).send().await {
                        Ok(response) if response.status().is_success() => {
                            match response.bytes().await {
                                Ok(body) => {
                                    counts.answers.lock().unwrap()[connection]
                                        .push(String::from_utf8_lossy(&body).into_owned());
                                    counts.ok.fetch_add(1, Ordering::SeqCst)
                                }
                                Err(error) => {
                                    counts
                                        .failed
                                        .lock()
                                        .unwrap()
                                        .push(format!("body: {error:?}"));
                                    continue;
                                }
                            };
                        }
                        Ok(response) => {
                            let status = response.status();
                            counts
                                .failed
                                .lock()
                                .unwrap()
                                .push(format!("status {status}"));
                        }
                        Err(error) if is_refused(&error) => {
                            counts.refused.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Err(error) => counts.failed.lock().unwrap().push(format!("{error:?}")),
                    }
                }
            });
        }
        Self {
            counts,
            stop,
            tasks,
        }
    }

    /// How many requests were answered so far.
    pub fn ok(&self) -> usize {
        self.counts.ok.load(Ordering::SeqCst)
    }

    /// How many answers so far had the body `text`.
    pub fn answered(&self, text: &str) -> usize {
        let answers = self.counts.answers.lock().unwrap();
        answers
            .iter()
            .flatten()
            .filter(|body| *body == text)
            .count()
    }

    /// How many answers each loop has had so far, in loop order: a mark to read
    /// [`Tally::answers`] from. Each loop has at most one request in flight, so its first answer
    /// after the mark may have been sent before it.
    pub fn marks(&self) -> Vec<usize> {
        self.counts
            .answers
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect()
    }

    /// Waits until `count` answers had the body `text`.
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub async fn wait_answered(&self, text: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.answered(text) < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} answers {text:?}",
                self.answered(text)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until `count` requests were answered.
    ///
    /// # Panics
    ///
    /// After 20 s.
    pub async fn wait_ok(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.ok() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} answered",
                self.ok()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for every loop to end by itself (its connection refused), within `within`; stops
    /// the rest; returns the counts.
    pub async fn finish(mut self, within: Duration) -> Tally {
        let all_ended = tokio::time::timeout(within, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        let mut tally = self.stop().await;
        if !all_ended {
            tally.failed.push(format!(
                "the server still accepted connections after {within:?}"
            ));
        }
        tally
    }

    /// Stops every loop once its request in flight is answered; returns the counts.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        while self.tasks.join_next().await.is_some() {}
        let failed = std::mem::take(&mut *self.counts.failed.lock().unwrap());
        Tally {
            ok: self.ok(),
            refused: self.counts.refused.load(Ordering::SeqCst),
            failed,
            answers: std::mem::take(&mut *self.counts.answers.lock().unwrap()),
        }
    }
}

/// Whether `error` is a refused connection (the request was never sent): refused, or reset
/// while connecting. A reset answers a connection attempt that meets the last listener of a
/// stopping service as it closes, a moment before a refusal would; a connection the kernel had
/// already queued fails later, while the request is sent, and is not counted here.
pub fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return true,
                std::io::ErrorKind::ConnectionReset if error.is_connect() => return true,
                _ => {}
            }
        }
        source = err.source();
    }
    false
}
