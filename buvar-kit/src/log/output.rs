//! Standard output that never blocks the process that logs.
//!
//! A log collector that stops reading (journald under pressure, a full container log pipe,
//! `service | sleep 600`) must not stop the process: a pre-fork supervisor blocked in a pipe
//! write no longer reaps, replaces or stops its workers, and a worker blocked there no longer
//! stops. Lines that cannot be written at once wait in a bounded backlog; what does not fit
//! is dropped and counted, and [`flush`] reports the count once the output drains.
//!
//! Non-blocking without touching anyone else's descriptor: `O_NONBLOCK` belongs to the open
//! file, which every process of the service shares, so setting it on fd 1 would make a plain
//! `println!` elsewhere fail. A pipe, FIFO or terminal is opened again through
//! `/proc/self/fd/1` (a new open file of the same pipe, non-blocking for us alone); a socket
//! is written with `MSG_DONTWAIT`; a regular file never blocks for long and is written as is.
//! No thread is involved, so this is safe before fork and in a single-threaded supervisor.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// The most bytes kept waiting for a stalled output; lines beyond it are dropped.
const BACKLOG_LIMIT: usize = 256 * 1024;

/// How the bytes reach the output.
#[derive(Debug)]
enum Target {
    /// A descriptor of our own with `O_NONBLOCK` (or a regular file, which does not block).
    File(File),
    /// A socket shared with others: `send` with `MSG_DONTWAIT` leaves its flags alone.
    Socket(socket2::Socket),
}

impl Target {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(file) => file.write(bytes),
            Target::Socket(socket) => {
                socket.send_with_flags(bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
            }
        }
    }
}

/// The output, its backlog and what was dropped.
#[derive(Debug)]
pub(super) struct Sink {
    target: Target,
    backlog: VecDeque<u8>,
    limit: usize,
    dropped: u64,
    /// Set once the backlog cannot be written for a reason other than a full output (the
    /// reader is gone): nothing is kept from then on.
    broken: bool,
    /// The process whose lines the backlog holds: a forked worker inherits a copy of its
    /// parent's backlog, which is the parent's to write, not the worker's.
    owner: u32,
}

impl Sink {
    fn new(target: Target, limit: usize) -> Self {
        Self {
            target,
            backlog: VecDeque::new(),
            limit,
            dropped: 0,
            broken: false,
            owner: std::process::id(),
        }
    }

    /// Forgets what a parent process left in the backlog before it forked this one.
    fn adopt(&mut self) {
        let pid = std::process::id();
        if self.owner != pid {
            self.owner = pid;
            self.backlog.clear();
            self.dropped = 0;
        }
    }

    /// Writes as much of the backlog as the output takes now; whether it is empty.
    fn drain(&mut self) -> bool {
        while !self.backlog.is_empty() && !self.broken {
            let (front, _) = self.backlog.as_slices();
            match self.target.write(front) {
                Ok(0) => return false,
                Ok(written) => {
                    self.backlog.drain(..written);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    self.broken = true;
                    self.backlog.clear();
                }
            }
        }
        self.backlog.is_empty()
    }

    /// Writes one line now if the output takes it, else keeps it (or what the output did not
    /// take of it) in the backlog, else drops it whole.
    fn push(&mut self, line: &[u8]) {
        if self.broken {
            return;
        }
        let mut rest = line;
        if self.drain() {
            loop {
                match self.target.write(rest) {
                    Ok(written) if written >= rest.len() => return,
                    Ok(0) => break,
                    Ok(written) => rest = &rest[written..],
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.broken = true;
                        return;
                    }
                }
            }
        }
        // A line the output started on must be finished, or the next one would be glued to
        // half of it; only whole lines are dropped.
        let started = rest.len() < line.len();
        if started || self.backlog.len() + rest.len() <= self.limit {
            self.backlog.extend(rest);
        } else {
            self.dropped += 1;
        }
    }

    /// Drains the backlog; once it is empty, hands over how many lines were dropped.
    fn flush(&mut self) -> Option<u64> {
        (self.drain() && self.dropped > 0).then(|| std::mem::take(&mut self.dropped))
    }
}

fn sink() -> &'static Mutex<Option<Sink>> {
    static SINK: OnceLock<Mutex<Option<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| Mutex::new(open_stdout().map(|target| Sink::new(target, BACKLOG_LIMIT))))
}

fn lock() -> MutexGuard<'static, Option<Sink>> {
    let mut sink = sink().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sink) = sink.as_mut() {
        sink.adopt();
    }
    sink
}

