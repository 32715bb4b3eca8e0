//! Running the `service-server` binary (a whole `Service`) with a config file, reading its JSON
//! log lines.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::process::{GroupChild, bin_path};

/// The binary with a clean `SVC_*` environment and JSON logs.
pub fn command() -> Command {
    crate::process::service_command(bin_path("service-server"), "SVC")
}

/// Runs the binary to completion with a config file holding `toml`.
///
/// # Panics
///
/// When the file cannot be written or the binary cannot run.
pub fn run(toml: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("svc.toml");
    std::fs::write(&file, toml).expect("write the config");
    command()
        .arg("--config")
        .arg(&file)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run service-server")
}

/// A running service: the supervisor leads its own process group, killed with the whole group
/// when this is dropped.
#[derive(Debug)]
pub struct Service {
    child: GroupChild,
    /// Every stdout line so far.
    pub stdout: Vec<String>,
    /// `host:port` of the first `serving` line.
    pub addr: String,
    /// The config file it was started with.
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the service with a config file holding `toml` and waits for `serving` lines from
    /// `workers` worker processes.
    ///
    /// # Panics
    ///
    /// When it does not serve within 20 s, with what it wrote.
    pub fn start(toml: &str, env: &[(&str, &str)], workers: usize) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("svc.toml");
        std::fs::write(&config, toml).expect("write the config");
        let child = GroupChild::spawn(
            command()
                .arg("--config")
                .arg(&config)
                .envs(env.iter().copied()),
            None,
        );
        let mut service = Service {
            child,
            stdout: Vec::new(),
            addr: String::new(),
            config,
            _dir: dir,
        };
        let mut serving = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while serving.len() < workers {
            let Some(line) = service.child.next_line(deadline) else {
                let _ = nix::sys::signal::killpg(service.pid(), Signal::SIGKILL);
                let _ = service.child.wait();
                panic!(
                    "service did not serve; stdout:\n{}\nstderr:\n{}",
                    service.stdout.join("\n"),
                    service.child.stderr()
                );
            };
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                if event["message"] == "serving" {
                    serving.insert(event["pid"].to_string());
                    if let Some(addr) = event["addr"].as_str() {
                        service.addr = addr.trim_start_matches("tcp://").to_owned();
                    }
                }
            }
            service.stdout.push(line);
        }
        service
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.child.pid()
    }

    /// Live (non-zombie) children of the supervisor, sorted.
    pub fn workers(&self) -> Vec<i32> {
        self.child.workers()
    }

    /// Sends `signal` to the supervisor alone.
    pub fn signal(&self, signal: Signal) {
        self.child.signal(signal);
    }

    /// Waits until `count` stdout lines in all contain `text` (reading on as needed).
    ///
    /// # Panics
    ///
    /// When fewer arrive within 20 s.
    pub fn wait_lines(&mut self, text: &str, count: usize) {
        self.child.read_until(&mut self.stdout, text, count);
    }

    /// Waits for the supervisor to exit (without signalling it) and collects what it wrote.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = self.child.wait();
        let rest = self.child.remaining_lines();
        self.stdout.extend(rest);
        status
    }

    /// Stops the service (SIGTERM), waits for it, and returns its exit status, everything it
    /// wrote to stdout, and its stderr.
    pub fn stop(mut self) -> (ExitStatus, String, String) {
        self.signal(Signal::SIGTERM);
        let status = self.child.wait();
        let rest = self.child.remaining_lines();
        self.stdout.extend(rest);
        let stderr = self.child.stderr();
        (status, self.stdout.join("\n"), stderr)
    }
}
