//! The service template end to end: rendered with cargo-generate from a path and from git, its
//! buvar dependencies pointed at this workspace, its own checks and tests run, then started as a
//! real process that answers `/healthz`.
//!
//! cargo-generate renders as a library (through `buvar_tests::template`), so `cargo test
//! --workspace` tests the template on any machine, with no tool installed beforehand.

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use buvar_axum::sockets::SocketUri;
use buvar_axum::{HttpConfig, MetricsConfig};
use buvar_kit::ConfigSource;
use buvar_tests::http;
use buvar_tests::metrics::{parse_samples, promtool_check, sum};
use buvar_tests::process::GroupChild;
use buvar_tests::template::{
    SystemdUnit, TemplateSource, pass_listen_fds, patch_to_workspace, render, serving_addrs,
    shared_target, template_dir,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const NAME: &str = "buvar-smoke";
const PREFIX: &str = "BUVAR_SMOKE";
/// The sample plugin's metric.
const GREETINGS_TOTAL: &str = "greetings_total";

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.stdin(Stdio::null()).env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?} failed with {status}");
}

/// Renders this workspace's `template/` into `destination/NAME`, with `defines` (`-d KEY=VALUE`).
fn render_from_path(destination: &Path, defines: &[(&str, &str)]) -> PathBuf {
    render(
        &TemplateSource::Path(template_dir()),
        NAME,
        destination,
        defines,
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
    let from_path = render_from_path(&dir.path().join("from-path"), &[]);

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
    assert!(main.contains(&format!("App::new(\"{PREFIX}\")")), "{main}");
    // The sample is one file and one line in `main`, so removing it is easy.
    let sample_lines: Vec<&str> = main.lines().filter(|l| l.contains("greeter")).collect();
    assert_eq!(sample_lines.len(), 1, "{main}");
    assert!(
        !rendered.contains(&PathBuf::from("pre-script.rhai")),
        "the hook is not part of the service"
    );
    // The choices are off by default: nothing of them is rendered.
    for file in [
        "build.rs",
        "proto/greeter.proto",
        "src/plugins/greeter_grpc.rs",
    ] {
        assert!(!rendered.contains(&PathBuf::from(file)), "{file} rendered");
    }
    let config = std::fs::read_to_string(from_path.join("config.toml")).unwrap();
    assert!(!config.contains("[otel]"), "{config}");
    assert!(config.contains("# [http.tls]"), "{config}");
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
    let service = render_from_path(dir.path(), &[]);
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

#[test]
fn the_metrics_port_is_exposed_and_annotated_where_the_config_serves_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let service = render_from_path(dir.path(), &[]);
    let config: toml::Table = std::fs::read_to_string(service.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let listen = config["metrics"]["listen"].as_str().unwrap();
    let port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    let path = config["metrics"]
        .get("path")
        .map_or("/metrics", |path| path.as_str().unwrap());

    let dockerfile = std::fs::read_to_string(service.join("Dockerfile")).unwrap();
    let exposed: Vec<u64> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.parse().unwrap()))
        .collect();
    assert!(exposed.contains(&port), "EXPOSE {exposed:?} lacks {port}");

    let annotated = |what: &str, metadata: &serde_json::Value| {
        let annotations = &metadata["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{what}");
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string().as_str(),
            "{what}"
        );
        assert_eq!(annotations["prometheus.io/path"], path, "{what}");
    };
    let deployment = &yaml_documents(&service.join("k8s/base/deployment.yaml"))[0];
    let pod = &deployment["spec"]["template"];
    annotated("the pod template", &pod["metadata"]);
    let ports = pod["spec"]["containers"][0]["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"].as_u64() == Some(port)),
        "the container does not name port {port} `metrics`: {ports:?}"
    );
    let kube_service = &yaml_documents(&service.join("k8s/base/service.yaml"))[0];
    annotated("the Service", &kube_service["metadata"]);
    let ports = kube_service["spec"]["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["targetPort"] == "metrics"),
        "the Service has no `metrics` port: {ports:?}"
    );
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
    let service = render_from_path(dir.path(), &[]);
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
    for install in [
        format!(
            "install -m 0755 target/release/{package} {}",
            program.display()
        ),
        format!("install -D -m 0644 config.toml {}", config_file.display()),
    ] {
        assert!(
            readme.contains(&install),
            "the README does not say `{install}`"
        );
    }
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
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    for (name, _) in std::env::vars() {
        if name.starts_with(&format!("{PREFIX}_")) {
            command.env_remove(name);
        }
    }
    command
}

