//! Rendering the service template with cargo-generate's library, so rendering needs no installed
//! tool: the template test and `.ci/run`'s linters (through the `render-template` binary) use it.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cargo_generate::{GenerateArgs, TemplatePath, Vcs};

use crate::process::GroupChild;

/// Where a template comes from.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    /// A directory holding `cargo-generate.toml`, as `--path DIR`.
    Path(PathBuf),
    /// A git repository and the template's folder in it, as `--git URL FOLDER`.
    Git {
        /// The repository, e.g. `file:///tmp/repo`.
        url: String,
        /// The template's folder inside it.
        folder: String,
    },
}

/// This workspace's `template/` directory.
pub fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .join("template")
}

/// Points a rendered service's buvar dependencies at this workspace's crates, at the versions
/// this workspace locks, so it is tested against the kit as it is now. An empty `[workspace]`
/// makes the service its own workspace: cargo would otherwise take this repository's, above the
/// target directory it is rendered in.
///
/// # Panics
///
/// When the service's `Cargo.toml` or this workspace's `Cargo.lock` cannot be read or written.
pub fn patch_to_workspace(service: &Path) {
    use std::io::Write;

    let ws = template_dir()
        .parent()
        .expect("template/ sits in the workspace")
        .to_path_buf();
    let mut manifest = std::fs::OpenOptions::new()
        .append(true)
        .open(service.join("Cargo.toml"))
        .expect("the rendered Cargo.toml");
    write!(
        manifest,
        "\n[workspace]\n\n[patch.crates-io]\nbuvar-kit = {{ path = {:?} }}\nbuvar-axum = {{ path = {:?} }}\n",
        ws.join("buvar-kit"),
        ws.join("buvar-axum"),
    )
    .expect("the rendered Cargo.toml");
    std::fs::copy(ws.join("Cargo.lock"), service.join("Cargo.lock")).expect("Cargo.lock");
}

/// The target directory every rendered service builds in, beside the running test's own, so
/// that the dependencies they have in common compile once (on 2 cores that is minutes of CI).
/// A nested cargo cannot share the test's own directory, which `cargo test` keeps locked.
///
/// # Panics
///
/// When the running test is not in `<target>/<profile>/deps/`.
pub fn shared_target() -> PathBuf {
    std::env::current_exe()
        .expect("the test's path")
        .ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .join("template-build")
}

/// Renders `source` into `destination/name`, as `cargo generate --name NAME --silent --vcs none
/// --destination DESTINATION -d KEY=VALUE...` would; the template's pre hook chooses what
/// `defines` leaves out. Returns the rendered project's directory.
///
/// # Errors
///
/// cargo-generate's error, with its causes, when the template cannot be read or rendered.
pub fn render(
    source: &TemplateSource,
    name: &str,
    destination: &Path,
    defines: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(destination)?;
    let template_path = match source {
        TemplateSource::Path(dir) => TemplatePath {
            path: Some(dir.display().to_string()),
            ..TemplatePath::default()
        },
        // With `git` set, cargo-generate reads the positional path as the subfolder.
        TemplateSource::Git { url, folder } => TemplatePath {
            git: Some(url.clone()),
            auto_path: Some(folder.clone()),
            ..TemplatePath::default()
        },
    };
    cargo_generate::generate(GenerateArgs {
        template_path,
        name: Some(name.to_owned()),
        silent: true,
        vcs: Some(Vcs::None),
        destination: Some(destination.to_path_buf()),
        define: defines
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect(),
        ..GenerateArgs::default()
    })
}

/// A systemd unit file's settings, in order: comments and blank lines left out, each
/// `Key=Value` with the `[Section]` it sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdUnit {
    settings: Vec<(String, String, String)>,
}

impl SystemdUnit {
    /// Parses the text of a unit file (`#` and `;` comments; no line continuations, which the
    /// template's units do not use).
    ///
    /// # Errors
    ///
    /// A line outside a section, or one that is neither a section, a comment nor `Key=Value`,
    /// named by its number.
    pub fn parse(text: &str) -> Result<SystemdUnit, String> {
        let mut section = None;
        let mut settings = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if line.ends_with('\\') {
                return Err(format!("line {}: a continued line", number + 1));
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.to_owned());
                continue;
            }
            let (Some(section), Some((key, value))) = (&section, line.split_once('=')) else {
                return Err(format!("line {}: not a setting: {line:?}", number + 1));
            };
            settings.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
        Ok(SystemdUnit { settings })
    }

    /// Every value of `key` in `[section]`, in order (`Environment=`, `ListenStream=` repeat).
    pub fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.settings
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, value)| value.as_str())
            .collect()
    }

    /// The value of `key` in `[section]` that systemd uses: the last one.
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.values(section, key).pop()
    }

    /// The unit's `Environment=` assignments as `(NAME, value)` pairs.
    pub fn environment(&self) -> Vec<(&str, &str)> {
        self.values("Service", "Environment")
            .into_iter()
            .flat_map(str::split_whitespace)
            .filter_map(|assignment| assignment.split_once('='))
            .collect()
    }
}

/// Reads a buvar service's JSON log lines until it said where it serves and where it serves its
/// metrics (`[metrics] listen`): both addresses, as `127.0.0.1:PORT`.
///
/// # Panics
///
/// When `deadline` passes or the output ends first, or a line is not JSON.
pub fn serving_addrs(child: &GroupChild, deadline: Instant) -> (String, String) {
    let (mut http, mut metrics) = (None, None);
    while http.is_none() || metrics.is_none() {
        let line = child
            .next_line(deadline)
            .expect("the service logs where it serves and where its metrics are");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        let addr = || {
            let addr = event["addr"].as_str().expect("an address field");
            Some(addr.trim_start_matches("tcp://").to_owned())
        };
        match event["message"].as_str() {
            Some("serving") => http = http.or_else(addr),
            Some("serving metrics") => metrics = metrics.or_else(addr),
            _ => {}
        }
    }
    (http.unwrap_or_default(), metrics.unwrap_or_default())
}

/// Makes `command` inherit `fds` (at most 8) as descriptors 3, 4, ... the way systemd passes
/// activated sockets; the command still has to set `LISTEN_FDS` and its own pid as
/// `LISTEN_PID` (a shell that `exec`s it can: `export LISTEN_PID=$$`).
///
/// # Panics
///
/// When given more than 8 descriptors.
pub fn pass_listen_fds(command: &mut Command, fds: &[RawFd]) {
    use nix::fcntl::{FcntlArg, fcntl};

    const MAX: usize = 8;
    assert!(fds.len() <= MAX, "at most {MAX} descriptors");
    let mut sources = [0; MAX];
    sources[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    // SAFETY: fcntl and dup2 are async-signal-safe, nothing here allocates, and they touch only
    // the child's descriptors.
    unsafe {
        command.pre_exec(move || {
            // Moved above the targets first, so that no source is overwritten before it is
            // copied (a source may itself be 3 or 4); these copies close on exec.
            let mut high = [0; MAX];
            for (copy, &fd) in high.iter_mut().zip(&sources[..count]) {
                *copy = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(100))?;
            }
            for (target, &fd) in (3..).zip(&high[..count]) {
                // dup2's copy does not close on exec.
                nix::unistd::dup2(fd, target)?;
            }
            Ok(())
        });
    }
}
