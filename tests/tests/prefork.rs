//! The pre-fork supervisor end to end: real processes, sockets, signals and HTTP.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use buvar_tests::prefork::{Server, alive, client, eventually, is_refused, load};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LOCAL: &str = "tcp://127.0.0.1:0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_serves_some_of_2000_new_connections() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "3"]);
    let workers: HashSet<u32> = server.wait_ready(3).into_iter().collect();
    assert_eq!(workers.len(), 3);

    let seen = load(
        client(false),
        server.url("/pid"),
        16,
        Some(2000),
        Arc::new(AtomicBool::new(false)),
    )
    .await;

    assert_eq!(seen.ok, 2000, "failures: {:?}", seen.failed);
    assert_eq!(
        seen.pids, workers,
        "every worker, and only workers, answered"
    );
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_replaced_and_no_connection_is_refused() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2"]);
    let workers = server.wait_ready(2);
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(
        client(false),
        server.url("/pid"),
        8,
        None,
        stop.clone(),
    ));

    // Let the load reach both workers before killing one.
    let probe = client(false);
    for _ in 0..50 {
        probe.get(server.url("/pid")).send().await.unwrap();
    }
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).unwrap();
    let replacement = server.wait_ready(3)[2];
    assert!(!workers.contains(&replacement));
    // Keep the load on until the replacement has answered some of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served_by_replacement = false;
    while !served_by_replacement && Instant::now() < deadline {
        let body = probe.get(server.url("/pid")).send().await.unwrap();
        served_by_replacement = body.text().await.unwrap() == replacement.to_string();
    }
    stop.store(true, Ordering::SeqCst);
    let seen = running.await.unwrap();

    eprintln!(
        "kill -9 under load: {} ok, {} refused, {} failed",
        seen.ok,
        seen.refused,
        seen.failed.len()
    );
    assert!(served_by_replacement, "the replacement never answered");
    assert_eq!(seen.refused, 0, "connections were refused");
    assert!(seen.ok > 100, "the service kept answering: {} ok", seen.ok);
    // Only requests in flight on the killed worker may fail.
    assert!(seen.failed.len() <= 8, "failures: {:?}", seen.failed);
    assert!(seen.pids.contains(&workers[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_keep_alive_load_fails_no_request_and_replaces_every_worker() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2"]);
    let old = server.wait_ready(2);
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(
        client(true),
        server.url("/pid"),
        8,
        None,
        stop.clone(),
    ));
    let probe = client(false);
    for _ in 0..20 {
        probe.get(server.url("/pid")).send().await.unwrap();
    }

    server.signal(Signal::SIGHUP);
    let new = server.wait_ready(4)[2..].to_vec();
    assert!(
        eventually(Duration::from_secs(10), || old
            .iter()
            .all(|pid| !alive(*pid))),
        "old workers still running"
    );
    // The keep-alive clients must have moved to the new workers.
    let before = running_ok_after_switch(&server).await;
    stop.store(true, Ordering::SeqCst);
    let seen = running.await.unwrap();

    eprintln!(
        "SIGHUP under keep-alive load: {} ok, {} failed",
        seen.ok,
        seen.failed.len()
    );
    assert!(seen.failed.is_empty(), "failed requests: {:?}", seen.failed);
    assert_eq!(seen.refused, 0);
    assert!(seen.pids.iter().any(|pid| new.contains(pid)));
    assert_eq!(before, new.iter().copied().collect::<HashSet<_>>());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

/// The pids answering 200 fresh connections.
async fn running_ok_after_switch(server: &Server) -> HashSet<u32> {
    let seen = load(
        client(false),
        server.url("/pid"),
        4,
        Some(200),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert_eq!(seen.ok, 200, "{:?}", seen.failed);
    seen.pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_slow_request_then_refuses_and_exits_0() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--graceful-ms", "10000"]);
    server.wait_ready(2);
    let slow = tokio::spawn(client(false).get(server.url("/slow?ms=1500")).send());
    server.wait_event("SLOW", 0);

    server.signal(Signal::SIGTERM);
    let addr = server.addr();
    let refused = eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(&addr)
            .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    assert!(refused, "new connections were not refused after SIGTERM");
    let later = client(false).get(server.url("/pid")).send().await;
    assert!(later.as_ref().is_err_and(is_refused), "{later:?}");

    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slow done");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        eventually(Duration::from_secs(2), || server.group_members().is_empty()),
        "left behind: {:?}",
        server.group_members()
    );
}

#[test]
fn killing_the_supervisor_takes_the_workers_down_and_frees_the_port() {
    let graceful = Duration::from_millis(2000);
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--graceful-ms", "2000"]);
    server.wait_ready(2);
    let addr = server.addr();

    server.signal(Signal::SIGKILL);
    let killed = Instant::now();
    server.wait_exit(Duration::from_secs(5));
    let gone = eventually(graceful + Duration::from_secs(1), || {
        server.group_members().is_empty()
    });

    eprintln!(
        "workers gone {:?} after the supervisor was killed",
        killed.elapsed()
    );
    assert!(gone, "orphans: {:?}", server.group_members());
    assert!(killed.elapsed() <= graceful + Duration::from_secs(1));
    std::net::TcpListener::bind(&addr).expect("the port can be bound again");
}

#[test]
fn fifty_sighups_leave_one_thread_and_the_same_open_files() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2"]);
    server.wait_ready(2);
    let pid = server.pid();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let threads = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count()
    };
    // At rest the supervisor holds two pipes per live worker, shared with that worker only
    // (its status pipe and its release pipe), and every other pipe (stdout, stderr, the parent
    // watch, inherited ones) is shared with every worker: a pipe of a gone worker would be
    // shared with none.
    let at_rest = || {
        let workers = buvar_tests::prefork::workers_of(pid);
        let held: Vec<usize> = buvar_tests::prefork::pipes(pid.as_raw())
            .iter()
            .map(|pipe| {
                workers
                    .iter()
                    .filter(|w| buvar_tests::prefork::pipes(**w).contains(pipe))
                    .count()
            })
            .collect();
        workers.len() == 2
            && held.iter().all(|n| *n == 1 || *n == workers.len())
            && held.iter().filter(|n| **n == 1).count() == 2 * workers.len()
    };
    assert!(eventually(Duration::from_secs(5), at_rest), "never at rest");
    let baseline = fds();

    let started = Instant::now();
    for round in 1..=50 {
        server.signal(Signal::SIGHUP);
        server.wait_ready(2 + 2 * round);
    }
    let settled = eventually(Duration::from_secs(10), at_rest);
    eprintln!(
        "50 rolling restarts of 2 workers took {:?}",
        started.elapsed()
    );

    assert!(settled, "workers: {:?}", server.workers());
    assert_eq!(server.ready.len(), 102);
    assert_eq!(threads(), 1);
    assert_eq!(fds(), baseline, "open files after 50 rollouts");
    let newest: Vec<i32> = server.ready[100..].iter().map(|pid| *pid as i32).collect();
    let mut running = server.workers();
    running.sort_unstable();
    let mut expected = newest.clone();
    expected.sort_unstable();
    assert_eq!(running, expected);
}

