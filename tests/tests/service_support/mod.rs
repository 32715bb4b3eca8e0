//! Running the `service-server` binary (a whole `Service`) with a config file, reading its JSON
//! log lines.

// Each test target uses a different part of these helpers.
#![allow(dead_code)]

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

/// The binary with a clean `SVC_*` environment and JSON logs.
pub(crate) fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_service-server"));
    command
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env("SVC_LOG_FORMAT", "json")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("SVC_") && name != "SVC_LOG_FORMAT" {
            command.env_remove(name);
        }
    }
    command
}

/// Runs the binary to completion with a config file holding `toml`.
pub(crate) fn run(toml: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
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

/// A running service: the supervisor leads its own process group.
pub(crate) struct Service {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line so far.
    pub(crate) stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// `host:port` of the first `serving` line.
    pub(crate) addr: String,
    _dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
}

impl Service {
    /// Starts the service with a config file holding `toml` and waits for `serving` lines from
    /// `workers` worker processes.
    pub(crate) fn start(toml: &str, env: &[(&str, &str)], workers: usize) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("svc.toml");
        std::fs::write(&config, toml).expect("write the config");
        let mut child = command()
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn service-server");
        let lines = buvar_tests::line_channel(child.stdout.take().expect("stdout"));
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        let mut service = Service {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
            addr: String::new(),
            _dir: dir,
            config,
        };
        let mut serving = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while serving.len() < workers {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = service.lines.recv_timeout(left) else {
                let _ = service.child.kill();
                let _ = service.child.wait();
                panic!(
                    "service did not serve; stdout:\n{}\nstderr:\n{}",
                    service.stdout.join("\n"),
                    service.stderr()
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

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Live (non-zombie) children of the supervisor.
    pub(crate) fn workers(&self) -> Vec<i32> {
        let mut workers = buvar_tests::live_children(self.child.id() as i32);
        workers.sort_unstable();
        workers
    }

    pub(crate) fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal the service");
    }

    /// Waits until `count` stdout lines in all contain `text` (reading on as needed).
    pub(crate) fn wait_lines(&mut self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .stdout
            .iter()
            .filter(|line| line.contains(text))
            .count()
            < count
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for {count} lines with {text:?}"));
            self.stdout.push(line);
        }
    }

    /// Waits for the supervisor to exit (without signalling it) and collects what it wrote.
    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait for the service");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        status
    }

    /// Stops the service (SIGTERM), waits for it, and returns everything it wrote.
    pub(crate) fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        self.signal(Signal::SIGTERM);
        let status = self.child.wait().expect("wait for the service");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let stderr = self.stderr();
        (status, self.stdout.join("\n"), stderr)
    }

    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
