//! SIGHUP re-reads the config file of a whole service (`service-server`, 2 workers), checks it
//! as `--check` does, and rolls the workers onto it, with a keep-alive load running throughout
//! that counts every request. `GET /lazy` answers `[lazy] n`, which only an adapter reads, so
//! the answer tells which config a worker was forked with.

use std::time::Duration;

use buvar_tests::fork::{CountedLoad, Tally};
use buvar_tests::notify::NotifySocket;
use buvar_tests::service::Service;
use nix::sys::signal::Signal;

const CONFIG: &str = "[http]\nport = 0\nforks = 2\ngraceful_timeout = 10\n";

fn config(n: &str) -> String {
    format!("{CONFIG}[lazy]\nn = {n}\n")
}

fn assert_none_failed(tally: &Tally) {
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(tally.refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rolls_the_workers_onto_the_new_file_without_a_failed_request() {
    let mut service = Service::start(&config("1"), &[], 2);
    let load = CountedLoad::start(&format!("http://{}/lazy", service.addr), 4);
    load.wait_answered("1", 50).await;
    let before = service.workers();
    std::fs::write(&service.config, config("2")).unwrap();
    service.signal(Signal::SIGHUP);
    tokio::task::block_in_place(|| service.wait_lines("rolling restart complete", 1));
    let replaced = buvar_tests::prefork::eventually(Duration::from_secs(20), || {
        let after = service.workers();
        after.len() == 2 && after.iter().all(|pid| !before.contains(pid))
    });
    assert!(replaced, "{before:?} {:?}", service.workers());
    // The loops share one client and its pool, so during the roll a loop may be answered by an
    // old worker after a new one. Once every old worker is gone, only the new config answers.
    let marks = load.marks();
    let answered = load.answered("2");
    load.wait_answered("2", answered + 100).await;
    let tally = load.stop().await;
    assert_none_failed(&tally);
    for (answers, mark) in tally.answers.iter().zip(marks) {
        let since = answers.get(mark + 1..).unwrap_or_default();
        assert!(
            since.iter().all(|a| a == "2"),
            "an old worker answered after every old worker was gone: {answers:?} (mark {mark})"
        );
    }
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_old_workers_and_is_logged_once_with_where() {
    let notify = NotifySocket::new();
    let mut service = Service::start(
        &config("1"),
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
        2,
    );
    let load = CountedLoad::start(&format!("http://{}/lazy", service.addr), 4);
    load.wait_answered("1", 20).await;
    let workers = service.workers();
    // A value of the wrong type: the check names the key and the file.
    std::fs::write(&service.config, config("\"ten\"")).unwrap();
    service.signal(Signal::SIGHUP);
    tokio::task::block_in_place(|| service.wait_lines("config reload refused", 1));
    let told = notify.until(|m| m.starts_with("STATUS=config reload failed"));
    assert!(
        !told.iter().any(|m| m.starts_with("RELOADING=1")),
        "{told:?}"
    );
    // Broken TOML: the error names the line.
    std::fs::write(&service.config, format!("{CONFIG}[lazy\nn = 3\n")).unwrap();
    service.signal(Signal::SIGHUP);
    tokio::task::block_in_place(|| service.wait_lines("config reload refused", 2));
    let answered = load.answered("1");
    load.wait_answered("1", answered + 20).await;
    assert_eq!(service.workers(), workers, "the old workers serve on");
    let tally = load.stop().await;
    assert_none_failed(&tally);
    assert!(tally.answers.iter().flatten().all(|a| a == "1"));
    let (status, stdout, stderr) = service.stop();
    assert!(status.success(), "{status}");
    let with_key: Vec<&str> = stdout.lines().filter(|l| l.contains("lazy.n")).collect();
    assert_eq!(with_key.len(), 1, "{with_key:?}\n{stderr}");
    assert!(with_key[0].contains("svc.toml line 6"), "{}", with_key[0]);
    let with_line: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("not valid TOML at line 5,"))
        .collect();
    assert_eq!(with_line.len(), 1, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_the_worker_count_and_refuses_a_new_port_naming_it() {
    let mut service = Service::start(&config("1"), &[], 2);
    std::fs::write(
        &service.config,
        config("1").replace("forks = 2", "forks = 3"),
    )
    .unwrap();
    service.signal(Signal::SIGHUP);
    tokio::task::block_in_place(|| service.wait_lines("rolling restart complete", 1));
    assert!(buvar_tests::prefork::eventually(
        Duration::from_secs(20),
        || { service.workers().len() == 3 }
    ));
    let workers = service.workers();
    std::fs::write(&service.config, config("1").replace("port = 0", "port = 1")).unwrap();
    service.signal(Signal::SIGHUP);
    tokio::task::block_in_place(|| service.wait_lines("config reload refused", 1));
    let refused = service
        .stdout
        .iter()
        .find(|l| l.contains("config reload refused"))
        .unwrap()
        .clone();
    assert!(
        refused.contains("`http.port` cannot change on reload"),
        "{refused}"
    );
    assert_eq!(service.workers(), workers);
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}
