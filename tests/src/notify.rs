//! A stand-in for systemd's notify socket (`NOTIFY_SOCKET`): a real unix datagram socket whose
//! messages the tests read.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A unix datagram socket standing in for systemd's notify socket, read continuously (like
/// systemd does) so that its small queue never fills.
#[derive(Debug)]
pub struct NotifySocket {
    messages: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
    /// The socket's path, for `NOTIFY_SOCKET`.
    pub path: std::path::PathBuf,
}

impl NotifySocket {
    /// Binds a socket in a new temporary directory and starts reading it.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (tx, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = socket.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        Self {
            messages,
            _dir: dir,
            path,
        }
    }

    /// The next message, waiting up to `within`.
    pub fn next(&self, within: Duration) -> Option<String> {
        self.messages.recv_timeout(within).ok()
    }

    /// Messages until one satisfies `last` (included).
    ///
    /// # Panics
    ///
    /// After 20 s without one.
    pub fn until(&self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .next(left)
                .unwrap_or_else(|| panic!("no such message; got {seen:?}"));
            let done = last(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

impl Default for NotifySocket {
    fn default() -> Self {
        Self::new()
    }
}
