//! Running the `prefork-server` binary in its own process group and watching what it says.

// Each test target uses a different part of these helpers.
#![allow(dead_code)]

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, channel},
    },
    time::{Duration, Instant},
};

use buvar_tests::processes;
use nix::{sys::signal::Signal, unistd::Pid};

/// A running server: its supervisor is the leader of its own process group.
pub(crate) struct Server {
    child: Child,
    lines: Receiver<String>,
    /// The `BOUND` URIs, in order.
    pub(crate) bound: Vec<String>,
    /// Every `READY` pid seen so far.
    pub(crate) ready: Vec<u32>,
    /// Every other line seen so far (`SLOW`, `FAILING`).
    pub(crate) events: Vec<String>,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        Self::try_start(args).expect("server did not bind")
    }

    /// Starts the server and waits for its `BOUND` lines (until the first `READY`); if it
    /// exits instead, the error is its exit status and its stderr.
    pub(crate) fn try_start(args: &[&str]) -> Result<Server, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prefork-server"));
        command.args(args);
        Self::spawn(command)
    }

    /// Runs `command` (which ends up executing the server) in its own process group.
    pub(crate) fn spawn(mut command: Command) -> Result<Server, String> {
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn prefork-server");
        let lines = buvar_tests::line_channel(child.stdout.take().expect("stdout"));
        let (etx, errors) = channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("server: {line}");
                all.push_str(&line);
                all.push('\n');
            }
            let _ = etx.send(all);
        });
        let mut server = Server {
            child,
            lines,
            bound: Vec::new(),
            ready: Vec::new(),
            events: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match server.next_line(deadline) {
                Some(line) => {
                    let first_ready = line.starts_with("READY");
                    server.record(line);
                    if first_ready {
                        return Ok(server);
                    }
                }
                None => {
                    let status = server.child.wait().expect("wait for the server");
                    let stderr = errors
                        .recv_timeout(Duration::from_secs(5))
                        .unwrap_or_default();
                    return Err(format!("{status}\n{stderr}"));
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The address of the first TCP socket, as `HOST:PORT`.
    pub(crate) fn addr(&self) -> String {
        self.bound
            .iter()
            .find_map(|uri| uri.strip_prefix("tcp://"))
            .expect("a tcp socket")
            .to_owned()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    fn record(&mut self, line: String) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("BOUND") => self.bound.push(words.next().unwrap_or_default().to_owned()),
            Some("READY") => {
                let pid = words.nth(1).and_then(|pid| pid.parse().ok()).expect("pid");
                self.ready.push(pid);
            }
            _ => self.events.push(line),
        }
    }

    /// Waits until `count` workers in all have reported `READY`; returns the newest `count`.
    pub(crate) fn wait_ready(&mut self, count: usize) -> Vec<u32> {
        self.wait_for(|server| server.ready.len() >= count, "READY lines");
        self.ready[self.ready.len() - count..].to_vec()
    }

    /// Waits for a line starting with `prefix` beyond the first `skip` such events.
    pub(crate) fn wait_event(&mut self, prefix: &str, skip: usize) -> String {
        self.wait_for(
            |server| {
                server
                    .events
                    .iter()
                    .filter(|e| e.starts_with(prefix))
                    .count()
                    > skip
            },
            prefix,
        );
        self.events
            .iter()
            .filter(|e| e.starts_with(prefix))
            .nth(skip)
            .cloned()
            .expect("event")
    }

    fn wait_for(&mut self, done: impl Fn(&Server) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            let line = self
                .next_line(deadline)
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            self.record(line);
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal the supervisor");
    }

    /// Waits for the supervisor to exit (polling with a deadline).
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "supervisor did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Live (non-zombie) processes in the server's process group.
    pub(crate) fn group_members(&self) -> Vec<i32> {
        processes()
            .into_iter()
            .filter(|p| p.pgrp == self.child.id() as i32 && p.state != 'Z')
            .map(|p| p.pid)
            .collect()
    }

    /// Live (non-zombie) children of the supervisor.
    pub(crate) fn workers(&self) -> Vec<i32> {
        workers_of(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Live (non-zombie) children of `parent`.
pub(crate) fn workers_of(parent: Pid) -> Vec<i32> {
    buvar_tests::live_children(parent.as_raw())
}

/// The pipes (`pipe:[inode]`) a process has open.
pub(crate) fn pipes(pid: i32) -> HashSet<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("pipe:"))
        .collect()
}

pub(crate) fn alive(pid: u32) -> bool {
    processes()
        .iter()
        .any(|p| p.pid == pid as i32 && p.state != 'Z')
}

/// Polls until `done` holds or `within` passes; returns whether it held.
pub(crate) fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub(crate) struct Load {
    pub(crate) ok: usize,
    pub(crate) refused: usize,
    pub(crate) failed: Vec<String>,
    pub(crate) pids: HashSet<u32>,
}

impl Load {
    fn merge(&mut self, other: Load) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.failed.extend(other.failed);
        self.pids.extend(other.pids);
    }
}

pub(crate) fn client(keep_alive: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    let builder = if keep_alive {
        builder
    } else {
        builder.pool_max_idle_per_host(0)
    };
    builder.build().expect("client")
}

/// `GET /pid` from `concurrency` loops until `stop` is set (or `limit` requests are done).
pub(crate) async fn load(
    client: reqwest::Client,
    url: String,
    concurrency: usize,
    limit: Option<usize>,
    stop: Arc<AtomicBool>,
) -> Load {
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, stop, started) =
            (client.clone(), url.clone(), stop.clone(), started.clone());
        tasks.spawn(async move {
            let mut seen = Load::default();
            while !stop.load(Ordering::SeqCst) {
                if limit.is_some_and(|limit| started.fetch_add(1, Ordering::SeqCst) >= limit) {
                    break;
                }
                match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.text().await.map(|body| body.parse::<u32>()) {
                            Ok(Ok(pid)) => {
                                seen.ok += 1;
                                seen.pids.insert(pid);
                            }
                            other => seen.failed.push(format!("bad body: {other:?}")),
                        }
                    }
                    Ok(response) => seen.failed.push(format!("status {}", response.status())),
                    Err(error) if is_refused(&error) => seen.refused += 1,
                    Err(error) => seen.failed.push(format!("{error:?}")),
                }
            }
            seen
        });
    }
    let mut total = Load::default();
    while let Some(seen) = tasks.join_next().await {
        total.merge(seen.expect("load task"));
    }
    total
}

pub(crate) use buvar_tests::fork::is_refused;
