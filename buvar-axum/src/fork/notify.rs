//! Telling a service manager (systemd's `Type=notify`) how the supervisor is doing: the
//! `sd_notify` protocol, one datagram per state change to the socket named by `NOTIFY_SOCKET`.
//!
//! Not the `sd-notify` crate: its `notify` sends on a fresh, blocking socket on every call, so a
//! service manager whose receive queue is full would stall the supervisor's loop, which must
//! never block; here one socket is made non-blocking once and a message that does not fit is
//! dropped with a warning.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The socket named by `NOTIFY_SOCKET`, if the variable is set; otherwise every call does nothing.
#[derive(Debug)]
pub(super) struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    last_status: Option<(usize, usize)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`; a path, or `@name` for an abstract socket.
    pub(super) fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let address = address(path.as_encoded_bytes())?;
            // Non-blocking: a manager that stopped reading must never stall the supervisor's
            // loop (a full datagram queue would block a send); such a message is dropped.
            match UnixDatagram::unbound().and_then(|socket| {
                socket.set_nonblocking(true)?;
                Ok(socket)
            }) {
                Ok(socket) => Some((socket, address)),
                Err(error) => {
                    tracing::warn!(%error, "cannot open a socket to notify the service manager");
                    None
                }
            }
        });
        Self {
            target,
            last_status: None,
        }
    }

    /// Sends `READY=1` with the worker counts.
    pub(super) fn ready(&mut self, ready: usize, total: usize) {
        self.last_status = Some((ready, total));
        self.send(&format!("READY=1\nSTATUS={}", status(ready, total)));
    }

    /// Sends `RELOADING=1` (with the monotonic timestamp systemd's `notify-reload` asks for).
    pub(super) fn reloading(&mut self) {
        let micros = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|now| now.tv_sec() * 1_000_000 + now.tv_nsec() / 1_000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={micros}"));
    }

    /// Says that a config reload was refused and the workers serve on with what they have.
    pub(super) fn reload_failed(&mut self) {
        self.send("STATUS=config reload failed (see the log); serving with the previous config");
    }

    /// Says that a new program was started by SIGUSR2.
    pub(super) fn upgrading(&mut self) {
        self.send("STATUS=upgrading: waiting for the new program's workers");
    }

    /// Says that an upgrade failed and this generation serves on.
    pub(super) fn upgrade_failed(&mut self) {
        self.send("STATUS=upgrade failed (see the log); the previous program serves on");
    }

    /// Names this process as the service's main process (`MAINPID=`): a supervisor started by
    /// an upgrade takes over from the one the service manager started.
    pub(super) fn main_pid(&mut self) {
        self.send(&format!("MAINPID={}", std::process::id()));
    }

    /// Sends `STOPPING=1`.
    pub(super) fn stopping(&mut self) {
        self.send("STOPPING=1");
    }

    /// Sends `STATUS=` when the counts changed since the last one sent.
    pub(super) fn status(&mut self, ready: usize, total: usize) {
        if self.last_status == Some((ready, total)) {
            return;
        }
        self.last_status = Some((ready, total));
        self.send(&format!("STATUS={}", status(ready, total)));
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        // A manager that went away must not stop the service: report and carry on.
        if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
            tracing::warn!(%error, "cannot notify the service manager");
        }
    }
}

fn status(ready: usize, total: usize) -> String {
    format!("{ready}/{total} workers ready")
}

fn address(path: &[u8]) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    let parsed = match path.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(std::ffi::OsStr::from_bytes(path))),
    };
    match parsed {
        Ok(address) => Some(address),
        Err(error) => {
            tracing::warn!(%error, "NOTIFY_SOCKET is not a usable socket address; not notifying");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_as_datagrams_and_repeated_status_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                address(path.as_os_str().as_encoded_bytes()).unwrap(),
            )),
            last_status: None,
        };
        notifier.status(1, 2);
        notifier.status(1, 2);
        notifier.ready(2, 2);
        notifier.stopping();
        let mut got = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "STATUS=1/2 workers ready",
                "READY=1\nSTATUS=2/2 workers ready",
                "STOPPING=1"
            ]
        );
    }

    #[test]
    fn an_abstract_name_is_accepted() {
        let address = address(b"@buvar-test").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(address.as_abstract_name(), Some(&b"buvar-test"[..]));
    }
}
