//! Config loading of a real `Service`: validated ranges, durations, the start-up check and the
//! reports an operator sees (exit codes and stderr).

mod service_support;

use service_support::{Service, run};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BASE: &str = "[http]\nport = 0\nforks = 1\n";

#[test]
fn an_infinite_graceful_timeout_from_the_environment_exits_2_naming_key_range_and_variable() {
    let out = run(BASE, &[], &[("SVC_HTTP_GRACEFUL_TIMEOUT", "inf")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "`http.graceful_timeout` must be between 0s and 1day, found inf, from environment \
             variable SVC_HTTP_GRACEFUL_TIMEOUT"
        ),
        "{err}"
    );
}

#[test]
fn numbers_that_used_to_panic_the_workers_are_refused_before_binding() {
    for (line, expected) in [
        (
            "header_read_timeout = inf",
            "`http.header_read_timeout` must be between 1ms and 1day, found inf",
        ),
        (
            "heartbeat_timeout = 0.000001",
            "`http.heartbeat_timeout` must be 0 (off) or between 100ms and 1day, found 0.000001",
        ),
        (
            "threads = 100000",
            "`http.threads` must be between 1 and 1024, found 100000",
        ),
        (
            "graceful_timeout = 1e19",
            "`http.graceful_timeout` must be between 0s and 1day, found 10000000000000000000",
        ),
    ] {
        let out = run(&format!("{BASE}{line}\n"), &[], &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
        // The file and the line of the bad value, so the operator can go straight to it.
        assert!(err.contains("svc.toml line 4"), "{line}: {err}");
        assert!(!err.contains("panicked"), "{line}: {err}");
    }
}

#[test]
fn a_connection_limit_beyond_the_semaphore_from_the_environment_exits_2() {
    let out = run(
        BASE,
        &[],
        &[("SVC_HTTP_MAX_CONNECTIONS", "18446744073709551615")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "`http.max_connections` must be between 1 and 1000000, found 18446744073709551615, \
             from environment variable SVC_HTTP_MAX_CONNECTIONS"
        ),
        "{err}"
    );
}

#[test]
fn env_help_shows_durations_and_ranges() {
    let out = run(BASE, &["--env-help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        help.lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{help}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("SVC_HTTP_GRACEFUL_TIMEOUT"),
        "SVC_HTTP_GRACEFUL_TIMEOUT duration default \"30s\"; between 0s and 1day"
    );
    assert_eq!(
        line("SVC_HTTP_MAX_CONNECTIONS"),
        "SVC_HTTP_MAX_CONNECTIONS u64 default 10000; between 1 and 1000000"
    );
    assert_eq!(
        line("SVC_HTTP_HEARTBEAT_TIMEOUT"),
        "SVC_HTTP_HEARTBEAT_TIMEOUT duration default \"30s\"; 0 (off) or between 100ms and 1day"
    );
}

#[test]
fn durations_written_as_text_serve_and_print_as_text() {
    let toml = "[http]\nport = 0\nforks = 1\ngraceful_timeout = \"1500ms\"\n\
                header_read_timeout = \"2s\"\n";
    let out = run(
        toml,
        &["--print-config"],
        &[("SVC_HTTP_REQUEST_TIMEOUT", "2.5")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("graceful_timeout = \"1500ms\""), "{dump}");
    assert!(dump.contains("request_timeout = 2.5"), "{dump}");
    assert!(dump.contains("heartbeat_timeout = \"30s\""), "{dump}");
    let service = Service::start(toml, &[("SVC_HTTP_REQUEST_TIMEOUT", "2.5")], 1);
    let (status, _, err) = service.stop();
    assert!(status.success(), "{err}");
}
