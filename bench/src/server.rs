//! A server under test, run as a child process: when it answers, how much memory it and its
//! workers hold, and stopping it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Why a server could not be started, probed or measured.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The program could not be started.
    #[error("cannot start `{program}`: {source}; build it first (`scripts/bench-http.sh` does)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// The server did not answer 200 before the deadline.
    #[error("`{program}` did not answer 200 on {url} within {waited:?}{exit}")]
    NotReady {
        /// The program.
        program: String,
        /// The URL probed.
        url: String,
        /// How long the probe waited.
        waited: Duration,
        /// How the server exited, if it did.
        exit: String,
    },
    /// `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// A running server: a child process, and its own children when it forks workers.
#[derive(Debug)]
pub struct Server {
    program: String,
    child: Child,
    started: Instant,
    addr: SocketAddr,
}

impl Server {
    /// Starts `command` (its output discarded) as a server expected to listen on `addr`.
    pub fn spawn(mut command: Command, addr: SocketAddr) -> Result<Self, ServerError> {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let child = command.spawn().map_err(|source| ServerError::Spawn {
            program: program.clone(),
            source,
        })?;
        Ok(Self {
            program,
            child,
            started,
            addr,
        })
    }

    /// Probes `GET path` until it answers 200 and returns the time from just before the exec to
    /// that answer.
    pub fn wait_ready(&mut self, path: &str, deadline: Duration) -> Result<Duration, ServerError> {
        loop {
            if let Ok(200) = get_status(self.addr, path) {
                return Ok(self.started.elapsed());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || self.started.elapsed() > deadline {
                return Err(ServerError::NotReady {
                    program: self.program.clone(),
                    url: self.url(path),
                    waited: self.started.elapsed(),
                    exit: exited
                        .map(|s| format!(" (it exited: {s})"))
                        .unwrap_or_default(),
                });
            }
            // Connection refused comes back at once: a short pause keeps the probe from
            // stealing the CPU the server needs to start.
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits until the server has `count` child processes (its workers), or the deadline.
    pub fn wait_workers(&self, count: usize, deadline: Duration) -> Result<Vec<u32>, ServerError> {
        let until = Instant::now() + deadline;
        loop {
            let workers = children(self.child.id())?;
            if workers.len() >= count || Instant::now() > until {
                return Ok(workers);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The resident memory of the server process and of each of its children (workers).
    pub fn memory(&self) -> Result<Memory, ServerError> {
        let pid = self.child.id();
        let workers = children(pid)?
            .into_iter()
            .map(rss_kib)
            .collect::<Result<_, _>>()?;
        Ok(Memory {
            parent_kib: rss_kib(pid)?,
            workers_kib: workers,
        })
    }

    /// Sends SIGTERM and waits for the exit; SIGKILLs the process and its workers when that
    /// takes longer than `grace`.
    pub fn stop(mut self, grace: Duration) {
        let pid = self.child.id();
        let workers = children(pid).unwrap_or_default();
        let Ok(raw) = i32::try_from(pid) else {
            return;
        };
        let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for worker in workers {
            if let Ok(worker) = i32::try_from(worker) {
                let _ = kill(Pid::from_raw(worker), Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a server: the process started and its children (workers), in KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS` of the process started.
    pub parent_kib: u64,
    /// `VmRSS` of each child process.
    pub workers_kib: Vec<u64>,
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The status code of one `GET path` over a fresh connection.
pub fn get_status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP status line"))
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, ServerError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|source| ServerError::Proc {
        path: path.clone(),
        source,
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| ServerError::Proc {
            path,
            source: io::Error::new(io::ErrorKind::InvalidData, "no `VmRSS:` line"),
        })
}

/// The processes whose parent is `pid`, found by scanning `/proc/*/stat`.
pub fn children(pid: u32) -> Result<Vec<u32>, ServerError> {
    let entries = std::fs::read_dir("/proc").map_err(|source| ServerError::Proc {
        path: "/proc".to_owned(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if parent_of(&stat) == Some(pid) {
            found.push(child);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the `)` that closes the
/// command name (which may itself hold spaces and parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_pid_is_read_past_a_command_name_with_spaces() {
        assert_eq!(parent_of("42 (a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn a_spawned_child_is_found_and_stopped() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().unwrap()));
        let server = Server::spawn(command, addr).unwrap();
        let pid = server.child.id();
        assert!(children(std::process::id()).unwrap().contains(&pid));
        server.stop(Duration::from_secs(5));
        assert!(!children(std::process::id()).unwrap().contains(&pid));
    }

    #[test]
    fn a_server_that_exits_is_reported_as_not_ready() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().unwrap()));
        let mut server = Server::spawn(Command::new("true"), addr).unwrap();
        let err = server.wait_ready("/", Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("it exited"), "{err}");
    }

    #[test]
    fn get_status_reads_the_status_code() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The whole head, not one read of it: closing with a part unread would answer the
            // client with a reset instead of the status.
            let mut head = Vec::new();
            let mut buf = [0_u8; 256];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before its head ended");
                head.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(get_status(addr, "/").unwrap(), 204);
        answer.join().unwrap();
    }
}
