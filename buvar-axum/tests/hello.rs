//! The `hello` example as a real process: flags, environment variables, serving, stopping.
//!
//! `cargo test` builds the examples before it runs the tests; the binary sits beside this test's
//! own executable.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hello() -> Command {
    let exe = std::env::current_exe().expect("the test's own path");
    let examples = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"))
        .expect("target/<profile>/examples");
    let path: PathBuf = examples.join("hello");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --example hello` (plain `cargo test` builds it)",
        path.display()
    );
    let mut command = Command::new(path);
    command
        .env_remove("RUST_LOG")
        .env("APP_LOG_FORMAT", "json")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("APP_") && name != "APP_LOG_FORMAT" {
            command.env_remove(name);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the example runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn env_help_lists_every_variable() {
    let out = run(hello().arg("--env-help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for var in [
        "APP_HTTP_HOST",
        "APP_HTTP_PORT",
        "APP_HTTP_FORKS",
        "APP_LOG_LEVEL",
        "APP_LOG_FORMAT",
        "APP_GREETER_GREETING",
    ] {
        assert!(help.contains(var), "{var} missing from:\n{help}");
    }
}

#[test]
fn a_bad_variable_exits_non_zero_within_a_second_naming_it() {
    let started = Instant::now();
    let out = run(hello().env("APP_HTTP_PORT", "abc"));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("APP_HTTP_PORT"), "{err}");
    assert!(err.contains("http.port"), "{err}");
}

#[test]
fn print_config_shows_the_effective_config() {
    let out = run(hello()
        .arg("--print-config")
        .env("APP_GREETER_GREETING", "Hi"));
    assert!(out.status.success());
    let dump = text(&out.stdout);
    assert!(dump.contains("greeting = \"Hi\""), "{dump}");
    assert!(dump.contains("port = 8080"), "{dump}");
}

#[test]
fn check_passes_and_lists_problems_with_a_bad_config_file() {
    let out = run(hello().arg("--check"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[greeter]\ngreeting = 5\n").unwrap();
    let out = run(hello().arg("--check").arg("--config").arg(&file));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("greeter.greeting"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = run(hello().args(["--config", "/nonexistent/buvar.toml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/buvar.toml"));
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the example on port 0 and reads the bound address from its "serving" log line.
fn serve(forks: &str, greeting: &str) -> Server {
    let mut child = hello()
        .env("APP_HTTP_PORT", "0")
        .env("APP_HTTP_FORKS", forks)
        .env("APP_GREETER_GREETING", greeting)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the example logs that it serves")
            .expect("utf-8 log lines");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["message"] == "serving" {
            let addr = event["addr"].as_str().expect("an address field");
            break addr.trim_start_matches("tcp://").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

#[tokio::test]
async fn the_example_greets_through_its_injected_component_and_stops_on_sigterm() {
    let mut server = serve("2", "Hi");
    let client = reqwest::Client::new();
    let root = client.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "Hello, world");
    let greet = client
        .get(format!("{}/greet/ada", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(greet.text().await.unwrap(), "Hi, ada");

    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the example did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
