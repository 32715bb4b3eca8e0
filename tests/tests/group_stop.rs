//! One stop request is one stop request: SIGTERM or SIGINT to the whole process group (systemd's
//! `KillMode=control-group`, Ctrl-C) and kill -9 of the supervisor reach each worker two or three
//! times; under keep-alive load every one of them still drains: no failed request, the requests
//! in flight answered.

use std::time::Duration;

use buvar_tests::fork::{CountedLoad, group_members};
use buvar_tests::service::Service;
use nix::sys::signal::{Signal, kill, killpg};

const CONFIG: &str =
    "[http]\nport = 0\nforks = 2\ngraceful_timeout = 10\n[log]\nlevel = \"info\"\n";

/// Runs 32 keep-alive connections and two slow requests against the service, stops it with
/// `stop`, and checks that every request sent was answered; returns the service's exit status.
async fn drains_under_load(stop: impl FnOnce(&Service)) -> (std::process::ExitStatus, String) {
    let mut service = Service::start(CONFIG, &[], 2);
    let load = CountedLoad::start(&format!("http://{}/pid", service.addr), 32);
    load.wait_ok(500).await;
    let client = reqwest::Client::new();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(
                client
                    .get(format!("http://{}/slow?ms=1500", service.addr))
                    .send(),
            )
        })
        .collect();
    service.wait_lines("slow request started", 2);

    stop(&service);

    for request in slow {
        let response = request
            .await
            .unwrap()
            .expect("the slow request is answered");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "slow done");
    }
    let tally = load.finish(Duration::from_secs(20)).await;
    eprintln!(
        "{} answered, {} refused, {} failed",
        tally.ok,
        tally.refused,
        tally.failed.len()
    );
    assert!(tally.failed.is_empty(), "failed: {:?}", tally.failed);
    assert!(tally.ok > 500);
    let status = service.wait_exit();
    let pgrp = service.pid().as_raw() as u32;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !group_members(pgrp).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {:?}",
            group_members(pgrp)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stdout = service.stdout.join("\n");
    assert!(!stdout.contains("second stop request"), "{stdout}");
    assert!(
        !stdout.contains("dropping the open connections"),
        "{stdout}"
    );
    (status, stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_process_group_drains_every_worker_under_load() {
    let (status, stdout) =
        drains_under_load(|service| killpg(service.pid(), Signal::SIGTERM).unwrap()).await;
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("supervisor stopped cleanly"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_to_the_process_group_drains_every_worker_under_load() {
    let (status, stdout) =
        drains_under_load(|service| killpg(service.pid(), Signal::SIGINT).unwrap()).await;
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("supervisor stopped cleanly"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_supervisor_drains_every_worker_under_load() {
    let (status, _) =
        drains_under_load(|service| kill(service.pid(), Signal::SIGKILL).unwrap()).await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

/// A supervisor slower than its workers to act on the group's SIGTERM (here: stopped) still
/// holds its copies of the listening sockets. Workers that stopped accepting at once would leave
/// the clients' new connections to queue there, with their requests, to be reset when the
/// supervisor closes the sockets. They accept until it releases them instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sigterm_that_reaches_the_workers_before_the_supervisor_resets_no_request() {
    const PATIENT: &str = "[http]\nport = 0\nforks = 2\ngraceful_timeout = 20\n\
                           keep_alive_grace = 20\n[log]\nlevel = \"info\"\n";
    let mut service = Service::start(PATIENT, &[], 2);
    let load = CountedLoad::start(&format!("http://{}/pid", service.addr), 16);
    load.wait_ok(200).await;

    kill(service.pid(), Signal::SIGSTOP).unwrap();
    killpg(service.pid(), Signal::SIGTERM).unwrap();
    service.wait_lines("draining", 2);
    // Not released, the workers serve on while the supervisor holds the sockets.
    let answered = load.ok();
    load.wait_ok(answered + 200).await;

    kill(service.pid(), Signal::SIGCONT).unwrap();
    let tally = load.finish(Duration::from_secs(30)).await;
    assert!(tally.failed.is_empty(), "failed: {:?}", tally.failed);
    assert!(tally.ok > answered + 200, "{} answered", tally.ok);
    let status = service.wait_exit();
    let stdout = service.stdout.join("\n");
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("supervisor stopped cleanly"), "{stdout}");
}
