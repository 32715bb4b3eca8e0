//! A log collector that stops reading never stops supervision: with stdout a full pipe, the
//! supervisor still reaps, replaces, rolls and stops its workers, and workers still stop, also
//! when the supervisor is killed; under keep-alive load, no request fails meanwhile.

use std::{
    collections::HashSet,
    os::unix::process::CommandExt,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use buvar_tests::fork::{CountedLoad, StalledPipe};
use buvar_tests::prefork::eventually;
use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

const CONFIG: &str =
    "[http]\nport = 0\nforks = 2\ngraceful_timeout = 5\n[log]\nlevel = \"debug\"\n";

struct Stalled {
    child: Child,
    pipe: Option<StalledPipe>,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Stalled {
    /// Starts the service with its stdout on a one-page pipe, reads until both workers serve,
    /// then stops reading and fills the pipe with request logs.
    fn start() -> Stalled {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("svc.toml");
        std::fs::write(&config, CONFIG).expect("write the config");
        let mut pipe = StalledPipe::new();
        let child = buvar_tests::service::command()
            .arg("--config")
            .arg(&config)
            .stdout(pipe.stdout())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("spawn service-server");
        let mut serving = HashSet::new();
        let mut addr = String::new();
        while serving.len() < 2 {
            let line = pipe.line().expect("the service logs that it serves");
            let event: serde_json::Value = serde_json::from_str(&line).expect("JSON lines");
            if event["message"] == "serving" {
                serving.insert(event["pid"].to_string());
                addr = event["addr"]
                    .as_str()
                    .expect("addr")
                    .trim_start_matches("tcp://")
                    .to_owned();
            }
        }
        let stalled = Stalled {
            child,
            pipe: Some(pipe),
            addr,
            _dir: dir,
        };
        // Debug logging writes lines per request: keep asking until the pipe is full (to
        // within a line), so every later log line meets a stalled reader.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stalled.pipe().unread() < 4096 - 512 {
            assert!(
                Instant::now() < deadline,
                "the pipe did not fill: {}",
                stalled.pipe().unread()
            );
            let _ = get(&stalled.addr);
        }
        stalled
    }

    fn pipe(&self) -> &StalledPipe {
        self.pipe.as_ref().expect("the pipe")
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn workers(&self) -> Vec<i32> {
        buvar_tests::live_children(self.child.id() as i32)
    }

    fn group_members(&self) -> Vec<i32> {
        buvar_tests::processes()
            .into_iter()
            .filter(|p| p.pgrp == self.child.id() as i32 && p.state != 'Z')
            .map(|p| p.pid)
            .collect()
    }

    fn zombies(&self) -> Vec<i32> {
        buvar_tests::processes()
            .into_iter()
            .filter(|p| p.ppid == self.child.id() as i32 && p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = killpg(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// `GET /pid` on a fresh connection, with a deadline; the answer's pid.
fn get(addr: &str) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split("\r\n\r\n").nth(1)?.trim().parse().ok()
}

#[test]
fn with_stdout_stalled_the_supervisor_replaces_rolls_and_stops_its_workers() {
    let mut service = Stalled::start();
    let before: Vec<i32> = service.workers();
    assert_eq!(before.len(), 2);

    // A killed worker is reaped and replaced, though the supervisor logs it to a full pipe.
    kill(Pid::from_raw(before[0]), Signal::SIGKILL).unwrap();
    let replaced = eventually(Duration::from_secs(20), || {
        let now = service.workers();
        now.len() == 2 && !now.contains(&before[0]) && service.zombies().is_empty()
    });
    assert!(
        replaced,
        "workers {:?}, zombies {:?}",
        service.workers(),
        service.zombies()
    );

    // 60 SIGHUPs: rolling restarts, each logged, none of it written.
    for _ in 0..60 {
        kill(service.pid(), Signal::SIGHUP).unwrap();
    }
    let rolled = eventually(Duration::from_secs(30), || {
        let now = service.workers();
        now.len() == 2
            && before.iter().all(|pid| !now.contains(pid))
            && service.zombies().is_empty()
    });
    assert!(
        rolled,
        "workers {:?}, zombies {:?}",
        service.workers(),
        service.zombies()
    );
    assert!(get(&service.addr).is_some(), "the new workers serve");
    assert!(
        service.pipe().unread() >= 4096 - 512,
        "the pipe stayed full"
    );

    // What the supervisor logged meanwhile waited in its backlog (bounded; lines beyond it
    // are dropped and counted, see buvar-kit's log output tests) and arrives once the reader
    // catches up.
    let lines = service.pipe.take().expect("the pipe").resume();
    let supervisor = service.child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the supervisor's line about the killed worker");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let message = event["message"].as_str().unwrap_or_default();
        if event["pid"] == supervisor && message.contains("was killed by SIGKILL") {
            assert_eq!(
                event["worker_pid"].as_str(),
                Some(before[0].to_string().as_str())
            );
            break;
        }
    }

    kill(service.pid(), Signal::SIGTERM).unwrap();
    let exited = eventually(Duration::from_secs(20), || {
        service.child.try_wait().expect("try_wait").is_some()
    });
    assert!(exited, "the supervisor did not stop");
    assert_eq!(service.child.wait().unwrap().code(), Some(0));
    assert!(eventually(Duration::from_secs(5), || service
        .group_members()
        .is_empty()));
}

#[test]
fn with_stdout_stalled_the_supervisor_stops_on_sigterm_and_workers_die_with_it() {
    // SIGTERM with a stalled pipe: the supervisor stops.
    let mut service = Stalled::start();
    kill(service.pid(), Signal::SIGTERM).unwrap();
    let exited = eventually(Duration::from_secs(20), || {
        service.child.try_wait().expect("try_wait").is_some()
    });
    assert!(exited, "the supervisor ignored SIGTERM");
    assert!(eventually(Duration::from_secs(5), || service
        .group_members()
        .is_empty()));

    // kill -9 of the supervisor with a stalled pipe: the workers drain, exit and free the port.
    let service = Stalled::start();
    let addr = service.addr.clone();
    kill(service.pid(), Signal::SIGKILL).unwrap();
    let gone = eventually(Duration::from_secs(20), || {
        service.group_members().is_empty()
    });
    assert!(gone, "orphans: {:?}", service.group_members());
    std::net::TcpListener::bind(&addr).expect("the port can be bound again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stdout_stalled_a_rollout_and_a_group_sigterm_under_load_fail_no_request() {
    let mut service = tokio::task::block_in_place(Stalled::start);
    let before = service.workers();
    let load = CountedLoad::start(&format!("http://{}/pid", service.addr), 16);
    load.wait_ok(200).await;

    // A rollout while every log line meets a full pipe: each worker drains its connections.
    kill(service.pid(), Signal::SIGHUP).unwrap();
    let rolled = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(30), || {
            let now = service.workers();
            now.len() == 2 && before.iter().all(|pid| !now.contains(pid))
        })
    });
    assert!(rolled, "workers {:?}", service.workers());
    let answered = load.ok();
    load.wait_ok(answered + 200).await;
    assert!(
        service.pipe().unread() >= 4096 - 512,
        "the pipe stayed full"
    );

    // SIGTERM to the whole group, as systemd and Ctrl-C send it.
    killpg(service.pid(), Signal::SIGTERM).unwrap();
    let tally = load.finish(Duration::from_secs(30)).await;
    assert!(tally.failed.is_empty(), "failed: {:?}", tally.failed);
    assert!(tally.ok > answered + 200, "{} answered", tally.ok);
    let exited = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(20), || {
            service.child.try_wait().expect("try_wait").is_some()
        })
    });
    assert!(exited, "the supervisor did not stop");
    assert_eq!(service.child.wait().unwrap().code(), Some(0));
    assert!(tokio::task::block_in_place(|| eventually(
        Duration::from_secs(5),
        || service.group_members().is_empty()
    )));
}
