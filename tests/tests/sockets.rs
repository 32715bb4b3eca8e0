//! Socket URIs end to end: a unix socket served by forked workers, and start-up errors.

use std::{
    os::{
        fd::AsRawFd,
        unix::{fs::PermissionsExt, net::UnixStream, process::CommandExt},
    },
    process::Command,
    time::Duration,
};

use buvar_tests::http::{connect_tcp, get};
use buvar_tests::prefork::Server;
use nix::sys::signal::Signal;

#[test]
fn workers_serve_over_a_unix_socket_that_is_removed_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.sock");
    let uri = format!("unix://{}", path.display());
    let mut server = Server::start(&["--bind", &uri, "--workers", "2", "--unix-mode", "600"]);
    let workers = server.wait_ready(2);
    assert_eq!(server.bound, [uri]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let response = get(UnixStream::connect(&path).unwrap(), "/pid").unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let pid: u32 = response.body.parse().unwrap();
    assert!(workers.contains(&pid));

    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert!(!path.exists(), "the socket file was left behind");
}

#[test]
fn a_bad_uri_is_an_error_naming_it() {
    let err = Server::try_start(&["--bind", "ftp://127.0.0.1:21"])
        .err()
        .unwrap();
    assert!(err.contains("`ftp://127.0.0.1:21`"), "{err}");
    assert!(err.contains("unknown scheme"), "{err}");

    let err = Server::try_start(&["--bind", "tcp://127.0.0.1"])
        .err()
        .unwrap();
    assert!(err.contains("`tcp://127.0.0.1` is malformed"), "{err}");
}

#[test]
fn a_port_in_use_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Server::try_start(&["--bind", &format!("tcp://{addr}")])
        .err()
        .unwrap();
    assert!(
        err.contains(&format!("address tcp://{addr} is already in use")),
        "{err}"
    );
}

#[test]
fn sockets_from_systemd_activation_are_used_instead_of_bound() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(Server::binary())
        .args(["--bind", &format!("tcp://{addr}"), "--workers", "2"]);
    // SAFETY: dup2 and fcntl are async-signal-safe and touch only the child's descriptors.
    unsafe {
        command.pre_exec(move || {
            use nix::fcntl::{FcntlArg, FdFlag, fcntl};
            nix::unistd::dup2(fd, 3)?;
            fcntl(3, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }

    // Binding the address again would fail: it is in use by `listener` here.
    let mut server = Server::spawn(command).expect("the server adopts the socket");
    let workers = server.wait_ready(2);
    drop(listener);

    assert_eq!(server.bound, [format!("tcp://{addr}")]);
    let response = get(connect_tcp(&addr.to_string()).unwrap(), "/pid").unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let pid: u32 = response.body.parse().unwrap();
    assert!(workers.contains(&pid));
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}
