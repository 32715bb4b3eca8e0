//! The binary upgrade (SIGUSR2) with real processes: the program `tests/src/upgrade.rs` built
//! as `upgrade-v1`, `upgrade-v2`, `upgrade-exits` and `upgrade-never-ready`, copied to one path
//! that each test replaces as a deployment would (a new file renamed over the old), with 2
//! workers and a keep-alive load running throughout that counts every request.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buvar_tests::fork::{CountedLoad, Tally};
use buvar_tests::notify::NotifySocket;
use buvar_tests::prefork::{alive, eventually};
use buvar_tests::process::{GroupChild, bin_path, service_command};
use buvar_tests::processes;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Generous: an upper bound on a loaded machine, never a pause.
const WITHIN: Duration = Duration::from_secs(30);

/// The service as deployed: its binary at `dir/svc`, its pidfile at `dir/svc.pid`.
struct Deployed {
    dir: tempfile::TempDir,
    child: GroupChild,
    lines: Vec<String>,
    addr: String,
}

impl Deployed {
    /// Installs `build` and starts it with 2 workers; waits until both serve.
    fn start(build: &str, env: &[(&str, &str)]) -> Deployed {
        // A supervisor that handed over exits and leaves its successor an orphan: adopted by
        // this process rather than by whatever init the machine runs, so it is reaped here.
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), build);
        let mut command = service_command(dir.path().join("svc"), "UP");
        for (name, _) in std::env::vars() {
            if name.starts_with("LISTEN_") {
                command.env_remove(name);
            }
        }
        command
            .env("UP_HTTP_HOST", "127.0.0.1")
            .env("UP_HTTP_PORT", "0")
            .env("UP_HTTP_FORKS", "2")
            .env("UP_HTTP_GRACEFUL_TIMEOUT", "5s")
            .env("UP_HTTP_PIDFILE", dir.path().join("svc.pid"))
            .envs(env.iter().copied());
        let child = GroupChild::spawn(&mut command, Some("svc"));
        let mut deployed = Deployed {
            dir,
            child,
            lines: Vec::new(),
            addr: String::new(),
        };
        let first = deployed.wait_for("\"serving\"", 0);
        let event: serde_json::Value = serde_json::from_str(&first).unwrap();
        deployed.addr = event["addr"]
            .as_str()
            .unwrap()
            .trim_start_matches("tcp://")
            .to_owned();
        deployed.wait_for("\"serving\"", 1);
        deployed
    }

    /// Waits for the stdout line after the first `skip` that contain `text`; returns it.
    fn wait_for(&mut self, text: &str, skip: usize) -> String {
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(line) = self.lines.iter().filter(|l| l.contains(text)).nth(skip) {
                return line.clone();
            }
            match self.child.next_line(deadline) {
                Some(line) => self.lines.push(line),
                None => panic!(
                    "no line with {text:?} (after {skip}); stdout:\n{}",
                    self.lines.join("\n")
                ),
            }
        }
    }

    fn lines_with(&self, text: &str) -> usize {
        self.lines.iter().filter(|l| l.contains(text)).count()
    }

    fn pidfile(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("svc.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Replaces the binary on disk with `build` and sends SIGUSR2 to `parent`.
    fn upgrade(&self, parent: i32, build: &str) {
        install(self.dir.path(), build);
        kill(Pid::from_raw(parent), Signal::SIGUSR2).unwrap();
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// Copies the `build` binary next to `dir/svc` and renames it over it, as a deployment does.
fn install(dir: &Path, build: &str) {
    let next: PathBuf = dir.join("svc.next");
    std::fs::copy(bin_path(&format!("upgrade-{build}")), &next).unwrap();
    std::fs::rename(&next, dir.join("svc")).unwrap();
}

/// The new supervisor's pid, from its log line on taking over.
fn new_parent(line: &str) -> i32 {
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    event["pid"].as_i64().unwrap() as i32
}

/// Live (non-zombie) processes of the group `pgrp`, and the zombies.
fn group(pgrp: i32) -> (Vec<buvar_tests::Proc>, Vec<buvar_tests::Proc>) {
    processes()
        .into_iter()
        .filter(|p| p.pgrp == pgrp)
        .partition(|p| p.state != 'Z')
}

/// Waits until the group holds exactly `parent` and two workers of it, and no zombie.
fn settles_on(pgrp: i32, parent: i32) {
    let settled = eventually(WITHIN, || {
        reap_adopted(pgrp);
        let (live, zombies) = group(pgrp);
        zombies.is_empty()
            && live.len() == 3
            && live.iter().any(|p| p.pid == parent)
            && live.iter().filter(|p| p.ppid == parent).count() == 2
    });
    assert!(
        settled,
        "group {pgrp} never settled on {parent}: {:?}",
        group(pgrp)
    );
}

/// Reaps the group's zombies that this process adopted (as subreaper) when their parent died:
/// reaping them is this process's job, as it is init's on a real machine.
fn reap_adopted(pgrp: i32) {
    let me = std::process::id() as i32;
    for zombie in group(pgrp).1.iter().filter(|p| p.ppid == me) {
        let _ = nix::sys::wait::waitpid(Pid::from_raw(zombie.pid), None);
    }
}

fn socket_inodes(pid: i32) -> HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect()
}

/// `socket:[inode]` of the socket listening on `addr` (`127.0.0.1:port`), from /proc/net/tcp.
fn listening_inode(addr: &str) -> String {
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inode = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| {
            let local_port = fields[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).ok() == Some(port) && fields[3] == "0A"
        })
        .map(|fields| fields[9].to_owned())
        .expect("a listening socket on the port");
    format!("socket:[{inode}]")
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// No request failed, and on every connection the answers went from v1 to v2, never back.
fn assert_switched_once(tally: &Tally) {
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(tally.refused, 0);
    for answers in &tally.answers {
        let first_v2 = answers
            .iter()
            .position(|a| a == "v2")
            .unwrap_or(answers.len());
        assert!(
            answers[first_v2..].iter().all(|a| a == "v2"),
            "an answer went back to v1: {answers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_moves_every_answer_to_the_new_binary_without_a_failed_request() {
    let notify = NotifySocket::new();
    let mut svc = Deployed::start("v1", &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())]);
    let old = svc.child.pid().as_raw();
    assert_eq!(svc.pidfile(), Some(old));
    let listening = listening_inode(&svc.addr);
    assert!(socket_inodes(old).contains(&listening), "{listening}");
    let load = CountedLoad::start(&svc.url(), 4);
    load.wait_answered("v1", 50).await;
    svc.upgrade(old, "v2");
    let took_over = tokio::task::block_in_place(|| svc.wait_for("serving in place of", 0));
    let new = new_parent(&took_over);
    assert_ne!(new, old);
    // systemd follows the new supervisor: it names itself the main process, then is ready.
    let told = notify.until(|m| m.contains(&format!("MAINPID={new}")));
    assert!(
        told.iter().any(|m| m.starts_with("STATUS=upgrading")),
        "{told:?}"
    );
    assert!(!told.iter().any(|m| m.contains("STOPPING=1")), "{told:?}");
    let ready = notify.until(|m| m.contains("READY=1"));
    assert!(!ready.iter().any(|m| m.contains("STOPPING=1")), "{ready:?}");
    let status = tokio::task::block_in_place(|| svc.child.wait_exit(WITHIN));
    assert!(status.success(), "the old supervisor: {status}");
    load.wait_answered("v2", 200).await;
    let tally = load.stop().await;
    assert_switched_once(&tally);
    assert!(tally.answers.iter().flatten().any(|a| a == "v1"));
    assert_eq!(svc.pidfile(), Some(new));
    assert!(
        socket_inodes(new).contains(&listening),
        "the new supervisor holds the same listening socket"
    );
    assert_eq!(listening_inode(&svc.addr), listening);
    tokio::task::block_in_place(|| settles_on(old, new));
    kill(Pid::from_raw(new), Signal::SIGTERM).unwrap();
    assert!(eventually(WITHIN, || !alive(new as u32)));
    assert!(eventually(WITHIN, || svc.child.group_members().is_empty()));
    assert_eq!(svc.pidfile(), None, "removed by the supervisor it named");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_exits_or_never_becomes_ready_leaves_the_old_one_serving() {
    let mut svc = Deployed::start("v1", &[("UP_HTTP_UPGRADE_TIMEOUT", "3s")]);
    let old = svc.child.pid().as_raw();
    let load = CountedLoad::start(&svc.url(), 4);
    load.wait_answered("v1", 20).await;
    let workers = svc.child.workers();
    for (round, build) in ["exits", "never-ready"].into_iter().enumerate() {
        svc.upgrade(old, build);
        tokio::task::block_in_place(|| svc.wait_for("upgrade failed", round));
        tokio::task::block_in_place(|| settles_on(old, old));
        assert_eq!(svc.child.workers(), workers, "the old workers serve on");
        let before = load.answered("v1");
        load.wait_answered("v1", before + 20).await;
    }
    assert_eq!(svc.pidfile(), Some(old));
    let tally = load.stop().await;
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert!(tally.answers.iter().flatten().all(|a| a == "v1"));
}

#[test]
fn ten_upgrades_in_a_row_leak_no_descriptor_and_leave_no_orphan_or_zombie() {
    let mut svc = Deployed::start("v1", &[]);
    let pgrp = svc.child.pid().as_raw();
    let mut parent = pgrp;
    let fds = fd_count(parent);
    for round in 0..10 {
        let build = if round % 2 == 0 { "v2" } else { "v1" };
        svc.upgrade(parent, build);
        let next = new_parent(&svc.wait_for("serving in place of", round));
        // Each old supervisor is this process's child: the first one directly, the others
        // adopted when their parent exited.
        let ended = nix::sys::wait::waitpid(Pid::from_raw(parent), None).unwrap();
        assert_eq!(
            ended,
            nix::sys::wait::WaitStatus::Exited(Pid::from_raw(parent), 0),
            "round {round}"
        );
        parent = next;
        settles_on(pgrp, parent);
        assert_eq!(
            fd_count(parent),
            fds,
            "round {round}: the new supervisor's descriptors"
        );
        assert_eq!(
            svc.pidfile(),
            Some(parent),
            "round {round}: {}",
            svc.lines.join("\n")
        );
    }
    assert_eq!(svc.lines_with("upgrade failed"), 0);
}

#[test]
fn sigterm_during_an_upgrade_stops_both_generations() {
    let mut svc = Deployed::start("v1", &[("UP_HTTP_GRACEFUL_TIMEOUT", "2s")]);
    let old = svc.child.pid().as_raw();
    svc.upgrade(old, "never-ready");
    svc.wait_for("new program started", 0);
    // The new program's supervisor is up once it forked its workers.
    svc.wait_for("supervisor starting", 1);
    svc.child.signal(Signal::SIGTERM);
    let status = svc.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}");
    assert!(eventually(WITHIN, || svc.child.group_members().is_empty()));
}

#[test]
fn kill_9_of_the_new_program_leaves_none_of_it_and_the_old_one_serving() {
    let mut svc = Deployed::start("v1", &[]);
    let old = svc.child.pid().as_raw();
    svc.upgrade(old, "never-ready");
    let started: serde_json::Value =
        serde_json::from_str(&svc.wait_for("new program started", 0)).unwrap();
    let new: i32 = started["new_pid"].as_str().unwrap().parse().unwrap();
    svc.wait_for("supervisor starting", 1);
    kill(Pid::from_raw(new), Signal::SIGKILL).unwrap();
    svc.wait_for("upgrade failed", 0);
    settles_on(old, old);
}

#[test]
fn kill_9_of_the_old_parent_during_an_upgrade_leaves_no_orphaned_worker() {
    let mut svc = Deployed::start("v1", &[]);
    let old = svc.child.pid().as_raw();
    let old_workers = svc.child.workers();
    svc.upgrade(old, "v2");
    svc.wait_for("new program started", 0);
    svc.child.signal(Signal::SIGKILL);
    svc.child.wait();
    assert!(eventually(WITHIN, || old_workers
        .iter()
        .all(|pid| !alive(*pid as u32))));
    // The new program serves on by itself: every process left is it or its worker.
    let new = new_parent(&svc.wait_for("serving in place of", 0));
    settles_on(old, new);
}

#[test]
fn a_group_wide_usr2_and_hup_during_an_upgrade_neither_kill_nor_upgrade_the_new_program() {
    let mut svc = Deployed::start("v1", &[("UP_HTTP_UPGRADE_TIMEOUT", "60s")]);
    let old = svc.child.pid().as_raw();
    svc.upgrade(old, "v2");
    let started: serde_json::Value =
        serde_json::from_str(&svc.wait_for("new program started", 0)).unwrap();
    let new: i32 = started["new_pid"].as_str().unwrap().parse().unwrap();
    // As `kill -USR2 -PGID` or `systemctl kill -s USR2` would: every process of the service,
    // the new program too, at whatever point of its start it is.
    nix::sys::signal::killpg(Pid::from_raw(old), Signal::SIGUSR2).unwrap();
    nix::sys::signal::killpg(Pid::from_raw(old), Signal::SIGHUP).unwrap();
    let took_over = new_parent(&svc.wait_for("serving in place of", 0));
    assert_eq!(took_over, new, "the new program survived and took over");
    let waited = nix::sys::wait::waitpid(Pid::from_raw(old), None).unwrap();
    assert_eq!(
        waited,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(old), 0)
    );
    settles_on(old, new);
    assert_eq!(svc.lines_with("upgrading: starting the program again"), 1);
    assert_eq!(
        svc.lines_with("killed by SIGHUP"),
        0,
        "no worker died of the group's HUP"
    );
}

/// `svc` (the `v1` build) in `dir` with `forks` workers and its pidfile at `pidfile`.
fn spawn_with_pidfile(dir: &Path, forks: &str, pidfile: &Path) -> GroupChild {
    install(dir, "v1");
    let mut command = service_command(dir.join("svc"), "UP");
    command
        .env("UP_HTTP_HOST", "127.0.0.1")
        .env("UP_HTTP_PORT", "0")
        .env("UP_HTTP_FORKS", forks)
        .env("UP_HTTP_PIDFILE", pidfile);
    GroupChild::spawn(&mut command, Some("svc"))
}

#[test]
fn a_pidfile_that_cannot_be_written_stops_the_start_with_exit_2_before_any_worker() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist, and a path that is a directory.
    let unwritable = [
        dir.path().join("missing").join("svc.pid"),
        dir.path().join("run"),
    ];
    std::fs::create_dir(dir.path().join("run")).unwrap();
    for forks in ["2", "1"] {
        for pidfile in &unwritable {
            let mut child = spawn_with_pidfile(dir.path(), forks, pidfile);
            let status = child.wait_exit(WITHIN);
            assert_eq!(status.code(), Some(2), "forks = {forks}, {pidfile:?}");
            // Read to its end: nothing the service started holds stdout or stderr open.
            let stdout = child.remaining_lines();
            let stderr = child.stderr();
            assert!(
                stderr.contains("cannot write the pidfile")
                    && stderr.contains(&pidfile.display().to_string()),
                "forks = {forks}: {stderr}"
            );
            assert!(
                !stdout.iter().any(|line| line.contains("\"serving\"")),
                "no worker served: {stdout:?}"
            );
            assert_eq!(child.group_members(), Vec::<i32>::new());
        }
    }
}

#[test]
fn with_one_worker_the_pidfile_names_the_serving_process_and_is_removed_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("svc.pid");
    let mut child = spawn_with_pidfile(dir.path(), "1", &pidfile);
    let mut lines = Vec::new();
    child.read_until(&mut lines, "\"serving\"", 1);
    let named: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(named, child.pid().as_raw());
    child.signal(Signal::SIGTERM);
    assert_eq!(child.wait_exit(WITHIN).code(), Some(0));
    assert!(!pidfile.exists(), "removed at exit");
}
