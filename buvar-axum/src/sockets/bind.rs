//! Binding listening sockets once, before any worker exists.

use std::{
    io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
        unix::fs::{FileTypeExt, PermissionsExt},
    },
    path::Path,
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Listener, SocketError, SocketUri, activation};

/// How sockets are bound: the defaults, changed with the setters (the type may gain options,
/// so it is built only this way).
///
/// ```
/// use buvar_axum::sockets::BindOptions;
///
/// let options = BindOptions::default().backlog(4096).unix_mode(Some(0o660));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BindOptions {
    pub(crate) backlog: i32,
    pub(crate) unix_mode: Option<u32>,
    pub(crate) reuse_port: bool,
}

impl BindOptions {
    /// The length of the accept queue handed to `listen(2)` (default 1024).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The file mode of unix socket files (for example `0o660`); the umask applies when `None`
    /// (the default).
    pub fn unix_mode(mut self, mode: Option<u32>) -> Self {
        self.unix_mode = mode;
        self
    }

    /// Sets `SO_REUSEPORT` on TCP sockets. Off by default: one shared socket whose queue
    /// outlives any single worker loses fewer connections when a worker dies.
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }
}

impl Default for BindOptions {
    fn default() -> Self {
        Self {
            backlog: 1024,
            unix_mode: None,
            reuse_port: false,
        }
    }
}

/// A bound, listening, non-blocking socket that owns its descriptor.
///
/// Dropping it closes the descriptor; the process that bound a unix socket also removes its
/// file then (forked workers never do, so the file lives as long as the supervisor).
#[derive(Debug)]
pub struct BoundSocket {
    uri: SocketUri,
    local: SocketUri,
    socket: Socket,
    /// The pid that created the unix socket file and so removes it; `None` for TCP and
    /// for sockets handed over by systemd.
    file_owner: Option<nix::unistd::Pid>,
}

impl BoundSocket {
    /// The URI this socket was asked for, normalised; its name as a component.
    pub fn uri(&self) -> &SocketUri {
        &self.uri
    }

    /// The address the socket is actually bound to (a requested port 0 reads back the
    /// port the kernel chose).
    pub fn local_addr(&self) -> &SocketUri {
        &self.local
    }

    /// A tokio listener on a duplicate of the descriptor; call it inside a tokio runtime.
    ///
    /// The socket stays open as long as either this value or the listener lives.
    pub fn listener(&self) -> io::Result<Listener> {
        Listener::from_socket(self.socket.try_clone()?)
    }

    /// Turns the socket itself into a tokio listener; call it inside a tokio runtime.
    ///
    /// Unlike [`listener`](Self::listener) no descriptor stays behind, so when the listener is
    /// dropped this process stops holding the socket open.
    pub fn into_listener(mut self) -> io::Result<Listener> {
        self.file_owner = None;
        let socket = self.socket.try_clone()?;
        drop(self);
        Listener::from_socket(socket)
    }

    pub(crate) fn from_activation(uri: SocketUri, local: SocketUri, socket: Socket) -> Self {
        Self {
            uri,
            local,
            socket,
            file_owner: None,
        }
    }

    /// Leaves a unix socket's file in place when this value is dropped: a new program that
    /// took the socket over serves on it.
    #[cfg(target_os = "linux")]
    pub(crate) fn disown_file(&mut self) {
        self.file_owner = None;
    }
}

impl AsFd for BoundSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for BoundSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let (Some(owner), SocketUri::Unix(path)) = (self.file_owner, &self.uri) {
            if owner == nix::unistd::getpid() {
                if let Err(error) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), %error, "cannot remove unix socket file");
                }
            }
        }
    }
}

/// Binds every URI, or takes it over from systemd socket activation.
///
/// When `LISTEN_PID` is this process and `LISTEN_FDS` is set, the inherited sockets are used:
/// one whose address equals a requested URI stands in for it, and inherited sockets nobody
/// asked for are served too. Everything else is bound here with `SO_REUSEADDR`, the
/// configured backlog, and non-blocking mode. A stale unix socket file (nobody accepting on
/// it) is replaced.
///
/// ```
/// use buvar_axum::sockets::{BindOptions, SocketUri, bind, parse_uris};
///
/// let uris = parse_uris(["tcp://127.0.0.1:0"])?;
/// let sockets = bind(&uris, &BindOptions::default())?;
/// let SocketUri::Tcp(addr) = sockets[0].local_addr() else { unreachable!() };
/// assert_ne!(addr.port(), 0);
/// # Ok::<(), buvar_axum::sockets::SocketError>(())
/// ```
pub fn bind(uris: &[SocketUri], opts: &BindOptions) -> Result<Vec<BoundSocket>, SocketError> {
    let mut inherited = activation::take_listen_fds()?;
    let mut bound = Vec::with_capacity(uris.len() + inherited.len());
    for uri in uris {
        // The same socket asked for twice is bound once; port 0 asks for a new one each time.
        if !uri.is_any_port() && bound.iter().any(|socket: &BoundSocket| &socket.uri == uri) {
            continue;
        }
        if let Some(at) = inherited.iter().position(|socket| &socket.uri == uri) {
            bound.push(inherited.swap_remove(at));
        } else {
            bound.push(bind_one(uri, opts)?);
        }
    }
    for socket in inherited {
        tracing::info!(uri = %socket.uri, "serving a socket from systemd that was not configured");
        bound.push(socket);
    }
    Ok(bound)
}

