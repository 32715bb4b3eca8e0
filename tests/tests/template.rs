//! The service template end to end: rendered with cargo-generate from a path and from git, its
//! buvar dependencies pointed at this workspace, its own checks and tests run, then started as a
//! real process that answers `/healthz`.
//!
//! cargo-generate comes from `.ci/run` (`bash .ci/run tools`). Without it these tests skip with
//! a message, except under `CI`, where a skip would hide that the template was never tried.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Whether `cargo generate` runs; panics under CI when it does not.
fn cargo_generate_available() -> bool {
    let works = cargo()
        .args(["generate", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    if !works && ci {
        panic!(
            "cargo-generate is not installed, and CI is set: run `bash .ci/run tools` \
             (it installs cargo-generate ~0.23) before the tests"
        );
    }
    if !works {
        eprintln!(
            "\n\n*** SKIPPED: cargo-generate is not installed, so the service template was NOT \
             tested. Run `bash .ci/run tools` (or `cargo install cargo-generate --version '~0.23' \
             --locked`) and test again. ***\n"
        );
    }
    works
}

fn run(command: &mut Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?} failed with {status}");
}

/// Renders the template from this workspace's `template/` into `destination/NAME`.
fn render_from_path(destination: &Path) -> PathBuf {
    std::fs::create_dir_all(destination).unwrap();
    run(cargo()
        .arg("generate")
        .arg("--path")
        .arg(workspace().join("template"))
        .args(["--name", NAME, "--silent", "--vcs", "none", "--destination"])
        .arg(destination));
    destination.join(NAME)
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
    if !cargo_generate_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let from_path = render_from_path(&dir.path().join("from-path"));

    // A git repository with the template in a subfolder, like this one, at a file:// URL.
    let repo = dir.path().join("repo");
    copy_dir(&workspace().join("template"), &repo.join("template"));
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
    std::fs::create_dir_all(&from_git).unwrap();
    run(cargo()
        .arg("generate")
        .arg("--git")
        .arg(format!("file://{}", repo.display()))
        .arg("template")
        .args(["--name", NAME, "--silent", "--vcs", "none", "--destination"])
        .arg(&from_git));
    let from_git = from_git.join(NAME);

    let rendered = files(&from_path);
    assert_eq!(rendered, files(&from_git));
    for file in [
        "Cargo.toml",
        "src/main.rs",
        "src/plugins/greeter.rs",
        "config.toml",
        "tests/http.rs",
        "Dockerfile",
        "k8s/deployment.yaml",
        "k8s/service.yaml",
        ".github/workflows/ci.yml",
        "README.md",
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
    assert!(
        !rendered.contains(&PathBuf::from("pre-script.rhai")),
        "the hook is not part of the service"
    );
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
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_rendered_service_passes_its_checks_and_tests_and_serves_healthz() {
    if !cargo_generate_available() {
        return;
    }
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
