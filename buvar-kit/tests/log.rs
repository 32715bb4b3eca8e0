//! Log lines written into a buffer and parsed back.
//!
//! Building a subscriber reads `RUST_LOG`, so every test runs inside `figment::Jail`, which
//! serialises them and restores the variable.

use std::io::Write;
use std::sync::{Arc, Mutex};

use buvar_kit::config::figment::Jail;
use buvar_kit::log::{LogConfig, LogError, LogFormat, install_panic_hook, set_worker, subscriber};
use serde_json::Value;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Runs `f` with a subscriber for `config` writing into a buffer, with `RUST_LOG` as given.
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type"
)]
fn capture(config: &LogConfig, rust_log: &str, f: impl FnOnce()) -> Result<Buffer, LogError> {
    let mut result = None;
    Jail::expect_with(|jail| {
        jail.set_env("RUST_LOG", rust_log);
        let buffer = Buffer::default();
        let writer = buffer.clone();
        result = Some(subscriber(config, move || writer.clone()).map(|dispatch| {
            tracing::dispatcher::with_default(&dispatch, f);
            buffer
        }));
        Ok(())
    });
    result.unwrap()
}

fn config(level: &str, format: LogFormat) -> LogConfig {
    LogConfig {
        level: level.to_owned(),
        format,
    }
}

#[test]
fn json_lines_carry_level_message_pid_and_fields() {
    let buffer = capture(&config("info", LogFormat::Json), "", || {
        tracing::info!(user = "ada", attempts = 3, "logged in");
    })
    .unwrap();
    let lines = buffer.json_lines();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "logged in");
    assert_eq!(line["pid"], std::process::id());
    assert_eq!(line["user"], "ada");
    assert_eq!(line["attempts"], 3);
    assert!(line["timestamp"].is_string());
}

#[test]
fn json_lines_carry_the_current_span() {
    let buffer = capture(&config("info", LogFormat::Json), "", || {
        let span = tracing::info_span!("request", id = 7);
        let _entered = span.enter();
        tracing::warn!("slow");
    })
    .unwrap();
    let line = &buffer.json_lines()[0];
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["id"], 7);
}

#[test]
fn auto_format_writes_json_to_a_buffer() {
    let buffer = capture(&config("info", LogFormat::Auto), "", || {
        tracing::info!("hi")
    })
    .unwrap();
    assert_eq!(buffer.json_lines()[0]["message"], "hi");
}

#[test]
fn pretty_lines_start_with_the_pid() {
    let buffer = capture(&config("info", LogFormat::Pretty), "", || {
        tracing::info!(user = "ada", "logged in");
    })
    .unwrap();
    let text = buffer.text();
    assert!(
        text.starts_with(&format!("[{}", std::process::id())),
        "{text}"
    );
    assert!(
        text.contains("INFO") && text.contains("logged in") && text.contains("user=\"ada\""),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colours when not a terminal: {text:?}"
    );
}

#[test]
fn the_configured_level_filters_events() {
    let buffer = capture(&config("warn", LogFormat::Json), "", || {
        tracing::info!("dropped");
        tracing::warn!("kept");
    })
    .unwrap();
    let messages: Vec<Value> = buffer
        .json_lines()
        .into_iter()
        .map(|line| line["message"].clone())
        .collect();
    assert_eq!(messages, ["kept"]);
}

#[test]
fn rust_log_overrides_the_configured_level() {
    let buffer = capture(&config("error", LogFormat::Json), "debug", || {
        tracing::debug!("visible");
    })
    .unwrap();
    assert_eq!(buffer.json_lines()[0]["level"], "DEBUG");
}

#[test]
fn invalid_rust_log_names_the_value() {
    let error = capture(&config("info", LogFormat::Json), "x=notalevel", || {})
        .err()
        .unwrap();
    assert!(matches!(error, LogError::RustLog { .. }));
    assert!(error.to_string().contains("x=notalevel"), "{error}");
}

#[test]
fn invalid_configured_level_names_the_value() {
    let error = capture(&config("loud", LogFormat::Json), "", || {})
        .err()
        .unwrap();
    assert!(error.to_string().contains("\"loud\""), "{error}");
}

#[test]
fn worker_number_appears_once_set() {
    let buffer = capture(&config("info", LogFormat::Json), "", || {
        set_worker(2);
        tracing::info!("from a worker");
    })
    .unwrap();
    let line = &buffer.json_lines()[0];
    assert_eq!(line["worker"], 2);
    assert_eq!(line["pid"], std::process::id());
}

#[test]
fn panics_are_logged_with_their_location() {
    install_panic_hook();
    let buffer = capture(&config("info", LogFormat::Json), "", || {
        let result = std::panic::catch_unwind(|| panic!("boom {}", 42));
        assert!(result.is_err());
    })
    .unwrap();
    let lines = buffer.json_lines();
    let line = lines.iter().find(|line| line["target"] == "panic").unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["message"], "panic: boom 42");
    assert!(
        line["location"].as_str().unwrap().contains("tests/log.rs:"),
        "{line}"
    );
}