/// The environment of a test run: port 0, JSON logs, and the metrics on a port 0 of their own
/// (config.toml's fixed port may be taken on a shared machine), at another loopback address:
/// `tcp://127.0.0.1:0` twice would be one socket, which the service refuses for the metrics.
fn test_env<'a>(command: &'a mut Command, forks: &str) -> &'a mut Command {
    command
        .args(["--config", "config.toml"])
        .env(format!("{PREFIX}_HTTP_PORT"), "0")
        .env(format!("{PREFIX}_HTTP_FORKS"), forks)
        .env(format!("{PREFIX}_LOG_FORMAT"), "json")
        .env(format!("{PREFIX}_METRICS_LISTEN"), "tcp://127.0.0.2:0")
}

/// Starts the service and reads the address from its "serving" log line.
fn start(binary: &Path, dir: &Path) -> Service {
    let mut child = test_env(&mut service_command(binary, dir), "1")
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

/// The rendered service, its buvar dependencies patched to this workspace, and its binary,
/// built once for every test that runs it.
struct Built {
    service: PathBuf,
    binary: PathBuf,
    target: PathBuf,
}

impl Built {
    /// Runs `cargo ARGS` in the service, with its target directory.
    fn cargo(&self, args: &[&str]) {
        // No debug info and no incremental state: this build is compiled once and never
        // stepped through, and both cost minutes of a 2-core CI run.
        run(cargo()
            .args(args)
            .current_dir(&self.service)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0"));
    }

    fn command(&self) -> Command {
        service_command(&self.binary, &self.service)
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| build("template-build", &[]))
}

/// The template rendered with every optional choice that needs no outside service on: gRPC and
/// OpenTelemetry traces.
fn built_with_choices() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        build(
            "template-choices-build",
            &[("grpc", "true"), ("otel", "true")],
        )
    })
}

/// Renders the template with `defines` into `<target>/template-build/rendered/<dir_name>`,
/// points its buvar dependencies at this workspace and builds it there; its binary is copied to
/// `<target>/template-build/bin/<dir_name>/`.
fn build(dir_name: &str, defines: &[(&str, &str)]) -> Built {
    // Kept across runs: the service's dependencies compile once.
    let target = shared_target();
    // Rendered afresh in the same place, which outlives every test that shares it and
    // leaves nothing behind in the temporary directory.
    let dir = target.join("rendered").join(dir_name);
    match std::fs::remove_dir_all(&dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            panic!("cannot remove {}: {err}", dir.display())
        }
        _ => {}
    }
    let service = render_from_path(&dir, defines);

    patch_to_workspace(&service);

    let mut built = Built {
        binary: target.join("debug").join(NAME),
        service,
        target,
    };
    built.cargo(&["build"]);
    // Each rendering's own copy: the next build in the shared directory replaces the other.
    let bin = built.target.join("bin").join(dir_name);
    std::fs::create_dir_all(&bin).unwrap();
    let binary = bin.join(NAME);
    std::fs::copy(&built.binary, &binary).unwrap();
    built.binary = binary;
    built
}

#[test]
fn the_rendered_service_passes_its_checks_and_tests_and_serves_healthz() {
    let built = built();
    built.cargo(&["fmt", "--all", "--check"]);
    built.cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]);
    built.cargo(&["test"]);

    let variables = readme_lists_every_variable(built);
    assert!(
        variables.contains(&format!("{PREFIX}_GREETER_GREETING")),
        "{variables:?}"
    );

    let mut running = start(&built.binary, &built.service);
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

/// Every environment variable `--env-help` lists, after checking that the service's README
/// names each of them.
fn readme_lists_every_variable(built: &Built) -> Vec<String> {
    let help = built.command().arg("--env-help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let readme = std::fs::read_to_string(built.service.join("README.md")).unwrap();
    let variables: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with(&format!("{PREFIX}_")))
        .map(str::to_owned)
        .collect();
    for variable in &variables {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "the service's README misses {variable}"
        );
    }
    variables
}

