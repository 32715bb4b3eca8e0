//! A child process in a process group of its own, as the process-level tests run servers: its
//! stdout read line by line as it arrives, its stderr collected, and the whole group killed
//! when it is dropped, so no worker outlives a failed test.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::{line_channel, live_children};

/// The path of one of this crate's binaries (`prefork-server`, `service-server`), which cargo
/// builds before it runs the tests: beside the `deps/` directory of the running test.
///
/// # Panics
///
/// When the running executable does not sit in a cargo target directory.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("<target>/<profile>/deps/<test>");
    profile.join(name)
}

/// `program`, a service whose variables start with `prefix` and `_`, with a clean environment:
/// none of the test's own `<PREFIX>_*`, `RUST_LOG` or `NOTIFY_SOCKET`, JSON logs, stdin closed.
pub fn service_command(program: impl AsRef<std::ffi::OsStr>, prefix: &str) -> Command {
    let mut command = Command::new(program);
    let own = format!("{prefix}_");
    for (name, _) in std::env::vars() {
        if name.starts_with(&own) {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env(format!("{prefix}_LOG_FORMAT"), "json")
        .stdin(Stdio::null());
    command
}

/// A running child that leads its own process group.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    stderr_text: Option<String>,
}

impl GroupChild {
    /// Spawns `command` with stdin closed, stdout and stderr piped, as the leader of a new
    /// process group. Each stderr line is echoed to this test's stderr behind `echo` when given
    /// (the test harness shows it only for a failing test).
    ///
    /// # Panics
    ///
    /// When the command cannot start.
    pub fn spawn(command: &mut Command, echo: Option<&'static str>) -> GroupChild {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        let lines = line_channel(child.stdout.take().expect("piped stdout"));
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (done, stderr) = channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(prefix) = echo {
                    eprintln!("{prefix}: {line}");
                }
                all.push_str(&line);
                all.push('\n');
            }
            let _ = done.send(all);
        });
        GroupChild {
            child,
            lines,
            stderr,
            stderr_text: None,
        }
    }

    /// The child's pid, which is also its process group's id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `signal` to the child alone.
    ///
    /// # Panics
    ///
    /// When the child was already reaped.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal the child");
    }

    /// The next stdout line, or `None` once `deadline` passed or stdout closed.
    pub fn next_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Reads stdout lines into `lines` until `count` of all it holds contain `text`.
    ///
    /// # Panics
    ///
    /// When fewer arrive within 20 s.
    pub fn read_until(&self, lines: &mut Vec<String>, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines.iter().filter(|line| line.contains(text)).count() < count {
            let line = self
                .next_line(deadline)
                .unwrap_or_else(|| panic!("timed out waiting for {count} lines with {text:?}"));
            lines.push(line);
        }
    }

    /// Live (non-zombie) children of the child, sorted.
    pub fn workers(&self) -> Vec<i32> {
        let mut workers = live_children(self.pid().as_raw());
        workers.sort_unstable();
        workers
    }

    /// Live (non-zombie) processes in the child's process group.
    pub fn group_members(&self) -> Vec<i32> {
        crate::fork::group_members(self.pid().as_raw().unsigned_abs())
    }

    /// Waits for the child to exit.
    ///
    /// # Panics
    ///
    /// When waiting fails.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the child")
    }

    /// Waits for the child to exit, polling, for at most `within`.
    ///
    /// # Panics
    ///
    /// When it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stdout lines still to come once the child is gone, until stdout closes (or 5 s pass
    /// without a line, when a stray grandchild keeps it open).
    pub fn remaining_lines(&self) -> Vec<String> {
        std::iter::from_fn(|| self.lines.recv_timeout(Duration::from_secs(5)).ok()).collect()
    }

    /// Everything the child wrote to stderr, once stderr closed (waiting at most 5 s, for when
    /// a stray grandchild keeps it open).
    pub fn stderr(&mut self) -> String {
        if self.stderr_text.is_none() {
            self.stderr_text = Some(
                self.stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default(),
            );
        }
        self.stderr_text.clone().unwrap_or_default()
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