#[test]
fn the_supervisor_exits_non_zero_when_no_worker_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    std::fs::write(&fail, "").unwrap();
    let started = Instant::now();
    let err = Server::try_start(&[
        "--bind",
        LOCAL,
        "--workers",
        "2",
        "--fail-if-exists",
        fail.to_str().unwrap(),
    ])
    .expect_err("the server must not come up");
    assert!(err.starts_with("exit status: 1"), "{err}");
    assert!(err.contains("no worker became ready"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_whose_new_worker_fails_keeps_the_old_workers() {
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    let mut server = Server::start(&[
        "--bind",
        LOCAL,
        "--workers",
        "2",
        "--fail-if-exists",
        fail.to_str().unwrap(),
    ]);
    let old: HashSet<u32> = server.wait_ready(2).into_iter().collect();
    std::fs::write(&fail, "").unwrap();

    server.signal(Signal::SIGHUP);
    let failing: u32 = server.wait_event("FAILING", 0)[8..].parse().unwrap();
    assert!(eventually(Duration::from_secs(5), || !alive(failing)));

    let answering = running_ok_after_switch(&server).await;
    assert_eq!(answering, old);
    let mut workers: Vec<u32> = server.workers().into_iter().map(|pid| pid as u32).collect();
    workers.sort_unstable();
    let mut expected: Vec<u32> = old.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(workers, expected, "no further worker was started");
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn usr1_is_forwarded_to_every_worker_and_ends_none() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2"]);
    let mut workers = server.wait_ready(2);

    server.signal(Signal::SIGUSR1);
    let mut got: Vec<u32> = (0..2)
        .map(|nth| server.wait_event("USR1", nth)[5..].parse().unwrap())
        .collect();

    got.sort_unstable();
    workers.sort_unstable();
    assert_eq!(got, workers);
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(server.ready.len(), 2, "no worker was replaced");
}

#[test]
fn a_crash_looping_slot_backs_off_exponentially_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    let mut server = Server::start(&[
        "--bind",
        LOCAL,
        "--workers",
        "2",
        "--fail-if-exists",
        fail.to_str().unwrap(),
    ]);
    let workers = server.wait_ready(2);
    std::fs::write(&fail, "").unwrap();

    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).unwrap();
    let mut last = Instant::now();
    let mut delays = Vec::new();
    for nth in 0..3 {
        server.wait_event("FAILING", nth);
        delays.push(last.elapsed());
        last = Instant::now();
    }
    std::fs::remove_file(&fail).unwrap();
    let replacement = server.wait_ready(3)[2];
    delays.push(last.elapsed());

    eprintln!("respawn delays: {delays:?}");
    for (delay, expected) in delays.iter().zip([100, 200, 400, 800]) {
        let expected = Duration::from_millis(expected);
        // The reference instant is when this thread read the previous line, which on a
        // busy machine can be a little late.
        assert!(*delay >= expected - Duration::from_millis(50), "{delays:?}");
        assert!(*delay < expected + Duration::from_millis(400), "{delays:?}");
    }
    assert!(!workers.contains(&replacement));
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn one_worker_serves_in_the_supervisor_process_and_stops_on_sigterm() {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "1"]);
    let ready = server.wait_ready(1);
    let pid = server.pid().as_raw() as u32;
    assert_eq!(ready, [pid]);

    let body = client(false).get(server.url("/pid")).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), pid.to_string());
    assert!(server.workers().is_empty(), "nothing was forked");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// Starts a slow request, sends `signals` to the supervisor, and checks everything is gone
