//! The template rendered with `database=postgres`, against a real PostgreSQL: the service's own
//! tests, CRUD over HTTP through 2 workers, a database outage while serving, the database down
//! at start, and two services migrating one database at once.
//!
//! Every test here needs the throw-away server `.ci/run` starts (`BUVAR_TEST_DATABASE_URL`),
//! and cargo-generate: without them they are ignored, and `cargo test` lists them as such.
//! `.ci/run` runs them with `--include-ignored --test-threads=1`, since one test stops and
//! starts the server.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use buvar_tests::postgres::Postgres;
use buvar_tests::template::{
    TemplateSource, patch_to_workspace, render, shared_target, template_dir,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const NAME: &str = "buvar-db";
const PREFIX: &str = "BUVAR_DB";
/// An upper bound for a loaded machine, never a pause.
const PATIENCE: Duration = Duration::from_secs(60);

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.stdin(Stdio::null()).env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?} failed with {status}");
}

/// The rendered service and its binary.
struct Rendered {
    dir: PathBuf,
    target: PathBuf,
    binary: PathBuf,
}

impl Rendered {
    fn cargo(&self, args: &[&str]) -> Command {
        let mut command = cargo();
        command
            .args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            // Compiled once and never stepped through: debug info and incremental state would
            // cost minutes of a 2-core run.
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0");
        command
    }
}

/// Renders the template with `database=postgres` into the target directory, points its buvar
/// dependencies at this workspace and builds it; once per test binary.
fn rendered() -> &'static Rendered {
    static RENDERED: OnceLock<Rendered> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let parent = shared_target().join("rendered").join("database");
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        let dir = render(
            &TemplateSource::Path(template_dir()),
            NAME,
            &parent,
            &[("database", "postgres")],
        )
        .unwrap_or_else(|err| panic!("cannot render the template: {err:#}"));
        patch_to_workspace(&dir);
        let target = shared_target();
        let rendered = Rendered {
            binary: target.join("debug").join(NAME),
            dir,
            target,
        };
        run(&mut rendered.cargo(&["build"]));
        rendered
    })
}

/// The rendered service, started with a clean `BUVAR_DB_*` environment and JSON logs; its
/// whole process group is killed when dropped.
struct Service {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    /// `host:port` of its first `serving` line.
    addr: String,
}

fn service_command(url: &str, env: &[(&str, &str)]) -> Command {
    let rendered = rendered();
    let mut command = Command::new(&rendered.binary);
    for (name, _) in std::env::vars() {
        if name.starts_with(&format!("{PREFIX}_")) {
            command.env_remove(name);
        }
    }
    command
        .current_dir(&rendered.dir)
        .args(["--config", "config.toml"])
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env(format!("{PREFIX}_HTTP_PORT"), "0")
        // The template serves its metrics on :9090; two services at once (and any other server
        // on this machine) need a free port of their own, on another address than the service's
        // `127.0.0.1:0`, which would read as the same socket.
        .env(format!("{PREFIX}_METRICS_LISTEN"), "tcp://127.0.0.2:0")
        .env(format!("{PREFIX}_LOG_FORMAT"), "json")
        .env(format!("{PREFIX}_DATABASE_URL"), url)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(format!("{PREFIX}_{name}"), value);
    }
    command
}

