//! systemd socket activation: listening sockets handed over as descriptors 3, 4, ...

use std::{
    os::fd::{FromRawFd, RawFd},
    sync::atomic::{AtomicBool, Ordering},
};

use socket2::Socket;

use super::{BoundSocket, SocketError, SocketUri};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Descriptors can be adopted once per process; a second owner would close them twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Adopts the sockets systemd passed to this process, if any.
pub(super) fn take_listen_fds() -> Result<Vec<BoundSocket>, SocketError> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(Vec::new());
    };
    let activation = |reason: String| SocketError::Activation { reason };
    let pid: i32 = pid
        .trim()
        .parse()
        .map_err(|_| activation(format!("LISTEN_PID={pid} is not a process id")))?;
    if pid != nix::unistd::getpid().as_raw() {
        // Meant for the process that exec'd us, not for us.
        return Ok(Vec::new());
    }
    let count: RawFd = count
        .trim()
        .parse()
        .map_err(|_| activation(format!("LISTEN_FDS={count} is not a number")))?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':');
    (LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count))
        .map(|fd| adopt(fd, names.next()).map_err(activation))
        .collect()
}

/// A socket's name in `LISTEN_FDNAMES` when a binary upgrade hands it over: the URI it was
/// asked for, with `%` and the list separator `:` escaped.
#[cfg(target_os = "linux")]
pub(crate) fn fd_name(uri: &str) -> String {
    uri.replace('%', "%25").replace(':', "%3A")
}

/// The URI a `LISTEN_FDNAMES` entry names, if it is one [`fd_name`] made (systemd names
/// sockets after their unit unless `FileDescriptorName=` says otherwise).
fn uri_of_fd_name(name: &str) -> Option<SocketUri> {
    if !name.contains("%3A") {
        return None;
    }
    name.replace("%3A", ":").replace("%25", "%").parse().ok()
}

fn adopt(fd: RawFd, name: Option<&str>) -> Result<BoundSocket, String> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};

    fcntl(fd, FcntlArg::F_GETFD)
        .map_err(|errno| format!("descriptor {fd} is not open: {errno}"))?;
    // SAFETY: systemd hands these descriptors to this process, nothing else in it owns them,
    // and `TAKEN` makes sure they are adopted only once.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let fail = |what: &str, error: std::io::Error| format!("descriptor {fd}: {what}: {error}");
    // Only Linux says whether a socket listens; elsewhere a stream socket is taken on trust.
    #[cfg(target_os = "linux")]
    let listening = socket
        .is_listener()
        .map_err(|error| fail("not a socket", error))?;
    #[cfg(not(target_os = "linux"))]
    let listening = socket
        .r#type()
        .map_err(|error| fail("not a socket", error))?
        == socket2::Type::STREAM;
    if !listening {
        return Err(format!("descriptor {fd} is not a listening stream socket"));
    }
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|errno| format!("descriptor {fd}: cannot set close-on-exec: {errno}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|error| fail("cannot make non-blocking", error))?;
    let local = socket
        .local_addr()
        .map_err(|error| fail("no local address", error))?;
    let uri = if let Some(addr) = local.as_socket() {
        SocketUri::Tcp(addr)
    } else if let Some(path) = local.as_pathname() {
        SocketUri::Unix(path.to_owned())
    } else {
        return Err(format!(
            "descriptor {fd} is neither a TCP nor a unix path socket"
        ));
    };
    // Named by an upgrade: the URI asked for (a port 0, say), which the address never equals.
    let asked = name.and_then(uri_of_fd_name).unwrap_or_else(|| uri.clone());
    Ok(BoundSocket::from_activation(asked, uri, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_survives_its_fd_name() {
        for uri in [
            "tcp://127.0.0.1:0",
            "tcp://[::1]:8080",
            "unix:///run/a%b:c.sock",
        ] {
            let name = fd_name(uri);
            assert!(!name.contains(':'), "{name}");
            let back = uri_of_fd_name(&name).expect("a URI");
            assert_eq!(back, uri.parse::<SocketUri>().unwrap());
        }
        assert_eq!(uri_of_fd_name("app.socket"), None);
    }
}
