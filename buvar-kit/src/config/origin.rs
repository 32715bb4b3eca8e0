//! Where a value came from, in words a user recognises: a file and line, an environment
//! variable, TOML text, in-code values.

use std::path::Path;

use figment::Metadata;

use super::schema::short_name;

/// Where a value came from, for messages: `file /etc/app.toml line 3`,
/// `environment variable APP_HTTP_PORT`, `TOML text`, ...
pub(crate) fn origin(metadata: &Metadata, path: &[String]) -> String {
    match metadata
        .source
        .as_ref()
        .and_then(|source| source.file_path())
    {
        Some(file) => match line_of(file, path) {
            Some(line) => format!("{} {} line {line}", metadata.name, file.display()),
            None => format!("{} {}", metadata.name, file.display()),
        },
        // figment names a serialised layer after its Rust type (`serde_json::value::Value`).
        None if metadata
            .name
            .split_whitespace()
            .next()
            .is_some_and(|first| first.contains("::")) =>
        {
            format!(
                "in-code values (a serialised `{}`)",
                short_name(&metadata.name)
            )
        }
        None => metadata.name.to_string(),
    }
}

/// The line where `path` is set in a TOML file, found again by parsing the file with spans.
fn line_of(file: &Path, path: &[String]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let document = toml_edit::ImDocument::parse(text.as_str()).ok()?;
    let mut item = document.as_item();
    for key in path {
        // figment names list items by their index.
        item = match key.parse::<usize>() {
            Ok(index) if item.is_array() || item.is_array_of_tables() => item.get(index)?,
            _ => item.get(key.as_str())?,
        };
    }
    let span = item.span()?;
    Some(line_column(&text, span.start).0)
}

/// 1-based line and column of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |rest| rest.chars().count())
        + 1;
    (line, column)
}