/// long before the slow request could have finished.
async fn stops_at_once(signals: &[Signal]) {
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2"]);
    server.wait_ready(2);
    let slow = tokio::spawn(client(false).get(server.url("/slow?ms=20000")).send());
    server.wait_event("SLOW", 0);
    let sent = Instant::now();

    let addr = server.addr();
    for signal in signals {
        server.signal(*signal);
        // The kernel merges a signal into one already pending: let the supervisor act on
        // this one (new connections get refused) before sending the next.
        let refused = eventually(Duration::from_secs(5), || {
            std::net::TcpStream::connect(&addr)
                .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused)
        });
        assert!(refused);
    }
    let status = server.wait_exit(Duration::from_secs(5));

    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(1), "workers were killed, not drained");
    assert!(slow.await.unwrap().is_err(), "the slow request was cut off");
    assert!(server.group_members().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigquit_stops_at_once() {
    stops_at_once(&[Signal::SIGQUIT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_stops_at_once() {
    stops_at_once(&[Signal::SIGINT, Signal::SIGINT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_longer_than_the_graceful_timeout_is_cut_off_at_the_deadline() {
    let graceful = Duration::from_millis(1000);
    let mut server = Server::start(&["--bind", LOCAL, "--workers", "2", "--graceful-ms", "1000"]);
    server.wait_ready(2);
    let slow = tokio::spawn(client(false).get(server.url("/slow?ms=20000")).send());
    server.wait_event("SLOW", 0);
    let sent = Instant::now();

    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));

    let took = sent.elapsed();
    assert!(took >= graceful, "stopped before the deadline: {took:?}");
    assert!(
        took < graceful + Duration::from_millis(1500),
        "took {took:?}"
    );
    assert!(slow.await.unwrap().is_err(), "the slow request was cut off");
    assert_eq!(
        status.code(),
        Some(0),
        "the workers ended their drains themselves"
    );
    assert!(server.group_members().is_empty());
}
