//! The service template end to end: rendered with cargo-generate from a path and from git, its
//! buvar dependencies pointed at this workspace, its own checks and tests run, then started as a
//! real process that answers `/healthz`.
//!
//! cargo-generate renders as a library (through `buvar_tests::template`), so `cargo test
//! --workspace` tests the template on any machine, with no tool installed beforehand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use buvar_tests::http;
use buvar_tests::template::{SystemdUnit, TemplateSource, render, template_dir};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const NAME: &str = "buvar-smoke";
const PREFIX: &str = "BUVAR_SMOKE";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.stdin(Stdio::null()).env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?} failed with {status}");
}

/// Renders this workspace's `template/` into `destination/NAME`.
fn render_from_path(destination: &Path) -> PathBuf {
    render(
        &TemplateSource::Path(template_dir()),
        NAME,
        destination,
        &[],
    )
    .unwrap_or_else(|err| panic!("cannot render the template: {err:?}"))
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        let target = to.join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), target).unwrap();
    }
}

#[test]
fn renders_every_placeholder_and_the_same_from_git_as_from_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let from_path = render_from_path(&dir.path().join("from-path"));

    // A git repository with the template in a subfolder, like this one, at a file:// URL.
    let repo = dir.path().join("repo");
    copy_dir(&template_dir(), &repo.join("template"));
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args([
                "-c",
                "user.name=template test",
                "-c",
                "user.email=template-test",
            ])
            .args(args)
            .current_dir(&repo))
    };
    git(&["init", "--quiet"]);
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--message", "template"]);
    let from_git = dir.path().join("from-git");
    let from_git = render(
        &TemplateSource::Git {
            url: format!("file://{}", repo.display()),
            folder: "template".to_owned(),
        },
        NAME,
        &from_git,
        &[],
    )
    .unwrap_or_else(|err| panic!("cannot render the template from git: {err:?}"));

    let rendered = files(&from_path);
    assert_eq!(rendered, files(&from_git));
    for file in [
        "Cargo.toml",
        "src/main.rs",
        "src/plugins/greeter.rs",
        "config.toml",
        "tests/health.rs",
        "Dockerfile",
        "k8s/base/kustomization.yaml",
        "k8s/base/deployment.yaml",
        "k8s/base/service.yaml",
        "k8s/base/pdb.yaml",
        "k8s/base/hpa.yaml",
        "k8s/overlays/production/kustomization.yaml",
        ".github/workflows/ci.yml",
        "README.md",
        "deploy/systemd/buvar-smoke.service",
        "deploy/systemd/buvar-smoke.socket",
    ] {
        assert!(
            rendered.contains(&PathBuf::from(file)),
            "{file} not rendered"
        );
    }
    for file in &rendered {
        let text = std::fs::read_to_string(from_path.join(file)).unwrap();
        assert_eq!(
            text,
            std::fs::read_to_string(from_git.join(file)).unwrap(),
            "{} differs between the path and the git render",
            file.display()
        );
        assert!(
            !text.contains("{{") && !text.contains("{%"),
            "{} keeps a placeholder:\n{text}",
            file.display()
        );
    }
    let main = std::fs::read_to_string(from_path.join("src/main.rs")).unwrap();
    assert!(
        main.contains(&format!("Service::new(\"{PREFIX}\")")),
        "{main}"
    );
    // The sample is one file and one line in `main`, so removing it is easy.
    let sample_lines: Vec<&str> = main.lines().filter(|l| l.contains("greeter")).collect();
    assert_eq!(sample_lines.len(), 1, "{main}");
    assert!(
        !rendered.contains(&PathBuf::from("pre-script.rhai")),
        "the hook is not part of the service"
    );
}

/// A manifest file's documents as JSON values.
fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display()))
        })
        .collect()
}

/// A Kubernetes CPU quantity (`"2"`, `"1500m"`) in millicores.
fn millicores(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(milli) => milli.parse().unwrap(),
        None => quantity.parse::<u64>().unwrap() * 1000,
    }
}

