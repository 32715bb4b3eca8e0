//! Before-fork steps in a real service (`before-fork-server`): run once, in a child of the
//! parent, before the workers; a failing step or one that leaves a thread stops start-up with exit status 2
//! naming it; `--run-before-fork` runs them alone; `--skip-before-fork` starts without them.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use buvar_tests::process::service_command;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Generous: an upper bound on a loaded machine, never a pause.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn command(env: &[(&str, &str)]) -> Command {
    let mut command = service_command(env!("CARGO_BIN_EXE_before-fork-server"), "BF");
    command
        .env("BF_HTTP_HOST", "127.0.0.1")
        .env("BF_HTTP_PORT", "0")
        .envs(env.iter().copied());
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(env)
        .args(args)
        .output()
        .expect("run before-fork-server")
}

fn recorded(log: &Path) -> Vec<u32> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().expect("a pid per line"))
        .collect()
}

/// Starts the service and returns the pids in its first `workers` `serving` lines.
fn serve(env: &[(&str, &str)], args: &[&str], workers: usize) -> (std::process::Child, Vec<u32>) {
    let mut child = command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("spawn before-fork-server");
    let lines = buvar_tests::line_channel(child.stdout.take().expect("stdout"));
    let mut pids = Vec::new();
    while pids.len() < workers {
        let line = lines
            .recv_timeout(START_TIMEOUT)
            .expect("the workers log that they serve");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["message"] == "serving" {
            pids.push(event["pid"].as_u64().expect("a pid field") as u32);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, pids)
}

fn stop(mut child: std::process::Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn steps_run_once_in_a_child_of_the_parent_and_never_in_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("steps.log");
    let log_str = log.to_str().unwrap();
    let (child, workers) = serve(&[("BF_HTTP_FORKS", "4"), ("BF_STEP_LOG", log_str)], &[], 4);
    let parent = child.id();
    let steps = recorded(&log);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_ne!(steps[0], parent, "the parent never runs a step's runtime");
    assert!(!workers.contains(&steps[0]), "{workers:?}");
    assert!(workers.iter().all(|pid| *pid != parent), "{workers:?}");
    stop(child);
    assert_eq!(recorded(&log), steps, "no worker ran a step");
}

/// A step's runtime made in the parent left tokio's signal channel to every worker, shared:
/// one worker read another's wake-up and missed its SIGTERM (about one start in four with four
/// workers), so the supervisor killed it at the graceful deadline and exited 1.
#[test]
fn every_worker_forked_after_the_steps_drains_on_sigterm() {
    for _ in 0..8 {
        let (child, _) = serve(
            &[("BF_HTTP_FORKS", "4"), ("BF_HTTP_GRACEFUL_TIMEOUT", "20s")],
            &[],
            4,
        );
        stop(child);
    }
}

#[test]
fn a_failing_step_stops_start_up_with_status_2_naming_it_and_hiding_the_password() {
    let output = run(&[], &[("BF_HTTP_FORKS", "2"), ("BF_STEP_FAIL", "1")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "before-fork step `migrate` failed: cannot connect to \
             postgres://app:***@db.invalid:5432/app"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("\"serving\""),
        "no worker started: {stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn a_step_that_leaves_a_thread_stops_start_up_naming_it() {
    let output = run(&[], &[("BF_HTTP_FORKS", "2"), ("BF_STEP_LEAK", "1")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("before-fork step `leak` left the process with more than one thread"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("\"serving\""));
}

#[test]
fn run_before_fork_runs_the_steps_alone_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("steps.log");
    // The service's port is taken: binding it would fail, so exit 0 proves nothing was bound.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let env = [
        ("BF_HTTP_PORT", port.as_str()),
        ("BF_STEP_LOG", log.to_str().unwrap()),
    ];
    let output = run(&["--run-before-fork"], &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(recorded(&log).len(), 1);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("\"serving\""));

    let failed = run(&["--run-before-fork"], &[("BF_STEP_FAIL", "1")]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("before-fork step `migrate` failed"));
}

#[test]
fn skip_before_fork_starts_without_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("steps.log");
    let env = [
        ("BF_HTTP_FORKS", "1"),
        ("BF_STEP_LOG", log.to_str().unwrap()),
        ("BF_STEP_FAIL", "1"),
        ("BF_STEP_LEAK", "1"),
    ];
    let (child, _) = serve(&env, &["--skip-before-fork"], 1);
    stop(child);
    assert!(recorded(&log).is_empty());
    let both = run(&["--run-before-fork", "--skip-before-fork"], &[]);
    assert_eq!(both.status.code(), Some(2), "the flags exclude each other");
}