#[test]
fn the_grpc_and_otel_choices_build_pass_their_tests_and_serve_grpc_health() {
    let built = built_with_choices();
    for file in [
        "build.rs",
        "proto/greeter.proto",
        "src/plugins/greeter_grpc.rs",
    ] {
        assert!(built.service.join(file).is_file(), "{file} not rendered");
    }
    // Their own checks and tests: the gRPC service's test calls it with a tonic client.
    built.cargo(&["fmt", "--all", "--check"]);
    built.cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]);
    built.cargo(&["test"]);

    // `otel` turns on buvar-axum's feature: its section is read, listed and documented.
    let variables = readme_lists_every_variable(built);
    assert!(
        variables.contains(&format!("{PREFIX}_OTEL_ENDPOINT")),
        "{variables:?}"
    );
    let printed = built
        .command()
        .args(["--config", "config.toml", "--print-config"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains("[otel]"), "{printed}");
    assert!(printed.contains("sampling_ratio"), "{printed}");

    // The built binary answers grpc.health.v1 on its HTTP port.
    let running = start(&built.binary, &built.service);
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let channel =
                tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
                    .unwrap()
                    .connect_timeout(Duration::from_secs(20))
                    .timeout(Duration::from_secs(20))
                    .connect()
                    .await
                    .expect("an h2c connection");
            let request = tonic_health::pb::HealthCheckRequest {
                service: format!("{}.greeter.v1.Greeter", NAME.replace('-', "_")),
            };
            tonic_health::pb::health_client::HealthClient::new(channel)
                .check(request)
                .await
                .expect("a health answer")
                .into_inner()
                .status()
        });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    assert_eq!(
        get(&running.addr, "/greet/ada"),
        (200, "Hello, ada!".to_owned())
    );
}