impl Service {
    /// Starts the service and waits for `workers` `serving` lines.
    fn start(url: &str, env: &[(&str, &str)], workers: usize) -> Service {
        let mut child = service_command(url, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("the service starts");
        let lines = buvar_tests::line_channel(child.stdout.take().expect("stdout"));
        let mut service = Service {
            child,
            lines,
            seen: Vec::new(),
            addr: String::new(),
        };
        for _ in 0..workers {
            let serving = service.wait_for("serving");
            if service.addr.is_empty() {
                let addr = serving["addr"].as_str().expect("an address");
                service.addr = addr.trim_start_matches("tcp://").to_owned();
            }
        }
        service
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next log line whose message is `message`.
    fn wait_for(&mut self, message: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no `{message}` line; so far: {:#?}", self.seen));
            self.seen.push(line.clone());
            let event: Value = serde_json::from_str(&line).expect("JSON log lines");
            if event["message"] == message {
                return event;
            }
        }
    }

    /// Every line read so far, as JSON.
    fn events(&self) -> Vec<Value> {
        self.seen
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then the exit status, which must be 0.
    fn stop(mut self) {
        kill(Pid::from_raw(self.pid()), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        // The output ends with the process: what it said since start-up explains a failure.
        self.seen.extend(self.lines.try_iter());
        let complaints: Vec<&String> = self
            .seen
            .iter()
            .filter(|line| line.contains("\"ERROR\"") || line.contains("\"WARN\""))
            .collect();
        assert_eq!(status.code(), Some(0), "{status}: {complaints:#?}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(-self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One HTTP call: the status, the JSON body (or null) and how long it took.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(u16, Value, Duration), reqwest::Error> {
    let started = Instant::now();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, body, started.elapsed()))
}

/// Create, read, update and delete one note; whether every answer was the expected one.
async fn crud(client: &reqwest::Client, service_url: &str, n: usize) -> Result<(), String> {
    use reqwest::Method;
    let url = format!("{service_url}/notes");
    let note = json!({ "title": format!("note {n}"), "body": "text" });
    let (status, created, _) = call(client, Method::POST, &url, Some(note))
        .await
        .map_err(|e| e.to_string())?;
    if status != 201 {
        return Err(format!("create: {status} {created}"));
    }
    let one = format!("{url}/{}", created["id"]);
    let steps = [
        (Method::GET, None, 200),
        (Method::PUT, Some(json!({ "title": "changed" })), 200),
        (Method::DELETE, None, 204),
    ];
    for (method, body, expected) in steps {
        let (status, answer, _) = call(client, method.clone(), &one, body)
            .await
            .map_err(|e| e.to_string())?;
        if status != expected {
            return Err(format!("{method}: {status} {answer}"));
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs PostgreSQL and cargo-generate: `bash .ci/run test` runs it"]
fn the_rendered_service_passes_its_checks_and_its_database_tests() {
    let pg = Postgres::from_env();
    let url = pg.fresh_database("buvar_db_own_tests");
    let rendered = rendered();
    run(&mut rendered.cargo(&["fmt", "--all", "--check"]));
    run(&mut rendered.cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]));
    let output = rendered
        .cargo(&["test", "--", "--include-ignored"])
        .env(format!("{PREFIX}_DATABASE_URL"), &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for test in [
        "a_note_is_created_read_listed_updated_and_deleted",
        "invalid_notes_are_422_naming_the_field",
        "readyz_pings_the_database",
    ] {
        assert!(stdout.contains(&format!("{test} ... ok")), "{stdout}");
    }
}

#[test]
#[ignore = "needs PostgreSQL and cargo-generate: `bash .ci/run test` runs it"]
fn a_thousand_concurrent_crud_clients_over_2_workers_fail_none_within_10_connections() {
    let pg = Postgres::from_env();
    let database = "buvar_db_load";
    let url = pg.fresh_database(database);
    // 1,000 clients queue for 10 connections: they wait for one rather than get a 503
    // after the default 2 s (in this debug build on a loaded machine, 990 of 1,000 did).
    let env = [
        ("HTTP_FORKS", "2"),
        ("DATABASE_POOL_SIZE", "5"),
        ("DATABASE_ACQUIRE_TIMEOUT", "120"),
    ];
    let service = Service::start(&url, &env, 2);

    // Sample what PostgreSQL sees for this database while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (pg, done, peak) = (pg.clone(), done.clone(), peak.clone());
        std::thread::spawn(move || {
            let sql = format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' \
                 AND backend_type = 'client backend'"
            );
            let mut samples = 0;
            while !done.load(Ordering::SeqCst) {
                let seen: usize = pg.psql("postgres", &sql).parse().unwrap();
                peak.fetch_max(seen, Ordering::SeqCst);
                samples += 1;
            }
            samples
        })
    };

    let base = service.url("");
    let failures = runtime().block_on(async move {
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..1000)
            .map(|n| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move { crud(&client, &base, n).await })
            })
            .collect();
        let mut failures = Vec::new();
        for task in tasks {
            if let Err(err) = task.await.unwrap() {
                failures.push(err);
            }
        }
        failures
    });
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    eprintln!(
        "1000 concurrent CRUD clients: {} failed; peak connections {peak} over {samples} samples",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        samples > 0 && peak > 0,
        "the sampler saw the service's connections"
    );
    assert!(
        peak <= 10,
        "PostgreSQL saw {peak} connections from 2 workers x 5"
    );
    service.stop();
}

/// Starts the server again if a test that stopped it panics, so the next test has one.
struct Restart<'a>(&'a Postgres, bool);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.start();
        }
    }
}

