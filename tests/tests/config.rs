//! Config loading of a real `Service`: validated ranges, durations, the start-up check and the
//! reports an operator sees (exit codes and stderr).

use buvar_tests::service::{Service, run};

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
fn env_help_shows_durations_ranges_and_the_values_of_enums() {
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
    assert_eq!(
        line("SVC_LOG_FORMAT"),
        "SVC_LOG_FORMAT auto | json | pretty default \"auto\""
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

/// The `error: ...` lines of a run, with the config file's temporary directory left out.
fn errors(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|line| !line.starts_with('{'))
        .map(
            |line| match (line.find("from file /"), line.find("/svc.toml")) {
                (Some(from), Some(file)) => format!("{}{}", &line[..from + 10], &line[file + 1..]),
                _ => line.to_owned(),
            },
        )
        .collect()
}

#[test]
fn a_declared_section_with_a_type_error_exits_2_before_forking_with_the_check_report() {
    let toml = format!("{BASE}[vault]\nretries = \"many\"\n");
    let started = run(&toml, &[], &[]);
    assert_eq!(started.status.code(), Some(2), "{}", stderr(&started));
    let report = errors(&started);
    assert!(
        report[0].starts_with("error: vault.retries: expected u32, found string \"many\""),
        "{report:?}"
    );
    // Nothing was bound or forked.
    let stdout = String::from_utf8_lossy(&started.stdout);
    assert!(!stdout.contains("\"serving\""), "{stdout}");
    let checked = run(&toml, &["--check"], &[]);
    assert_eq!(checked.status.code(), Some(2));
    assert_eq!(errors(&checked), report);
}

#[test]
fn a_bad_value_of_a_section_only_a_plugin_reads_stops_the_start_like_check() {
    let env = [("SVC_LAZY_N", "ten")];
    let started = run(BASE, &[], &env);
    assert_eq!(started.status.code(), Some(2), "{}", stderr(&started));
    let report = errors(&started);
    assert_eq!(
        report,
        ["error: lazy.n: expected u32, found string \"ten\", from environment variable SVC_LAZY_N"]
    );
    let checked = run(BASE, &["--check"], &env);
    assert_eq!(checked.status.code(), Some(2));
    assert_eq!(errors(&checked), report);
}

#[test]
fn a_section_a_plugin_declares_is_in_env_help_print_config_and_not_warned_about() {
    let help = run(BASE, &["--env-help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("SVC_LAZY_N "), "{help}");
    assert!(help.contains("SVC_CONFIG "), "{help}");
    assert!(help.contains("SVC_PLUGINS "), "{help}");
    let dump = run(BASE, &["--print-config"], &[("SVC_LAZY_N", "5")]);
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("[lazy]\nn = 5"), "{dump}");
    let checked = run(BASE, &["--check"], &[("SVC_LAZY_N", "5")]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let logs = String::from_utf8_lossy(&checked.stdout);
    assert!(!logs.contains("SVC_LAZY_N sets no config field"), "{logs}");
    assert!(logs.contains("check passed"), "{logs}");
}

#[test]
fn an_unknown_section_is_warned_about_with_the_closest_name() {
    let out = run(&format!("{BASE}[htpp]\nport = 9000\n"), &["--check"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = String::from_utf8_lossy(&out.stdout);
    let warning = logs
        .lines()
        .find(|line| line.contains("unknown section"))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(
        warning.contains("htpp: unknown section, from file"),
        "{warning}"
    );
    assert!(warning.contains("svc.toml line 4"), "{warning}");
    assert!(warning.contains("did you mean `http`?"), "{warning}");
}

#[test]
fn an_unknown_key_names_its_path_once() {
    let out = run(&format!("{BASE}prot = 1\n"), &["--check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("error: http.prot: unknown key"), "{err}");
    assert!(!err.contains("http.prot.prot"), "{err}");
}

#[test]
fn a_section_of_the_wrong_type_is_an_error_even_with_its_variables_set() {
    let out = run("http = \"yes\"\n", &[], &[("SVC_HTTP_PORT", "0")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("error: http: expected a table (section [http]), found string \"yes\""),
        "{err}"
    );
}

#[test]
fn a_config_path_that_is_not_a_regular_file_or_too_large_is_refused() {
    let out = buvar_tests::service::command()
        .args(["--config", "/dev/zero", "--check"])
        .output()
        .expect("run service-server");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("error: config file /dev/zero is a character device, not a regular file"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    let comment = format!("# {}\n", "x".repeat(1022));
    std::fs::write(&big, comment.repeat(17 * 1024)).expect("write");
    let out = buvar_tests::service::command()
        .arg("--config")
        .arg(&big)
        .arg("--check")
        .output()
        .expect("run service-server");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("big.toml is larger than 16 MiB"), "{err}");
}

#[test]
fn an_empty_host_and_a_decimal_unix_mode_are_refused() {
    let out = run(BASE, &[], &[("SVC_HTTP_HOST", "")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`http.host` must be a host name or address (0.0.0.0 or :: to listen on every interface), found \"\", from environment variable SVC_HTTP_HOST"),
        "{err}"
    );
    let out = run(&format!("{BASE}unix_mode = 660\n"), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("http.unix_mode: expected an octal file mode"),
        "{err}"
    );
    let out = run(BASE, &["--print-config"], &[("SVC_HTTP_UNIX_MODE", "0660")]);
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("unix_mode = \"0660\""), "{dump}");
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_a_shortfall_is_warned_about() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("svc.toml");
    std::fs::write(
        &config,
        "[http]\nport = 0\nforks = 1\nmax_connections = 10000\n",
    )
    .unwrap();
    let mut command = buvar_tests::service::command();
    command
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = command.spawn().expect("spawn service-server");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut warned = false;
    for line in stdout.lines() {
        let line = line.expect("read the log");
        warned |= line.contains("too low for max_connections = 10000 per worker");
        if line.contains("\"serving\"") {
            break;
        }
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("open files line")
        .split_whitespace()
        .collect();
    assert_eq!(open_files[3..5], ["4096", "4096"], "{limits}");
    assert!(warned, "no warning about max_connections");
}

#[test]
fn several_workers_say_once_that_state_is_per_worker() {
    let service = Service::start("[http]\nport = 0\nforks = 2\n", &[], 2);
    let (status, stdout, err) = service.stop();
    assert!(status.success(), "{err}");
    assert_eq!(stdout.matches("state is per worker").count(), 1, "{stdout}");
    assert!(
        stdout.contains("2 worker(s), from `http.forks`"),
        "{stdout}"
    );
    let single = Service::start(BASE, &[], 1);
    let (_, stdout, _) = single.stop();
    assert!(!stdout.contains("state is per worker"), "{stdout}");
}
