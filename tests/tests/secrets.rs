//! Secrets in a real service's config never show: not in start-up logs, not in
//! `--print-config`, not in the error for a bad config.

use buvar_tests::service::{Service, run};

const TOKEN: &str = "tok-SEKRIT-file";
const ENV_TOKEN: &str = "tok-SEKRIT-env";

fn config(vault: &str) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 2\n[log]\nlevel = \"debug\"\n\
         [vault]\nurl = \"https://vault.example\"\ntoken = \"{TOKEN}\"\npin = 918273645\n{vault}"
    )
}

/// Both streams: a worker's start-up error is a log line on stdout, the supervisor's on stderr.
fn output(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, ENV_TOKEN, "918273645", "SEKRIT"] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[test]
fn startup_and_shutdown_logs_show_no_secret() {
    let service = Service::start(&config(""), &[("SVC_VAULT_TOKEN", ENV_TOKEN)], 2);
    let (status, stdout, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
    // The section was logged (so the test can fail), with its secrets redacted.
    assert!(stdout.contains("vault configured"), "{stdout}");
    assert!(stdout.contains("https://vault.example"), "{stdout}");
    assert_no_secret("stdout", &stdout);
    assert_no_secret("stderr", &stderr);
}

#[test]
fn print_config_redacts_secrets_from_the_file_and_the_environment() {
    let out = run(
        &config(""),
        &["--print-config"],
        &[("SVC_VAULT_TOKEN", ENV_TOKEN)],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("https://vault.example"), "{stdout}");
    assert!(stdout.contains("token"), "{stdout}");
    assert_no_secret("--print-config", &stdout);
    assert_no_secret("stderr", &String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_value_beside_secrets_is_reported_without_them() {
    let out = run(
        &config("retries = \"many\"\n"),
        &[],
        &[("SVC_VAULT_TOKEN", ENV_TOKEN)],
    );
    assert_eq!(out.status.code(), Some(2));
    let all = output(&out);
    assert!(all.contains("vault.retries"), "{all}");
    assert_no_secret("the error", &all);
}

#[test]
fn a_malformed_secret_is_reported_without_its_value() {
    let toml = config("").replace("pin = 918273645", "pin = \"SEKRIT-pin\"");
    let out = run(&toml, &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let all = output(&out);
    assert!(all.contains("vault.pin"), "{all}");
    assert_no_secret("the error for a bad secret in the file", &all);

    let out = run(&config(""), &[], &[("SVC_VAULT_PIN", "SEKRIT-pin-env")]);
    assert_eq!(out.status.code(), Some(2));
    let all = output(&out);
    assert!(all.contains("SVC_VAULT_PIN"), "{all}");
    assert_no_secret("the error for a bad secret in the environment", &all);
}