/// The sockets the service binds with `config` and the service unit's environment, as the
/// service itself reads them (`--print-config`).
fn configured_sockets(built: &Built, unit: &SystemdUnit, config: &Path) -> HashSet<SocketUri> {
    let mut command = built.command();
    command.arg("--config").arg(config).arg("--print-config");
    for (name, value) in unit.environment() {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let dump = String::from_utf8(output.stdout).unwrap();
    let source = ConfigSource::new()
        .toml(&dump)
        .unwrap_or_else(|err| panic!("--print-config is not TOML: {err}\n{dump}"));
    let http = source.section::<HttpConfig>().unwrap();
    let metrics = source.section::<MetricsConfig>().unwrap();
    let mut sockets: HashSet<SocketUri> = http.socket_uris().unwrap().into_iter().collect();
    sockets.extend(metrics.listen_uri().unwrap().filter(|_| metrics.enabled));
    sockets
}

#[test]
fn the_socket_unit_listens_on_exactly_the_sockets_the_service_unit_configures() {
    let built = built();
    let unit = systemd_unit(&built.service, "service");
    let socket = systemd_unit(&built.service, "socket");
    let listening: HashSet<SocketUri> = socket
        .values("Socket", "ListenStream")
        .into_iter()
        .map(|address| {
            format!("tcp://{address}")
                .parse()
                .unwrap_or_else(|err| panic!("ListenStream={address}: {err}"))
        })
        .collect();
    let configured = configured_sockets(built, &unit, &built.service.join("config.toml"));
    assert_eq!(listening, configured);
    assert_eq!(
        listening.len(),
        2,
        "the service's port and the metrics port"
    );
}

/// A listening socket on a free port of 127.0.0.1, and its address.
fn listen_local() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// The value of `name` (without labels) in a scrape; 0 when absent.
fn sample(scrape: &str, name: &str) -> f64 {
    let samples = parse_samples(scrape);
    sum(&samples, name, &[])
}

#[test]
fn the_service_adopts_systemds_sockets_and_notifies_ready() {
    let built = built();
    let dir = tempfile::tempdir().unwrap();
    // What systemd does for the units: the sockets bound and listening beforehand, passed as
    // descriptors 3 and 4, and a notify socket. The listeners stay open here, so a service
    // that bound the addresses itself instead would fail with "address in use".
    let (http_listener, http_addr) = listen_local();
    let (metrics_listener, metrics_addr) = listen_local();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let (http_host, http_port) = http_addr.rsplit_once(':').unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-c", r#"export LISTEN_PID=$$ LISTEN_FDS=2; exec "$0" "$@""#])
        .arg(&built.binary)
        .args(["--config", "config.toml"])
        .current_dir(&built.service)
        .env_remove("RUST_LOG")
        .env(format!("{PREFIX}_HTTP_HOST"), http_host)
        .env(format!("{PREFIX}_HTTP_PORT"), http_port)
        .env(format!("{PREFIX}_HTTP_FORKS"), "2")
        .env(format!("{PREFIX}_LOG_FORMAT"), "json")
        .env(
            format!("{PREFIX}_METRICS_LISTEN"),
            format!("tcp://{metrics_addr}"),
        )
        .env("NOTIFY_SOCKET", &notify_path);
    pass_listen_fds(
        &mut command,
        &[http_listener.as_raw_fd(), metrics_listener.as_raw_fd()],
    );
    let mut running = GroupChild::spawn(&mut command, Some("service"));

    // READY=1 once both workers are ready: what Type=notify waits for.
    let mut buffer = [0; 4096];
    let ready = loop {
        let length = notify
            .recv(&mut buffer)
            .expect("READY=1 on the notify socket within 120 s");
        let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
        if message.lines().any(|line| line == "READY=1") {
            break message;
        }
    };
    assert!(ready.contains("STATUS="), "{ready}");

    assert_eq!(
        get(&http_addr, "/greet/ada"),
        (200, "Hello, ada!".to_owned())
    );
    let (status, scrape) = get(&metrics_addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&scrape, GREETINGS_TOTAL), 1.0, "{scrape}");
    // The metrics are on their socket only.
    assert_eq!(get(&http_addr, "/metrics").0, 404);

    running.signal(Signal::SIGTERM);
    assert!(running.wait_exit(Duration::from_secs(60)).success());
    let lines = running.remaining_lines();
    assert!(
        !lines.iter().any(|line| line.contains("not configured")),
        "a socket from systemd was not matched to the config:\n{}",
        lines.join("\n")
    );
}

#[test]
fn greetings_total_counts_every_worker_and_survives_a_killed_one() {
    let built = built();
    // One connection per worker at most: two open connections are served by two workers.
    let mut command = built.command();
    test_env(&mut command, "2").env(format!("{PREFIX}_HTTP_MAX_CONNECTIONS"), "1");
    let mut running = GroupChild::spawn(&mut command, Some("service"));
    let (addr, metrics_addr) = serving_addrs(&running, Instant::now() + Duration::from_secs(120));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let greetings = runtime.block_on(async {
        // Each client keeps its one connection open between requests.
        let clients = [reqwest::Client::new(), reqwest::Client::new()];
        let mut greetings = 0;
        for round in 0..5 {
            for client in &clients {
                let answer = client
                    .get(format!("http://{addr}/greet/round{round}"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert_eq!(answer, format!("Hello, round{round}!"));
                greetings += 1;
            }
        }
        greetings
    });
    let total = |scrape: &str| sample(scrape, GREETINGS_TOTAL);
    let (_, scrape) = get(&metrics_addr, "/metrics");
    assert_eq!(total(&scrape), f64::from(greetings), "{scrape}");
    promtool_check(&scrape).unwrap_or_else(|err| panic!("{err}\n{scrape}"));

    // A worker killed with -9 takes none of its count with it.
    let workers = running.workers();
    assert_eq!(workers.len(), 2, "{workers:?}");
    kill(Pid::from_raw(workers[0]), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        let (status, scrape) = get(&metrics_addr, "/metrics");
        assert_eq!(status, 200);
        if sample(&scrape, "buvar_worker_exits_total") >= 1.0 {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the kill is never counted:\n{scrape}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(total(&scrape), f64::from(greetings), "{scrape}");

    running.signal(Signal::SIGTERM);
    running.wait_exit(Duration::from_secs(60));
}
