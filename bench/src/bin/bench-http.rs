//! The HTTP harness: starts each server variant in turn, drives it with wrk in interleaved
//! rounds, and prints requests/s and p99 latency (medians of the rounds) with their ratios
//! against plain axum; then the start-up time and resident memory of the example service.
//!
//! Run it through `scripts/bench-http.sh`, which builds the servers in release mode first.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use buvar_bench::server::{Memory, Server, ServerError, free_port};
use buvar_bench::stats::{median, ratio};
use buvar_bench::wrk::{self, Load, WrkError};
use clap::Parser;

/// Flags of the harness.
#[derive(Debug, Parser)]
struct Flags {
    /// Interleaved rounds; each runs every variant once, starting from a different one.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of each measured wrk run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of the unmeasured warm-up run before each measured one.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Start-up runs of the example per worker count (0 skips the start-up and memory part).
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// Only these variants: a to e are the issue's, f to j isolate causes of a gap (f: as c on
    /// a multi-thread runtime; g, h: as c, d with the log level at warn; i: as a with
    /// tower-http layers like buvar's; j: as c with the three extractors). Default: a to e, i
    /// and j.
    #[arg(long, value_delimiter = ',')]
    only: Vec<char>,
    /// Where the release binaries are (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// Why the harness stopped.
#[derive(Debug, thiserror::Error)]
enum HarnessError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Wrk(#[from] WrkError),
    #[error("no free port on 127.0.0.1: {0}")]
    Port(#[from] std::io::Error),
    #[error("cannot tell where the binaries are; pass `--bin-dir target/release`")]
    BinDir,
}

/// One server set-up under test.
#[derive(Debug, Clone, Copy)]
struct Variant {
    key: char,
    name: &'static str,
    program: &'static str,
    forks: Option<&'static str>,
    path: &'static str,
    /// More `APP_*` variables for the buvar server.
    env: &'static [(&'static str, &'static str)],
    /// Not one of the variants: it isolates one cause of a gap, run with `--only`.
    diagnostic: bool,
}

const VARIANTS: [Variant; 10] = [
    Variant {
        key: 'a',
        name: "plain axum, multi-thread runtime",
        program: "plain-axum",
        forks: None,
        path: "/",
        env: &[],
        diagnostic: false,
    },
    Variant {
        key: 'b',
        name: "actix-web, default workers",
        program: "actix",
        forks: None,
        path: "/",
        env: &[],
        diagnostic: false,
    },
    Variant {
        key: 'c',
        name: "buvar-axum, one process (FORKS=1)",
        program: "buvar-server",
        forks: Some("1"),
        path: "/",
        env: &[],
        diagnostic: false,
    },
    Variant {
        key: 'd',
        name: "buvar-axum, one worker per CPU (FORKS=0)",
        program: "buvar-server",
        forks: Some("0"),
        path: "/",
        env: &[],
        diagnostic: false,
    },
    Variant {
        key: 'e',
        name: "as (d), handler with Component+Inject+Config",
        program: "buvar-server",
        forks: Some("0"),
        path: "/",
        env: &[("BENCH_HANDLER", "extract")],
        diagnostic: false,
    },
    Variant {
        key: 'f',
        name: "as (c), multi-thread runtime (THREADS=2)",
        program: "buvar-server",
        forks: Some("1"),
        path: "/",
        env: &[("APP_HTTP_THREADS", "2")],
        diagnostic: true,
    },
    Variant {
        key: 'g',
        name: "as (c), log level warn (no request span)",
        program: "buvar-server",
        forks: Some("1"),
        path: "/",
        env: &[("APP_LOG_LEVEL", "warn")],
        diagnostic: true,
    },
    Variant {
        key: 'h',
        name: "as (d), log level warn (no request span)",
        program: "buvar-server",
        forks: Some("0"),
        path: "/",
        env: &[("APP_LOG_LEVEL", "warn")],
        diagnostic: true,
    },
    Variant {
        key: 'i',
        name: "as (a), with tower-http layers like buvar's",
        program: "plain-axum",
        forks: None,
        path: "/",
        env: &[("PLAIN_AXUM_LAYERS", "1")],
        // Run by default: it tells the cost of the layers from the cost of the kit.
        diagnostic: false,
    },
    Variant {
        key: 'j',
        name: "as (c), handler with Component+Inject+Config",
        program: "buvar-server",
        forks: Some("1"),
        path: "/",
        env: &[("BENCH_HANDLER", "extract")],
        // Run by default: (e) against (d) moves with how the kernel spreads the connections
        // over the two workers; (j) against (c) has one process and does not.
        diagnostic: false,
    },
];

const READY_DEADLINE: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A buvar service's environment for `port`, with its own defaults otherwise.
fn buvar_command(program: &Path, port: u16, forks: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("APP_HTTP_HOST", "127.0.0.1")
        .env("APP_HTTP_PORT", port.to_string())
        .env("APP_HTTP_FORKS", forks)
        .env_remove("APP_CONFIG")
        .env_remove("RUST_LOG");
    command
}

fn start(bin_dir: &Path, variant: &Variant) -> Result<Server, HarnessError> {
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let program = bin_dir.join(variant.program);
    let command = match variant.forks {
        Some(forks) => {
            let mut command = buvar_command(&program, port, forks);
            command.envs(variant.env.iter().copied());
            command
        }
        None => {
            let mut command = Command::new(&program);
            command
                .arg(addr.to_string())
                .envs(variant.env.iter().copied());
            command
        }
    };
    let mut server = Server::spawn(command, addr)?;
    server.wait_ready(variant.path, READY_DEADLINE)?;
    Ok(server)
}

#[derive(Debug, Default)]
struct Samples {
    rps: Vec<f64>,
    p99_us: Vec<f64>,
    errors: u64,
    memory: Option<Memory>,
}

fn http_rounds(flags: &Flags, bin_dir: &Path) -> Result<(), HarnessError> {
    let variants: Vec<Variant> = VARIANTS
        .into_iter()
        .filter(|v| {
            if flags.only.is_empty() {
                !v.diagnostic
            } else {
                flags.only.contains(&v.key)
            }
        })
        .collect();
    let load = Load {
        threads: flags.threads,
        connections: flags.connections,
        duration: Duration::from_secs(flags.duration),
    };
    let warmup = Load {
        duration: Duration::from_secs(flags.warmup),
        ..load
    };
    let mut samples: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
    for round in 0..flags.rounds {
        for i in 0..variants.len() {
            let at = (i + round) % variants.len();
            let variant = &variants[at];
            let server = start(bin_dir, variant)?;
            let url = server.url(variant.path);
            if flags.warmup > 0 {
                wrk::run(warmup, &url)?;
            }
            let report = wrk::run(load, &url)?;
            let memory = server.memory()?;
            server.stop(STOP_GRACE);
            eprintln!(
                "round {}/{} ({}) {:>10.0} req/s  p99 {:>8.0} us  errors {}",
                round + 1,
                flags.rounds,
                variant.key,
                report.requests_per_sec,
                report.p99.as_secs_f64() * 1e6,
                report.errors
            );
            let sample = &mut samples[at];
            sample.rps.push(report.requests_per_sec);
            sample.p99_us.push(report.p99.as_secs_f64() * 1e6);
            sample.errors += report.errors;
            sample.memory = Some(memory);
        }
    }
    println!(
        "## HTTP: wrk -t{} -c{} -d{}s, median of {} interleaved rounds\n",
        flags.threads, flags.connections, flags.duration, flags.rounds
    );
    println!(
        "| variant | req/s | req/s vs (a) | p99 | p99 vs (a) | errors | RSS after load (KiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let baseline = variants
        .iter()
        .position(|v| v.key == 'a')
        .map(|i| (median(&samples[i].rps), median(&samples[i].p99_us)));
    let mut medians = Vec::new();
    for (variant, sample) in variants.iter().zip(&samples) {
        let rps = median(&sample.rps);
        let p99 = median(&sample.p99_us);
        let (base_rps, base_p99) = baseline.unwrap_or((None, None));
        println!(
            "| ({}) {} | {} | {} | {} | {} | {} | {} |",
            variant.key,
            variant.name,
            fmt(rps, 0, ""),
            fmt(ratio(rps, base_rps), 3, ""),
            fmt(p99, 0, " us"),
            fmt(ratio(p99, base_p99), 2, ""),
            sample.errors,
            sample.memory.as_ref().map(fmt_memory).unwrap_or_default()
        );
        medians.push((variant.key, rps));
    }
    targets(&medians);
    Ok(())
}

fn targets(medians: &[(char, Option<f64>)]) {
    let of = |key| {
        medians
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| *v)
    };
    let checks = [
        ("(c) >= 0.97 x (a)", ratio(of('c'), of('a')), 0.97),
        ("(d) >= 1.10 x (a)", ratio(of('d'), of('a')), 1.10),
        ("(d) >= (b)", ratio(of('d'), of('b')), 1.0),
        ("(e) >= 0.95 x (d)", ratio(of('e'), of('d')), 0.95),
        (
            "(j) >= 0.95 x (c), the same in one process",
            ratio(of('j'), of('c')),
            0.95,
        ),
    ];
    println!("\n| target | ratio | met |\n| --- | ---: | --- |");
    for (name, ratio, want) in checks {
        let met = match ratio {
            Some(r) if r >= want => "yes",
            Some(_) => "**no**",
            None => "not run",
        };
        println!("| {name} | {} | {met} |", fmt(ratio, 3, ""));
    }
}

fn fmt(value: Option<f64>, decimals: usize, unit: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}{unit}"))
}

fn fmt_memory(memory: &Memory) -> String {
    if memory.workers_kib.is_empty() {
        return format!("{}", memory.parent_kib);
    }
    let workers: Vec<String> = memory.workers_kib.iter().map(u64::to_string).collect();
    format!(
        "parent {}, workers {}",
        memory.parent_kib,
        workers.join(" / ")
    )
}

/// Start-up to the first 200 from `/healthz`, and memory after start and after load, of the
/// example service with one worker and with one per CPU.
fn startup(flags: &Flags, bin_dir: &Path) -> Result<(), HarnessError> {
    let hello = bin_dir.join("examples").join("hello");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\n## Start-up and memory of the `hello` example: median of {} runs\n",
        flags.startup_runs
    );
    println!(
        "| workers | exec to first 200 from /healthz | RSS after start (KiB) | RSS after {}s of load (KiB) |",
        flags.duration
    );
    println!("| --- | ---: | --- | --- |");
    for (forks, label, workers) in [
        ("1", "1 (no fork)".to_owned(), 0),
        ("0", format!("{cpus} (one per CPU)"), cpus),
    ] {
        let mut times = Vec::new();
        let mut after_start = None;
        for _ in 0..flags.startup_runs {
            let port = free_port()?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut server = Server::spawn(buvar_command(&hello, port, forks), addr)?;
            let ready = server.wait_ready("/healthz", READY_DEADLINE)?;
            times.push(ready.as_secs_f64() * 1e3);
            server.wait_workers(workers, READY_DEADLINE)?;
            after_start = Some(server.memory()?);
            server.stop(STOP_GRACE);
        }
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut server = Server::spawn(buvar_command(&hello, port, forks), addr)?;
        server.wait_ready("/healthz", READY_DEADLINE)?;
        server.wait_workers(workers, READY_DEADLINE)?;
        let load = Load {
            threads: flags.threads,
            connections: flags.connections,
            duration: Duration::from_secs(flags.duration),
        };
        wrk::run(load, &server.url("/greet/ada"))?;
        let after_load = server.memory()?;
        server.stop(STOP_GRACE);
        println!(
            "| {label} | {} | {} | {} |",
            fmt(median(&times), 1, " ms"),
            after_start.as_ref().map(fmt_memory).unwrap_or_default(),
            fmt_memory(&after_load)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let bin_dir = match flags.bin_dir.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
    }) {
        Some(dir) => dir,
        None => {
            eprintln!("error: {}", HarnessError::BinDir);
            return ExitCode::from(2);
        }
    };
    let mut result = if flags.rounds > 0 {
        http_rounds(&flags, &bin_dir)
    } else {
        Ok(())
    };
    if result.is_ok() && flags.startup_runs > 0 {
        result = startup(&flags, &bin_dir);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
