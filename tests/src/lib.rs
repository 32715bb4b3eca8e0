//! Helpers shared by the end-to-end tests in `tests/`.

/// The value of `field` (e.g. `"Uid:"`) in `/proc/<pid>/status`, with its whitespace collapsed
/// to single spaces; empty when the field is absent.
///
/// # Panics
///
/// When the process does not exist.
pub fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
