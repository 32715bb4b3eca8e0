//! Running one of buvar-axum's examples (built as a binary of this crate) as a real pre-forked
//! service, for the protocol tests: WebSockets, TLS, gRPC.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{GroupChild, bin_path};

/// A running example: the supervisor leads its own process group, killed with the whole group
/// when this is dropped.
#[derive(Debug)]
pub struct Example {
    /// The supervisor and its output.
    pub child: GroupChild,
    /// `host:port` of the first `serving` line.
    pub addr: String,
    /// Every stdout line read so far.
    pub stdout: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Example {
    /// Starts binary `bin` (environment prefix `APP`, JSON logs) with a config file holding
    /// `toml` and waits for `serving` lines from `workers` worker processes.
    ///
    /// # Panics
    ///
    /// When it does not serve within 30 s, with what it wrote.
    pub fn start(bin: &str, toml: &str, workers: usize) -> Example {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("app.toml");
        std::fs::write(&config, toml).expect("write the config");
        let mut child = GroupChild::spawn(command(bin).arg("--config").arg(&config), None);
        let mut stdout = Vec::new();
        let mut addr = String::new();
        let mut serving = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while serving.len() < workers {
            let Some(line) = child.next_line(deadline) else {
                let _ = nix::sys::signal::killpg(child.pid(), nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "{bin} did not serve; stdout:\n{}\nstderr:\n{}",
                    stdout.join("\n"),
                    child.stderr()
                );
            };
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                if event["message"] == "serving" {
                    serving.insert(event["pid"].to_string());
                    if let Some(served) = event["addr"].as_str() {
                        served.trim_start_matches("tcp://").clone_into(&mut addr);
                    }
                }
            }
            stdout.push(line);
        }
        Example {
            child,
            addr,
            stdout,
            _dir: dir,
        }
    }
}

impl Example {
    /// Waits until `count` stdout lines in all contain `text` (reading on as needed).
    ///
    /// # Panics
    ///
    /// When fewer arrive within 20 s.
    pub fn wait_lines(&mut self, text: &str, count: usize) {
        self.child.read_until(&mut self.stdout, text, count);
    }
}

/// Binary `bin` of this crate with a clean `APP_*` environment and JSON logs.
pub fn command(bin: &str) -> Command {
    crate::process::service_command(bin_path(bin), "APP")
}