/// A non-blocking way to write this process's standard output; `None` when it is closed.
fn open_stdout() -> Option<Target> {
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let file = File::from(fd);
    let kind = file.metadata().ok()?.file_type();
    if kind.is_socket() {
        return Some(Target::Socket(socket2::Socket::from(
            std::os::fd::OwnedFd::from(file),
        )));
    }
    if kind.is_fifo() || kind.is_char_device() {
        let reopened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/proc/self/fd/1");
        // Without /proc (or for a FIFO nobody reads) the shared descriptor is the fallback.
        return Some(Target::File(reopened.unwrap_or(file)));
    }
    Some(Target::File(file))
}

/// Standard output as a [`MakeWriter`] that never blocks: see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stdout;

/// One event's bytes, written when dropped (tracing-subscriber writes a whole event at once).
#[derive(Debug)]
pub(super) struct StdoutLine;

impl Write for StdoutLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(sink) = lock().as_mut() {
            sink.push(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'writer> MakeWriter<'writer> for Stdout {
    type Writer = StdoutLine;

    fn make_writer(&'writer self) -> Self::Writer {
        StdoutLine
    }
}

/// Writes what waits in the backlog of the log output without blocking, and logs how many
/// lines were dropped once it is empty again.
///
/// [`init`](super::init) logs through this backlog; a loop that owns the process (the
/// pre-fork supervisor's poll loop, a worker's heartbeat) calls this now and then so that
/// lines do not wait for the next event. Without [`init`](super::init) it does nothing.
pub fn flush() {
    let dropped = lock().as_mut().and_then(Sink::flush);
    if let Some(dropped) = dropped {
        tracing::warn!(
            dropped,
            "log lines were dropped: the log output did not keep up (is the reader of stdout stalled?)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A pipe of one page whose write end is non-blocking, as the sink would see it.
    fn small_pipe() -> (File, Sink) {
        let (read, write) = std::io::pipe().unwrap();
        let write = File::from(std::os::fd::OwnedFd::from(write));
        let fd = write.as_fd().try_clone_to_owned().unwrap();
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let reopened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        drop((write, fd));
        let read = File::from(std::os::fd::OwnedFd::from(read));
        (read, Sink::new(Target::File(reopened), 4096))
    }

    #[test]
    fn a_stalled_reader_fills_the_backlog_then_lines_are_dropped_and_counted() {
        let (mut read, mut sink) = small_pipe();
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        // A pipe holds 64 KiB, the backlog 4 KiB: the rest is dropped, and nothing blocked.
        for _ in 0..2000 {
            sink.push(&line);
        }
        assert!(sink.backlog.len() <= 4096, "{}", sink.backlog.len());
        assert!(sink.dropped > 0);
        let dropped = sink.dropped;
        assert_eq!(sink.flush(), None, "a full pipe keeps the count");
        let mut got = Vec::new();
        let mut buf = vec![0; 1 << 16];
        let mut reported = None;
        while reported.is_none() {
            let n = read.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            reported = sink.flush();
        }
        assert_eq!(reported, Some(dropped));
        let n = read.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() % 100 == 0, "only whole lines: {}", got.len());
        assert!(got.chunks(100).all(|chunk| chunk == line.as_slice()));
        assert_eq!(got.len() as u64 / 100 + dropped, 2000);
    }

    #[test]
    fn a_stalled_socket_reader_never_blocks_the_writer() {
        let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut sink = Sink::new(
            Target::Socket(socket2::Socket::from(std::os::fd::OwnedFd::from(writer))),
            4096,
        );
        for _ in 0..100_000 {
            sink.push(b"a line nobody reads\n");
        }
        assert!(sink.dropped > 0);
        assert!(sink.backlog.len() <= 4096);
        drop(reader);
    }

    #[test]
    fn a_forked_process_does_not_write_its_parents_backlog() {
        let (_read, mut sink) = small_pipe();
        sink.backlog.extend(b"the parent's line\n");
        sink.dropped = 3;
        sink.owner = std::process::id() + 1;
        sink.adopt();
        assert!(sink.backlog.is_empty());
        assert_eq!(sink.dropped, 0);
        assert_eq!(sink.owner, std::process::id());
    }

    #[test]
    fn a_gone_reader_drops_everything_without_error() {
        let (read, mut sink) = small_pipe();
        drop(read);
        sink.push(b"one\n");
        sink.push(b"two\n");
        assert!(sink.broken);
        assert!(sink.backlog.is_empty());
    }
}
