//! A pre-forked HTTP server for the end-to-end tests: `GET /pid` answers the worker's pid,
//! `GET /slow?ms=N` answers after N milliseconds, `GET /block?ms=N` blocks the worker's runtime
//! for N milliseconds, `GET /pdeathsig` answers the worker's parent-death signal number (0 for
//! none), `GET /orphan` starts a grandchild that outlives its parent and answers its pid.
//!
//! Arguments: `--bind URI` (repeatable), `--workers N`, `--graceful-ms N`,
//! `--ready-timeout-ms N`, `--heartbeat-ms N`, `--max-requests N`, `--user NAME`,
//! `--group NAME`, `--unix-mode OCTAL`, `--fail-if-exists PATH` (a worker exits before becoming
//! ready while PATH exists).
//!
//! Stdout, one line per event: `BOUND <uri>` per socket from the supervisor before forking,
//! `READY <index> <pid>` from each worker once it accepts, `SLOW <pid>` when a slow request
//! starts, `BLOCK <pid>` when a blocking one starts, `FAILING <pid>` from a worker told to fail,
//! `USR1 <pid>` when a worker gets SIGUSR1.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use axum::{Router, extract::Query, routing::get};
use buvar_axum::{
    fork::{self, Credentials, Prefork, Worker},
    serving::{ServeOptions, Serving},
    sockets::{BindOptions, bind, parse_uris},
};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Default)]
struct Args {
    binds: Vec<String>,
    workers: usize,
    graceful: Option<Duration>,
    ready_timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    max_requests: Option<u64>,
    user: Option<String>,
    group: Option<String>,
    unix_mode: Option<u32>,
    fail_if_exists: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        workers: 2,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bind" => args.binds.push(value()?),
            "--workers" => args.workers = value()?.parse()?,
            "--graceful-ms" => args.graceful = Some(Duration::from_millis(value()?.parse()?)),
            "--ready-timeout-ms" => {
                args.ready_timeout = Some(Duration::from_millis(value()?.parse()?));
            }
            "--heartbeat-ms" => args.heartbeat = Some(Duration::from_millis(value()?.parse()?)),
            "--max-requests" => args.max_requests = Some(value()?.parse()?),
            "--user" => args.user = Some(value()?),
            "--group" => args.group = Some(value()?),
            "--unix-mode" => args.unix_mode = Some(u32::from_str_radix(&value()?, 8)?),
            "--fail-if-exists" => args.fail_if_exists = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line keeps lines from different processes on the shared pipe whole.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
}

fn router() -> Router {
    Router::new()
        .route("/pid", get(|| async { std::process::id().to_string() }))
        .route(
            "/slow",
            get(|Query(slow): Query<Slow>| async move {
                say(&format!("SLOW {}", std::process::id()));
                tokio::time::sleep(Duration::from_millis(slow.ms)).await;
                "slow done"
            }),
        )
        .route(
            "/block",
            get(|Query(slow): Query<Slow>| async move {
                say(&format!("BLOCK {}", std::process::id()));
                // Deliberately blocking: the runtime stops, as with a synchronous call gone wrong.
                std::thread::sleep(Duration::from_millis(slow.ms));
                "block done"
            }),
        )
        .route(
            "/pdeathsig",
            get(|| async {
                let signal = nix::sys::prctl::get_pdeathsig().ok().flatten();
                signal.map_or(0, |signal| signal as i32).to_string()
            }),
        )
        .route("/orphan", get(orphan))
}

/// A shell whose background `sleep` outlives it: the sleep is orphaned and reparented to the
/// nearest reaper (the supervisor when it runs as pid 1 of a pid namespace).
async fn orphan() -> String {
    let out = tokio::process::Command::new("sh")
        .args(["-c", "sleep 0.5 </dev/null >/dev/null 2>&1 & echo $!"])
        .output()
        .await;
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(error) => format!("error: {error}"),
    }
}

fn run_worker(
    worker: &mut Worker,
    fail_if_exists: Option<&PathBuf>,
    max_requests: Option<u64>,
) -> anyhow::Result<()> {
    if fail_if_exists.is_some_and(|path| path.exists()) {
        say(&format!("FAILING {}", std::process::id()));
        bail!("told to fail before becoming ready");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut shutdown = worker.watch_shutdown()?;
        let options = ServeOptions::default()
            .graceful_timeout(worker.graceful_timeout())
            .max_requests(max_requests, 0);
        let serving = Serving::start(worker.take_sockets(), router(), options)?;
        let mut user1 = signal(SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while user1.recv().await.is_some() {
                say(&format!("USR1 {}", std::process::id()));
            }
        });
        say(&format!("READY {} {}", worker.index(), std::process::id()));
        worker.notify_ready()?;
        fork::drain_on_shutdown(worker, &mut shutdown, serving).await;
        Ok(())
    })
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = parse_args()?;
    let uris = parse_uris(&args.binds)?;
    let options = BindOptions::default().unix_mode(args.unix_mode);
    let sockets = bind(&uris, &options)?;
    for socket in &sockets {
        say(&format!("BOUND {}", socket.local_addr()));
    }
    let credentials = match &args.user {
        Some(user) => Some(Credentials::lookup(user, args.group.as_deref())?),
        None => None,
    };
    let mut prefork = Prefork::new(sockets)
        .workers(args.workers)
        .credentials(credentials);
    if let Some(heartbeat) = args.heartbeat {
        prefork = prefork.heartbeat_timeout(Some(heartbeat));
    }
    if let Some(graceful) = args.graceful {
        prefork = prefork.graceful_timeout(graceful);
    }
    if let Some(ready_timeout) = args.ready_timeout {
        prefork = prefork.ready_timeout(ready_timeout);
    }
    let fail_if_exists = args.fail_if_exists;
    let max_requests = args.max_requests;
    let code = prefork.run(|mut worker| {
        match run_worker(&mut worker, fail_if_exists.as_ref(), max_requests) {
            Ok(()) => 0,
            Err(error) => {
                tracing::error!(index = worker.index(), "worker failed: {error:#}");
                3
            }
        }
    })?;
    Ok(code)
}
