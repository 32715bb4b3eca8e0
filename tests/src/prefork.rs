//! Running the `prefork-server` binary in its own process group and watching what it says;
//! polling helpers and an HTTP load generator for the pre-fork tests.

use std::{
    collections::HashSet,
    process::{Command, ExitStatus},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::process::{GroupChild, bin_path};
use crate::processes;

/// A running `prefork-server`: its supervisor is the leader of its own process group, killed
/// with the whole group when this is dropped.
#[derive(Debug)]
pub struct Server {
    child: GroupChild,
    /// The `BOUND` URIs, in order.
    pub bound: Vec<String>,
    /// Every `READY` pid seen so far.
    pub ready: Vec<u32>,
    /// Every other line seen so far (`SLOW`, `FAILING`).
    pub events: Vec<String>,
}

impl Server {
    /// The `prefork-server` binary.
    pub fn binary() -> std::path::PathBuf {
        bin_path("prefork-server")
    }

    /// Starts the server with `args` and waits for its first `READY`.
    ///
    /// # Panics
    ///
    /// When it exits first.
    pub fn start(args: &[&str]) -> Server {
        Self::try_start(args).expect("server did not bind")
    }

    /// Starts the server and waits for its `BOUND` lines (until the first `READY`); if it
    /// exits instead, the error is its exit status and its stderr.
    ///
    /// # Errors
    ///
    /// The exit status and stderr of a server that ended before it was ready.
    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        let mut command = Command::new(Self::binary());
        command.args(args);
        Self::spawn(command)
    }

    /// Runs `command` (which ends up executing the server) in its own process group.
    ///
    /// # Errors
    ///
    /// The exit status and stderr of a server that ended before it was ready.
    pub fn spawn(mut command: Command) -> Result<Server, String> {
        command.env(
            "RUST_LOG",
            std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        );
        let mut server = Server {
            child: GroupChild::spawn(&mut command, Some("server")),
            bound: Vec::new(),
            ready: Vec::new(),
            events: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match server.child.next_line(deadline) {
                Some(line) => {
                    let first_ready = line.starts_with("READY");
                    server.record(line);
                    if first_ready {
                        return Ok(server);
                    }
                }
                None => {
                    let status = server.child.wait();
                    return Err(format!("{status}\n{}", server.child.stderr()));
                }
            }
        }
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.child.pid()
    }

    /// The address of the first TCP socket, as `HOST:PORT`.
    ///
    /// # Panics
    ///
    /// When the server bound no TCP socket.
    pub fn addr(&self) -> String {
        self.bound
            .iter()
            .find_map(|uri| uri.strip_prefix("tcp://"))
            .expect("a tcp socket")
            .to_owned()
    }

    /// `http://HOST:PORT` of the first TCP socket, joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
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
    pub fn wait_ready(&mut self, count: usize) -> Vec<u32> {
        self.wait_for(|server| server.ready.len() >= count, "READY lines");
        self.ready[self.ready.len() - count..].to_vec()
    }

    /// Waits for a line starting with `prefix` beyond the first `skip` such events.
    pub fn wait_event(&mut self, prefix: &str, skip: usize) -> String {
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
                .child
                .next_line(deadline)
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            self.record(line);
        }
    }

    /// Sends `signal` to the supervisor alone.
    pub fn signal(&self, signal: Signal) {
        self.child.signal(signal);
    }

    /// Waits for the supervisor to exit (polling with a deadline).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        self.child.wait_exit(within)
    }

    /// Live (non-zombie) processes in the server's process group.
    pub fn group_members(&self) -> Vec<i32> {
        self.child.group_members()
    }

    /// Live (non-zombie) children of the supervisor.
    pub fn workers(&self) -> Vec<i32> {
        self.child.workers()
    }
}

/// Live (non-zombie) children of `parent`.
pub fn workers_of(parent: Pid) -> Vec<i32> {
    crate::live_children(parent.as_raw())
}

/// The pipes (`pipe:[inode]`) a process has open.
pub fn pipes(pid: i32) -> HashSet<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("pipe:"))
        .collect()
}

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    processes()
        .iter()
        .any(|p| p.pid == pid as i32 && p.state != 'Z')
}

/// Polls until `done` holds or `within` passes; returns whether it held.
pub fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
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
pub struct Load {
    /// Requests answered with a pid.
    pub ok: usize,
    /// Connections refused.
    pub refused: usize,
    /// Every other failure, described.
    pub failed: Vec<String>,
    /// The worker pids that answered.
    pub pids: HashSet<u32>,
}

impl Load {
    fn merge(&mut self, other: Load) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.failed.extend(other.failed);
        self.pids.extend(other.pids);
    }
}

/// A reqwest client with a 10 s timeout that keeps connections alive, or opens one per
/// request.
///
/// # Panics
///
/// When the client cannot be built.
pub fn client(keep_alive: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    let builder = if keep_alive {
        builder
    } else {
        builder.pool_max_idle_per_host(0)
    };
    builder.build().expect("client")
}

/// `GET /pid` from `concurrency` loops until `stop` is set (or `limit` requests are done).
///
/// # Panics
///
/// When a load task panics.
pub async fn load(
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

pub use crate::fork::is_refused;