/// Polls `/readyz` until its status is `want` (a probe's own rhythm, bounded by PATIENCE);
/// returns the body and how long it took.
async fn readyz_until(client: &reqwest::Client, service: &str, want: u16) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let response = client
            .get(format!("{service}/readyz"))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == want {
            return (response.text().await.unwrap(), started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "/readyz never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
#[ignore = "needs PostgreSQL and cargo-generate: `bash .ci/run test` runs it"]
fn a_database_outage_is_503_on_readyz_and_requests_without_restarting_a_worker() {
    use reqwest::Method;
    let pg = Postgres::from_env();
    let url = pg.fresh_database("buvar_db_outage");
    let service = Service::start(
        &url,
        &[
            ("HTTP_FORKS", "2"),
            ("DATABASE_ACQUIRE_TIMEOUT", "1"),
            ("READINESS_CACHE", "0.5"),
        ],
        2,
    );
    let workers = buvar_tests::live_children(service.pid());
    assert_eq!(workers.len(), 2);
    let base = service.url("");
    let password = pg.password();
    runtime().block_on(async {
        let client = reqwest::Client::new();
        crud(&client, &base, 0).await.unwrap();
        assert_eq!(readyz_until(&client, &base, 200).await.0, "ready");

        pg.stop();
        let mut restart = Restart(&pg, true);
        let (body, took) = readyz_until(&client, &base, 503).await;
        eprintln!("/readyz turned 503 {took:?} after the database stopped: {body}");
        assert_eq!(body, "failing: db");
        let (status, detail, _) = call(
            &client,
            Method::GET,
            &format!("{base}/readyz?verbose"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 503);
        assert_eq!(detail["checks"][0]["name"], "db");
        assert!(!detail.to_string().contains(&password), "{detail}");
        let (status, health, _) = call(&client, Method::GET, &format!("{base}/healthz"), None)
            .await
            .unwrap();
        assert_eq!((status, health), (200, json!("ok")));
        for n in 0..4 {
            let note = json!({ "title": format!("during the outage {n}") });
            let (status, body, took) =
                call(&client, Method::POST, &format!("{base}/notes"), Some(note))
                    .await
                    .unwrap();
            eprintln!("a request during the outage: {status} after {took:?}");
            assert_eq!(status, 503, "{body}");
            // The acquire timeout is 1 s; the bound leaves room for a loaded machine.
            assert!(took < Duration::from_secs(10), "{took:?}");
        }

        pg.start();
        restart.1 = false;
        let (_, took) = readyz_until(&client, &base, 200).await;
        eprintln!("/readyz was 200 again {took:?} after the database started");
        for n in 0..20 {
            crud(&client, &base, n).await.unwrap();
        }
    });
    assert_eq!(
        buvar_tests::live_children(service.pid()),
        workers,
        "no worker was restarted"
    );
    service.stop();
}

fn run_service(url: &str, args: &[&str]) -> Output {
    service_command(url, &[("HTTP_FORKS", "2")])
        .args(args)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs PostgreSQL and cargo-generate: `bash .ci/run test` runs it"]
fn with_the_database_down_at_start_the_service_exits_2_naming_the_step_and_the_host() {
    let pg = Postgres::from_env();
    // A port where nothing listens: the database is down.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let password = pg.password();
    let url = format!("postgres://buvar:{password}@127.0.0.1:{port}/app");
    for args in [&[][..], &["--run-before-fork"][..]] {
        let output = run_service(&url, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "before-fork step `migrate` failed: cannot connect to postgres://127.0.0.1:{port}/app"
            )),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains(&password) && !stdout.contains(&password));
        assert!(!stdout.contains("\"serving\""), "no worker started");
    }
}

#[test]
#[ignore = "needs PostgreSQL and cargo-generate: `bash .ci/run test` runs it"]
fn two_services_started_at_once_migrate_once_and_their_workers_never() {
    let pg = Postgres::from_env();
    let url = pg.fresh_database("buvar_db_twice");
    let first = std::thread::spawn({
        let url = url.clone();
        move || Service::start(&url, &[("HTTP_FORKS", "4")], 4)
    });
    let second = Service::start(&url, &[("HTTP_FORKS", "4")], 4);
    let first = first.join().unwrap();
    assert_eq!(
        pg.psql("buvar_db_twice", "SELECT count(*) FROM _sqlx_migrations"),
        "1"
    );
    for service in [&first, &second] {
        let steps: Vec<Value> = service
            .events()
            .into_iter()
            .filter(|event| event["step"] == "migrate")
            .collect();
        assert!(!steps.is_empty(), "the step ran");
        // Once, in one child of the parent (never in the parent, which runs no runtime, and
        // never in a worker).
        let runner = &steps[0]["pid"];
        assert_ne!(*runner, service.pid(), "{runner}");
        for event in &steps {
            assert_eq!(event["pid"], *runner, "one process runs it: {event}");
        }
        let workers: Vec<Value> = service
            .events()
            .into_iter()
            .filter(|event| event["message"] == "serving")
            .map(|event| event["pid"].clone())
            .collect();
        assert!(!workers.contains(runner), "{workers:?}");
    }
    first.stop();
    second.stop();
}
