//! The supervisor keeping a service up: heartbeat, recycling after `max_requests`, scaling with
//! SIGTTIN/SIGTTOU, sd_notify readiness, dropped privileges, and running as pid 1. Real
//! processes, sockets and signals.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use buvar_tests::http;
use buvar_tests::notify::NotifySocket;
use buvar_tests::prefork::{Server, alive, client, eventually, load, workers_of};
use buvar_tests::processes;
use nix::sys::signal::Signal;

const LOCAL: &str = "tcp://127.0.0.1:0";

/// Whether `signal` is still pending (sent but not yet read from the signalfd) for `pid`.
fn pending(pid: i32, signal: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("ShdPnd:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal as i32 - 1)) != 0)
}

/// Sends `signal` and waits until the supervisor has read it, so the next one cannot merge
/// with it (standard signals do not queue).
fn deliver(server: &Server, signal: Signal) {
    server.signal(signal);
    assert!(
        eventually(Duration::from_secs(5), || !pending(
            server.pid().as_raw(),
            signal
        )),
        "{signal} never read"
    );
}

fn zombies_of(parent: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent && p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// `GET path` over a fresh connection; the body of a 200 answer, or `None`.
fn get(server: &Server, path: &str) -> Option<String> {
    let response = http::get(http::connect_tcp(&server.addr()).ok()?, path).ok()?;
    (response.status == 200).then_some(response.body)
}

fn start_notified(args: &[&str], notify: &NotifySocket) -> Server {
    let mut command = std::process::Command::new(Server::binary());
    command.args(args).env("NOTIFY_SOCKET", &notify.path);
    Server::spawn(command).expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_blocked_runtime_is_replaced_but_a_long_async_request_is_not() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--heartbeat-ms", "400"]);
    let workers = server.wait_ready(2);

    // Busy for almost four heartbeat timeouts, but the runtime keeps ticking.
    let http = client(false);
    let slow = http.get(server.url("/slow?ms=1500")).send().await.unwrap();
    assert_eq!(slow.text().await.unwrap(), "slow done");
    assert!(
        workers.iter().all(|pid| alive(*pid)),
        "a busy worker was killed"
    );
    assert_eq!(server.ready.len(), 2);

    let started = Instant::now();
    let blocked_request = tokio::spawn(http.get(server.url("/block?ms=30000")).send());
    let blocked: u32 = server
        .wait_event("BLOCK", 0)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let replacement = server.wait_ready(3)[2];
    assert!(!workers.contains(&replacement));
    assert!(
        eventually(Duration::from_secs(5), || !alive(blocked)),
        "the blocked worker still runs"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "replaced only after {:?}",
        started.elapsed()
    );
    // The request in flight on the blocked worker is the one casualty.
    assert!(blocked_request.await.unwrap().is_err());
    let after = http.get(server.url("/pid")).send().await.unwrap();
    assert!(after.status().is_success());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_after_max_requests_without_a_failed_request() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--max-requests", "50"]);
    let first = server.wait_ready(2);

    let seen = load(
        client(true),
        server.url("/pid"),
        4,
        Some(400),
        Arc::new(AtomicBool::new(false)),
    )
    .await;

    assert_eq!(seen.ok, 400, "failures: {:?}", seen.failed);
    assert_eq!(seen.refused, 0);
    // 400 responses at 50 per worker: at least six workers were replaced.
    assert!(
        seen.pids.len() >= 6,
        "only {} workers answered",
        seen.pids.len()
    );
    assert!(
        eventually(Duration::from_secs(10), || first
            .iter()
            .all(|pid| !alive(*pid))),
        "the first workers were never retired"
    );
    assert!(
        eventually(Duration::from_secs(10), || server.workers().len() == 2),
        "{} workers instead of 2",
        server.workers().len()
    );
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn sigttin_adds_a_worker_and_sigttou_removes_one_but_never_the_last() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--graceful-ms", "2000"]);
    server.wait_ready(2);
    let count = |server: &Server, n: usize| {
        eventually(Duration::from_secs(10), || server.workers().len() == n)
    };

    deliver(&server, Signal::SIGTTIN);
    server.wait_ready(3);
    assert!(count(&server, 3), "{:?}", server.workers());

    deliver(&server, Signal::SIGTTOU);
    deliver(&server, Signal::SIGTTOU);
    assert!(count(&server, 1), "{:?}", server.workers());
    // Refused: with the last slot removed, the SIGTTIN below would leave one worker, not two.
    deliver(&server, Signal::SIGTTOU);
    deliver(&server, Signal::SIGTTIN);
    server.wait_ready(4);
    assert!(count(&server, 2), "{:?}", server.workers());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_worker_stopped_microseconds_after_fork_still_stops() {
    // SIGTTIN and SIGTTOU read in one go: the new worker is told to stop right after fork,
    // while it still holds the supervisor's signalfd; it must not swallow that SIGTERM.
    // A worker that ignores its stop is killed at the deadline and the exit status says so;
    // 10 s leaves a worker that is merely slow to start on a loaded machine time to stop.
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--graceful-ms", "10000"]);
    server.wait_ready(2);
    for _ in 0..30 {
        server.signal(Signal::SIGTTIN);
        server.signal(Signal::SIGTTOU);
        assert!(
            eventually(Duration::from_secs(5), || {
                !pending(server.pid().as_raw(), Signal::SIGTTIN)
                    && !pending(server.pid().as_raw(), Signal::SIGTTOU)
            }),
            "signals never read"
        );
    }
    assert!(
        eventually(Duration::from_secs(20), || server.workers().len() == 2),
        "a stopped worker lingers: {:?}",
        server.workers()
    );
    server.signal(Signal::SIGTERM);
    // Exit status 1 would mean some worker ignored its stop and had to be killed.
    assert!(server.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn a_storm_of_100_hup_ttin_ttou_signals_settles_at_the_right_count_without_zombies() {
    let notify = NotifySocket::new();
    let mut server = start_notified(
        &["--bind", LOCAL, "--workers", "2", "--graceful-ms", "2000"],
        &notify,
    );
    notify.until(|m| m.starts_with("READY=1"));
    let supervisor = server.pid().as_raw();

    // A fixed pseudo-random mix, so a failure can be replayed.
    let mut state: u32 = 0x2545_f491;
    let mut expected = 2usize;
    for _ in 0..100 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let signal = match state % 3 {
            0 => Signal::SIGHUP,
            1 if expected < 6 => Signal::SIGTTIN,
            _ => Signal::SIGTTOU,
        };
        match signal {
            Signal::SIGTTIN => expected += 1,
            Signal::SIGTTOU => expected = (expected - 1).max(1),
            _ => {}
        }
        deliver(&server, signal);
    }

    // Scaling only updates STATUS; READY=1 follows startup and each rolling restart.
    let status = format!("STATUS={expected}/{expected} workers ready");
    let (mut state, mut last_status) = (String::new(), String::new());
    let ok = eventually(Duration::from_secs(30), || {
        while let Some(message) = notify.next(Duration::from_millis(1)) {
            for line in message.lines() {
                match line {
                    "READY=1" | "RELOADING=1" => state = line.to_owned(),
                    _ if line.starts_with("STATUS=") => last_status = line.to_owned(),
                    _ => {}
                }
            }
        }
        state == "READY=1" && last_status == status && server.workers().len() == expected
    });
    assert!(
        ok,
        "expected {expected} workers, have {:?}; last {state:?} {last_status:?}",
        server.workers()
    );
    assert!(alive(supervisor as u32));
    assert!(
        eventually(Duration::from_secs(5), || zombies_of(supervisor).is_empty()),
        "zombies: {:?}",
        zombies_of(supervisor)
    );
    assert!(get(&server, "/pid").is_some());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let _ = &mut server;
}

#[test]
fn sd_notify_says_ready_once_every_worker_is_ready_and_reloading_around_a_restart() {
    let notify = NotifySocket::new();
    let mut server = start_notified(&["--bind", LOCAL, "--workers", "3"], &notify);

    let startup = notify.until(|m| m.starts_with("READY=1"));
    assert_eq!(
        startup.last().unwrap(),
        "READY=1\nSTATUS=3/3 workers ready",
        "{startup:?}"
    );
    for early in &startup[..startup.len() - 1] {
        assert!(
            early.starts_with("STATUS=") && !early.starts_with("STATUS=3/3"),
            "{startup:?}"
        );
    }
    // Every worker had said READY before the supervisor did.
    assert_eq!(server.wait_ready(3).len(), 3);

    server.signal(Signal::SIGHUP);
    let reload = notify.until(|m| m.starts_with("READY=1"));
    assert!(
        reload[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload:?}"
    );
    assert_eq!(reload.last().unwrap(), "READY=1\nSTATUS=3/3 workers ready");
    assert_eq!(server.wait_ready(6).len(), 6);

    server.signal(Signal::SIGTERM);
    let stopping = notify.until(|m| m == "STOPPING=1");
    assert_eq!(stopping.last().unwrap(), "STOPPING=1");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn workers_drop_to_nobody_nogroup_and_still_die_with_the_supervisor() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: dropping privileges needs the tests to run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unix = format!("unix://{}", dir.path().join("svc.sock").display());
    let mut server = Server::start(&[
        "--bind",
        LOCAL,
        "--bind",
        &unix,
        "--workers",
        "2",
        "--user",
        "nobody",
        "--group",
        "nogroup",
        "--unix-mode",
        "600",
    ]);
    let workers = server.wait_ready(2);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid;
    for pid in &workers {
        assert_eq!(
            buvar_tests::proc_status(*pid, "Uid:"),
            format!("{nobody} {nobody} {nobody} {nobody}")
        );
        assert_eq!(
            buvar_tests::proc_status(*pid, "Gid:"),
            format!("{nogroup} {nogroup} {nogroup} {nogroup}")
        );
        assert_eq!(buvar_tests::proc_status(*pid, "Groups:"), "");
    }
    assert_eq!(
        buvar_tests::proc_status(server.pid().as_raw() as u32, "Uid:"),
        "0 0 0 0",
        "the supervisor keeps root"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("svc.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Set after the drop, the parent-death signal survived it.
    let pdeathsig = get(&server, "/pdeathsig").unwrap();
    assert_eq!(pdeathsig, (Signal::SIGTERM as i32).to_string());

    nix::sys::signal::kill(server.pid(), Signal::SIGKILL).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || workers
            .iter()
            .all(|pid| !alive(*pid))),
        "workers outlived their supervisor"
    );
    let _ = &mut server;
}

/// The host pid of a process whose pid is `inner` in the pid namespace of `init` (host pid).
fn host_pid(init: i32, inner: i32) -> Option<i32> {
    let inner = inner.to_string();
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    processes().into_iter().map(|p| p.pid).find(|pid| {
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            == Some(&ns)
            && buvar_tests::proc_status(*pid as u32, "NSpid:")
                .split(' ')
                .next_back()
                == Some(inner.as_str())
    })
}

#[test]
fn as_pid_1_the_supervisor_reaps_orphans() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("SKIPPED: `unshare --pid --fork` is not available here");
        return;
    }
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--pid", "--fork"])
        .arg(Server::binary())
        .args(["--bind", LOCAL, "--workers", "2"]);
    let mut server = Server::spawn(command).expect("server starts");
    server.wait_ready(2);
    let init = workers_of(server.pid())[0];
    assert_eq!(
        buvar_tests::proc_status(init as u32, "NSpid:")
            .split(' ')
            .next_back(),
        Some("1")
    );

    let inner: i32 = get(&server, "/orphan").unwrap().parse().unwrap();
    // The orphan lives half a second: long enough to see whom it was reparented to.
    let orphan = host_pid(init, inner).expect("the orphan is running");
    assert_eq!(
        processes().iter().find(|p| p.pid == orphan).map(|p| p.ppid),
        Some(init),
        "the orphan was not reparented to the supervisor"
    );
    assert!(
        eventually(Duration::from_secs(5), || !processes()
            .iter()
            .any(|p| p.pid == orphan)),
        "the orphan was never reaped"
    );
    assert!(
        zombies_of(init).is_empty(),
        "zombies: {:?}",
        zombies_of(init)
    );
    let _ = &mut server;
}
