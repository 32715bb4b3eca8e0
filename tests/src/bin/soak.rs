//! A soak run of the pre-fork supervisor: `prefork-server` under continuous HTTP load, a
//! SIGHUP (rolling restart) every 10 s and a `kill -9` of a random worker every 7 s.
//!
//! `soak [--seconds N] [--workers N] [--concurrency N]` (defaults: 600, 4, 16); run it through
//! `scripts/soak.sh`. It prints a progress line every 30 s and, at the end, total, failed and
//! refused requests and the supervisor's thread and open-file counts at start and end.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Args {
    seconds: u64,
    workers: usize,
    concurrency: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 600,
        workers: 4,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse()?,
            "--workers" => args.workers = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// Threads and open descriptors of `pid`.
fn footprint(pid: u32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    let files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, files)
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, why: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *failed.entry(why).or_default() += 1;
    }

    fn failed(&self) -> u64 {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.values().sum()
    }
}

/// What kind of failure: the innermost error's text, which is stable across requests.
fn kind(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let server = std::env::current_exe()?
        .parent()
        .context("the binary's directory")?
        .join("prefork-server");
    let mut child = Command::new(&server)
        .args(["--bind", "tcp://127.0.0.1:0", "--workers"])
        .arg(args.workers.to_string())
        .args(["--graceful-ms", "5000"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", server.display()))?;
    let supervisor = child.id();
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut addr = None;
    let mut ready = 0;
    while ready < args.workers {
        let line = lines.next().context("the server exited")??;
        if let Some(uri) = line.strip_prefix("BOUND tcp://") {
            addr = Some(uri.to_owned());
        }
        ready += usize::from(line.starts_with("READY"));
    }
    // Keep draining the server's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = format!("http://{}/pid", addr.context("no BOUND line")?);
    let start = footprint(supervisor);
    println!(
        "soak: {}s, {} workers, {} clients; supervisor {supervisor}: {} threads, {} open files",
        args.seconds, args.workers, args.concurrency, start.0, start.1
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, url, stop, tally) = (client.clone(), url.clone(), stop.clone(), tally.clone());
        clients.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.text().await {
                            Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                            Err(error) => {
                                tally.fail(format!("body: {}", kind(&error)));
                                0
                            }
                        };
                    }
                    Ok(response) => tally.fail(format!("status {}", response.status())),
                    Err(error) => tally.fail(kind(&error)),
                }
            }
        });
    }

    let began = Instant::now();
    let end = began + Duration::from_secs(args.seconds);
    let (mut next_hup, mut next_kill, mut next_report) = (10, 7, 30);
    let (mut hups, mut kills) = (0, 0);
    let mut random: u64 = u64::from(supervisor) | 1;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let elapsed = began.elapsed().as_secs();
        if elapsed >= next_hup {
            next_hup += 10;
            kill(Pid::from_raw(supervisor as i32), Signal::SIGHUP)?;
            hups += 1;
        }
        if elapsed >= next_kill {
            next_kill += 7;
            let workers = buvar_tests::live_children(supervisor as i32);
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            if !workers.is_empty() {
                let victim = workers[(random % workers.len() as u64) as usize];
                if kill(Pid::from_raw(victim), Signal::SIGKILL).is_ok() {
                    kills += 1;
                }
            }
        }
        if elapsed >= next_report {
            next_report += 30;
            let (threads, files) = footprint(supervisor);
            println!(
                "soak: {elapsed}s: {} ok, {} failed, {} workers, supervisor {threads} threads, \
                 {files} open files",
                tally.ok.load(Ordering::Relaxed),
                tally.failed(),
                buvar_tests::live_children(supervisor as i32).len()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
    let last = footprint(supervisor);
    // Each live worker costs the supervisor one descriptor (its status pipe); a worker killed
    // just before the end may not be back yet.
    let per_worker = |files: usize, workers: usize| files.saturating_sub(workers);
    let (start_workers, last_workers) = (
        args.workers,
        buvar_tests::live_children(supervisor as i32).len(),
    );
    kill(Pid::from_raw(supervisor as i32), Signal::SIGTERM)?;
    let status = child.wait()?;

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed();
    println!("soak: done after {:?}", began.elapsed());
    println!(
        "  requests: {} total, {ok} ok, {failed} failed",
        ok + failed
    );
    for (why, count) in tally
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("    {count} x {why}");
    }
    println!("  SIGHUPs: {hups}, workers killed with SIGKILL: {kills}");
    println!(
        "  supervisor threads: {} at start, {} at end; open files: {} at start, {} at end",
        start.0, last.0, start.1, last.1
    );
    println!("  supervisor exit: {status}");
    println!("  workers: {start_workers} at start, {last_workers} at end");
    if start.0 != last.0 || per_worker(start.1, start_workers) != per_worker(last.1, last_workers) {
        bail!("the supervisor's threads or open files (beyond one per worker) changed");
    }
    Ok(())
}
