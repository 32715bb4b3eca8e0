//! Rendering the service template with cargo-generate's library, so rendering needs no installed
//! tool: the template test and `.ci/run`'s linters (through the `render-template` binary) use it.

use std::path::{Path, PathBuf};

use cargo_generate::{GenerateArgs, TemplatePath, Vcs};

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
