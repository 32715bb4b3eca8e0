//! Helpers shared by the end-to-end tests in `tests/` and the soak binary: reading `/proc`,
//! reading a child process's output, running the test servers, raw HTTP, and rendering the
//! service template.

pub mod http;
pub mod prefork;
pub mod process;
pub mod protocols;
pub mod service;
pub mod template;
pub mod upgrade;

pub mod metrics;
pub mod notify;

pub mod postgres;

use std::io::{BufRead, BufReader, Read};
use std::process::ChildStdout;
use std::sync::mpsc::{Receiver, channel};

pub mod fork;

/// The value of `field` (e.g. `"Uid:"`) in `/proc/<pid>/status`, with its whitespace collapsed
/// to single spaces; empty when the field is absent.
///
/// # Panics
///
/// When the process does not exist.
pub fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Its parent's pid.
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
}

/// Every process visible in `/proc`.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The command name may hold spaces and parentheses: the fields start after the
            // last `)`.
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(Proc {
                pid,
                state: fields.first()?.chars().next()?,
                ppid: fields.get(1)?.parse().ok()?,
                pgrp: fields.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// The live (non-zombie) children of `parent`.
pub fn live_children(parent: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// The lines `reader` produces, read on a thread of their own, as they arrive.
pub fn line_channel(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Reads a buvar service's JSON log lines until its `serving` event and returns the address it
/// serves on (`127.0.0.1:PORT`); the rest of the output is drained on a thread so the service
/// never blocks on a full pipe.
///
/// # Panics
///
/// When the output ends first or is not JSON lines.
pub fn serving_addr(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the service logs that it serves")
            .expect("utf-8 log lines");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["message"] == "serving" {
            let addr = event["addr"].as_str().expect("an address field");
            break addr.trim_start_matches("tcp://").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}