fn bind_one(uri: &SocketUri, opts: &BindOptions) -> Result<BoundSocket, SocketError> {
    let io_err = |action| {
        let uri = uri.to_string();
        move |source| SocketError::Io {
            uri,
            action,
            source,
        }
    };
    let (socket, address, file_owner) = match uri {
        SocketUri::Tcp(addr) => {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)
                .map_err(io_err("create"))?;
            socket
                .set_reuse_address(true)
                .map_err(io_err("set SO_REUSEADDR on"))?;
            if addr.is_ipv6() {
                // Keeps `tcp://[::]:P` and `tcp://:P` bindable side by side.
                socket
                    .set_only_v6(true)
                    .map_err(io_err("set IPV6_V6ONLY on"))?;
            }
            if opts.reuse_port {
                socket
                    .set_reuse_port(true)
                    .map_err(io_err("set SO_REUSEPORT on"))?;
            }
            (socket, SockAddr::from(*addr), None)
        }
        SocketUri::Unix(path) => {
            remove_stale_socket_file(uri, path)?;
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err("create"))?;
            let address = SockAddr::unix(path).map_err(io_err("address"))?;
            (socket, address, Some(nix::unistd::getpid()))
        }
    };
    socket.bind(&address).map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            SocketError::AddressInUse {
                uri: uri.to_string(),
            }
        } else {
            io_err("bind")(source)
        }
    })?;
    // From here on the file exists and is ours, so dropping the value on error removes it.
    let mut bound = BoundSocket {
        local: uri.clone(),
        uri: uri.clone(),
        socket,
        file_owner,
    };
    if let (SocketUri::Unix(path), Some(mode)) = (uri, opts.unix_mode) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("set the file mode of"))?;
    }
    bound
        .socket
        .listen(opts.backlog)
        .map_err(io_err("listen on"))?;
    bound
        .socket
        .set_nonblocking(true)
        .map_err(io_err("make non-blocking"))?;
    if let SocketUri::Tcp(_) = uri {
        let local = bound
            .socket
            .local_addr()
            .map_err(io_err("read the address of"))?;
        if let Some(addr) = local.as_socket() {
            bound.local = SocketUri::Tcp(addr);
        }
    }
    Ok(bound)
}

/// Removes a socket file left behind by a server that is gone; refuses to touch anything
/// else, and reports a live server as an address in use.
fn remove_stale_socket_file(uri: &SocketUri, path: &Path) -> Result<(), SocketError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                uri: uri.to_string(),
                action: "inspect the file of",
                source,
            });
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.display().to_string(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(SocketError::AddressInUse {
            uri: uri.to_string(),
        });
    }
    tracing::info!(path = %path.display(), "replacing a stale unix socket file");
    std::fs::remove_file(path).map_err(|source| SocketError::Io {
        uri: uri.to_string(),
        action: "remove the stale file of",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_reads_back_the_chosen_port() {
        let uri: SocketUri = "tcp://127.0.0.1:0".parse().unwrap();
        let sockets = bind(std::slice::from_ref(&uri), &BindOptions::default()).unwrap();
        assert_eq!(sockets[0].uri(), &uri);
        let SocketUri::Tcp(addr) = sockets[0].local_addr() else {
            panic!("not tcp")
        };
        assert_ne!(addr.port(), 0);
        assert!(std::net::TcpStream::connect(addr).is_ok());
    }

    #[test]
    fn an_address_in_use_is_an_error_naming_it() {
        let first = bind(
            &["tcp://127.0.0.1:0".parse().unwrap()],
            &BindOptions::default(),
        )
        .unwrap();
        let taken = first[0].local_addr().clone();
        let err = bind(std::slice::from_ref(&taken), &BindOptions::default()).unwrap_err();
        assert!(matches!(err, SocketError::AddressInUse { .. }), "{err}");
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
    }

    #[test]
    fn unix_socket_file_is_replaced_when_stale_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a stale socket file is left behind");
        let uri = SocketUri::Unix(path.clone());
        let opts = BindOptions::default().unix_mode(Some(0o600));
        let sockets = bind(std::slice::from_ref(&uri), &opts).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(sockets);
        assert!(!path.exists());
    }

    #[test]
    fn a_live_unix_socket_is_an_address_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.sock");
        let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = bind(&[SocketUri::Unix(path.clone())], &BindOptions::default()).unwrap_err();
        assert!(matches!(err, SocketError::AddressInUse { .. }), "{err}");
        assert!(path.exists());
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.txt");
        std::fs::write(&path, "keep me").unwrap();
        let err = bind(&[SocketUri::Unix(path.clone())], &BindOptions::default()).unwrap_err();
        assert!(matches!(err, SocketError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }
}
