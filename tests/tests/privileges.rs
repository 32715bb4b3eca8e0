//! `[http] user`, `group` and `unix_mode` of a real `Service`: workers run as the configured
//! user after the supervisor bound the sockets as root.

use std::os::unix::fs::PermissionsExt;

use buvar_tests::service::{Service, run};

#[test]
fn configured_workers_run_as_nobody_and_the_unix_socket_gets_its_mode() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: dropping privileges needs the tests to run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("svc.sock");
    let toml = format!(
        "[http]\nsockets = [\"tcp://127.0.0.1:0\", \"unix://{}\"]\nforks = 2\n\
         user = \"nobody\"\ngroup = \"nogroup\"\nunix_mode = 0o660\n",
        socket.display()
    );
    let service = Service::start(&toml, &[], 2);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid;
    let workers = service.workers();
    assert_eq!(workers.len(), 2);
    for pid in workers {
        assert_eq!(
            buvar_tests::proc_status(pid as u32, "Uid:"),
            format!("{nobody} {nobody} {nobody} {nobody}")
        );
        assert_eq!(
            buvar_tests::proc_status(pid as u32, "Gid:"),
            format!("{nogroup} {nogroup} {nogroup} {nogroup}")
        );
        assert_eq!(buvar_tests::proc_status(pid as u32, "Groups:"), "");
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, _, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn an_unknown_user_fails_at_start_naming_it() {
    let out = run(
        "[http]\nport = 0\nforks = 2\nuser = \"no-such-user-buvar\"\n",
        &[],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-user-buvar"), "{stderr}");
}