/// A Kubernetes memory quantity in `Mi` (`"192Mi"`, `"1Gi"`).
fn mebibytes(quantity: &str) -> u64 {
    match quantity.strip_suffix("Gi") {
        Some(gibi) => gibi.parse::<u64>().unwrap() * 1024,
        None => quantity.strip_suffix("Mi").unwrap().parse().unwrap(),
    }
}

/// The cells of the README's row whose first cell is `what`.
fn table_row(readme: &str, what: &str) -> Vec<String> {
    readme
        .lines()
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().is_some_and(|first| first == what))
        .unwrap_or_else(|| panic!("the README's deploy table has no `{what}` row"))
}

/// The leading number of a table cell (`"45 s"`, `"192Mi"`).
fn leading_number(cell: &str) -> u64 {
    let digits: String = cell.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in `{cell}`"))
}

#[test]
fn the_manifests_size_workers_from_the_cpu_request_and_wait_out_delay_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let service = render_from_path(dir.path());
    let readme = std::fs::read_to_string(service.join("README.md")).unwrap();
    let config: toml::Table = std::fs::read_to_string(service.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let forks_variable = format!("{PREFIX}_HTTP_FORKS");
    let env_seconds = |env: &[serde_json::Value], name: &str| -> Option<f64> {
        env.iter()
            .find(|var| var["name"] == format!("{PREFIX}_HTTP_{name}"))
            .map(|var| var["value"].as_str().unwrap().parse().unwrap())
    };
    let config_seconds = |key: &str| -> Option<f64> {
        let value = config["http"].get(key)?;
        value.as_float().or(value.as_integer().map(|n| n as f64))
    };

    let base = yaml_documents(&service.join("k8s/base/deployment.yaml"));
    let [deployment] = base.as_slice() else {
        panic!("one Deployment in deployment.yaml: {base:?}")
    };
    assert_eq!(deployment["kind"], "Deployment");
    let strategy = &deployment["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(
        (
            strategy["maxUnavailable"].as_u64(),
            strategy["maxSurge"].as_u64()
        ),
        (Some(0), Some(1))
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container["env"].as_array().unwrap();

    // The forks come from the pod's CPU request, a whole CPU per worker rounded up.
    let forks = env
        .iter()
        .find(|var| var["name"] == forks_variable.as_str())
        .unwrap_or_else(|| panic!("the Deployment does not set {forks_variable}"));
    let field = &forks["valueFrom"]["resourceFieldRef"];
    assert_eq!(field["resource"], "requests.cpu", "{forks}");
    assert_eq!(field["divisor"], "1", "{forks}");
    assert_eq!(field["containerName"], container["name"], "{forks}");
    assert!(forks.get("value").is_none(), "{forks}");

    // The grace period covers the shutdown delay, then the whole drain, then the supervisor's
    // last kill half a second after the graceful timeout.
    let delay = env_seconds(env, "SHUTDOWN_DELAY")
        .or_else(|| config_seconds("shutdown_delay"))
        .unwrap_or(0.0);
    let graceful = env_seconds(env, "GRACEFUL_TIMEOUT")
        .or_else(|| config_seconds("graceful_timeout"))
        .expect("config.toml sets [http] graceful_timeout");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap() as f64;
    assert!(delay > 0.0, "the Deployment sets no shutdown delay");
    assert!(
        grace >= delay + graceful + 1.0,
        "grace period {grace} s < shutdown delay {delay} s + graceful timeout {graceful} s + 1 s"
    );
    assert_eq!(
        table_row(&readme, "shutdown delay")[2],
        format!("{delay} s")
    );
    assert_eq!(
        table_row(&readme, "graceful timeout")[2],
        format!("{graceful} s")
    );
    assert_eq!(table_row(&readme, "grace period")[2], format!("{grace} s"));

    // Memory follows the documented budget, in the base and in every overlay that resizes it.
    let per_worker = mebibytes(&table_row(&readme, "memory per worker")[2]);
    let memory_row = table_row(&readme, "memory limit");
    let supervisor = leading_number(&memory_row[1]);
    let columns =
        [
            ("base", 2, container["resources"].clone()),
            (
                "production",
                3,
                yaml_documents(&service.join("k8s/overlays/production/resources.yaml"))[0]["spec"]
                    ["template"]["spec"]["containers"][0]["resources"]
                    .clone(),
            ),
        ];
    for (name, column, resources) in columns {
        let cpu = millicores(resources["requests"]["cpu"].as_str().unwrap());
        let workers = cpu.div_ceil(1000);
        let limit = mebibytes(resources["limits"]["memory"].as_str().unwrap());
        assert_eq!(
            limit,
            supervisor + workers * per_worker,
            "{name}: {workers} workers need {supervisor}Mi + {workers} x {per_worker}Mi"
        );
        assert_eq!(
            leading_number(&table_row(&readme, "CPU request")[column]) * 1000,
            cpu,
            "{name}"
        );
        assert_eq!(
            leading_number(&table_row(&readme, "workers")[column]),
            workers,
            "{name}"
        );
        assert_eq!(leading_number(&memory_row[column]), limit, "{name}");
    }
}

/// The rendered `deploy/systemd/<NAME>.<kind>` unit.
fn systemd_unit(service: &Path, kind: &str) -> SystemdUnit {
    let path = service.join(format!("deploy/systemd/{NAME}.{kind}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    SystemdUnit::parse(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The program and the `--config` file of the service unit's `ExecStart=`.
fn exec_start(unit: &SystemdUnit) -> (PathBuf, PathBuf) {
    let exec = unit.value("Service", "ExecStart").expect("an ExecStart=");
    let words: Vec<&str> = exec.split_whitespace().collect();
    let config = words
        .windows(2)
        .find(|pair| pair[0] == "--config")
        .map(|pair| PathBuf::from(pair[1]))
        .unwrap_or_else(|| panic!("ExecStart={exec} names no --config file"));
    (PathBuf::from(words[0]), config)
}

#[test]
fn the_systemd_units_activate_the_sockets_notify_reload_and_harden_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let service = render_from_path(dir.path());
    let unit = systemd_unit(&service, "service");
    let socket = systemd_unit(&service, "socket");
    let readme = std::fs::read_to_string(service.join("README.md")).unwrap();
    let config: toml::Table = std::fs::read_to_string(service.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let cargo: toml::Table = std::fs::read_to_string(service.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let setting = |key: &str| unit.value("Service", key);

    // The program is the binary cargo builds, installed where the README puts it; the config
    // file is the template's, installed where ExecStart reads it.
    let (program, config_file) = exec_start(&unit);
    let package = cargo["package"]["name"].as_str().unwrap();
    assert_eq!(program.file_name().unwrap(), package);
    assert!(
        readme.contains(&format!(
            "install -m 0755 target/release/{package} {}",
            program.display()
        )),
        "the README does not install the binary at {}",
        program.display()
    );
    assert!(
        readme.contains(&format!(
            "install -D -m 0644 config.toml {}",
            config_file.display()
        )),
        "the README does not install config.toml at {}",
        config_file.display()
    );
    assert_eq!(
        unit.value("Unit", "Requires"),
        Some(format!("{NAME}.socket").as_str())
    );
    assert_eq!(socket.value("Socket", "Accept"), Some("no"));
    assert!(!socket.values("Socket", "ListenStream").is_empty());

    // Readiness over sd_notify, from whichever supervisor is current after an upgrade.
    assert_eq!(setting("Type"), Some("notify"));
    assert_eq!(setting("NotifyAccess"), Some("all"));
    assert_eq!(setting("ExecReload"), Some("/bin/kill -HUP $MAINPID"));

    // SIGTERM to the supervisor alone, and time for it to wait out delay and drain.
    assert_eq!(setting("KillMode"), Some("mixed"));
    let env: Vec<(&str, &str)> = unit.environment();
    let seconds = |key: &str| -> f64 {
        let variable = format!("{PREFIX}_HTTP_{}", key.to_uppercase());
        if let Some((_, value)) = env.iter().find(|(name, _)| *name == variable) {
            return value.parse().unwrap();
        }
        config["http"]
            .get(key)
            .map(|value| value.as_float().or(value.as_integer().map(|n| n as f64)))
            .map_or(0.0, Option::unwrap)
    };
    let stop: f64 = setting("TimeoutStopSec").unwrap().parse().unwrap();
    let (delay, graceful) = (seconds("shutdown_delay"), seconds("graceful_timeout"));
    assert!(graceful > 0.0, "config.toml sets no graceful_timeout");
    assert!(
        stop >= delay + graceful + 1.0,
        "TimeoutStopSec={stop} < shutdown delay {delay} s + graceful timeout {graceful} s + 1 s"
    );

    // The hardening options, each with the value that still lets the service fork, exec
    // itself, map shared memory and read /proc.
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert_eq!(setting(key), Some(value), "{key}=");
    }
    // /proc/stat (the boot time behind process_start_time_seconds) must stay readable.
    assert_eq!(setting("ProcSubset"), None);
}

/// The rendered service, started on port 0 with one worker; stopped when dropped.
struct Service {
    child: Child,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service_command(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with(&format!("{PREFIX}_")) {
            command.env_remove(name);
        }
    }
    command
}

/// Starts the service and reads the address from its "serving" log line.
fn start(binary: &Path, dir: &Path) -> Service {
    let mut child = service_command(binary, dir)
        .args(["--config", "config.toml"])
        .env(format!("{PREFIX}_HTTP_PORT"), "0")
        .env(format!("{PREFIX}_HTTP_FORKS"), "1")
        .env(format!("{PREFIX}_LOG_FORMAT"), "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the service starts");
    let addr = buvar_tests::serving_addr(child.stdout.take().expect("piped stdout"));
    Service { child, addr }
}

/// `GET path` over HTTP/1.1: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let response = http::get(http::connect_tcp(addr).unwrap(), path).unwrap();
    (response.status, response.body)
}

#[test]
fn the_rendered_service_passes_its_checks_and_tests_and_serves_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let service = render_from_path(dir.path());

    // The published versions are replaced by this workspace's crates, at the versions this
    // workspace locks, so the service is tested against the kit as it is now.
    let mut manifest = std::fs::OpenOptions::new()
        .append(true)
        .open(service.join("Cargo.toml"))
        .unwrap();
    let ws = workspace();
    write!(
        manifest,
        "\n[patch.crates-io]\nbuvar-kit = {{ path = {:?} }}\nbuvar-axum = {{ path = {:?} }}\n",
        ws.join("buvar-kit"),
        ws.join("buvar-axum"),
    )
    .unwrap();
    std::fs::copy(ws.join("Cargo.lock"), service.join("Cargo.lock")).unwrap();

    // Beside this test's own target directory, and kept across runs: the service's
    // dependencies compile once. A nested cargo cannot share the outer one's directory, which
    // `cargo test` keeps locked while the tests run.
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .join("template-build");
    // No debug info and no incremental state: this build is compiled once and never stepped
    // through, and both cost minutes of a 2-core CI run.
    let in_service = |args: &[&str]| {
        run(cargo()
            .args(args)
            .current_dir(&service)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0"))
    };
    in_service(&["fmt", "--all", "--check"]);
    in_service(&["clippy", "--all-targets", "--", "-D", "warnings"]);
    in_service(&["test"]);

    let binary = target.join("debug").join(NAME);
    let help = service_command(&binary, &service)
        .arg("--env-help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let readme = std::fs::read_to_string(service.join("README.md")).unwrap();
    let variables: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with(&format!("{PREFIX}_")))
        .collect();
    assert!(
        variables.contains(&"BUVAR_SMOKE_GREETER_GREETING"),
        "{help}"
    );
    for variable in variables {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "the service's README misses {variable}"
        );
    }

    let mut running = start(&binary, &service);
    assert_eq!(get(&running.addr, "/healthz").0, 200);
    assert_eq!(
        get(&running.addr, "/greet/ada"),
        (200, "Hello, ada!".to_owned())
    );

    let pid = Pid::from_raw(running.child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the service did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
