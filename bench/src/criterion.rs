//! Criterion's saved results, as ratios against the baselines of their group.
//!
//! Each bench whose name starts with `baseline:` is a baseline of its group; every bench of the
//! group is reported as its median time and its ratio to each baseline, all from the last run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why criterion's results could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CriterionError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}; run `cargo bench` first")]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A file is not the JSON criterion writes.
    #[error("{path} is not criterion's JSON: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why it did not parse.
        source: serde_json::Error,
    },
}

/// One bench of the last run.
#[derive(Debug, Clone, PartialEq)]
pub struct Bench {
    /// Its name within its group.
    pub name: String,
    /// Its median time per iteration, in nanoseconds.
    pub median_ns: f64,
}

impl Bench {
    /// Whether it is a baseline of its group.
    pub fn is_baseline(&self) -> bool {
        self.name.starts_with("baseline:")
    }
}

#[derive(Deserialize)]
struct Id {
    group_id: String,
    function_id: Option<String>,
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Every bench under `dir` (criterion's output, `target/criterion`), by group, baselines first.
pub fn read(dir: &Path) -> Result<BTreeMap<String, Vec<Bench>>, CriterionError> {
    let mut groups: BTreeMap<String, Vec<Bench>> = BTreeMap::new();
    for group in list(dir)? {
        for bench in list(&group)? {
            let new = bench.join("new");
            if !new.join("estimates.json").is_file() {
                continue;
            }
            let id: Id = json(&new.join("benchmark.json"))?;
            let estimates: Estimates = json(&new.join("estimates.json"))?;
            groups.entry(id.group_id).or_default().push(Bench {
                name: id.function_id.unwrap_or_default(),
                median_ns: estimates.median.point_estimate,
            });
        }
    }
    for benches in groups.values_mut() {
        benches.sort_by(|a, b| (!a.is_baseline(), &a.name).cmp(&(!b.is_baseline(), &b.name)));
    }
    Ok(groups)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, CriterionError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CriterionError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "report"))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, CriterionError> {
    let text = std::fs::read_to_string(path).map_err(|source| CriterionError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CriterionError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The groups as Markdown tables: each bench's median and its ratio to each baseline.
pub fn markdown(groups: &BTreeMap<String, Vec<Bench>>) -> String {
    let mut out = String::new();
    for (group, benches) in groups {
        let baselines: Vec<&Bench> = benches.iter().filter(|b| b.is_baseline()).collect();
        out.push_str(&format!("\n### {group}\n\n| bench | median |"));
        for baseline in &baselines {
            out.push_str(&format!(" vs `{}` |", baseline.name));
        }
        out.push_str(&format!(
            "\n| --- | ---: |{}\n",
            " ---: |".repeat(baselines.len())
        ));
        for bench in benches {
            out.push_str(&format!("| {} | {} |", bench.name, time(bench.median_ns)));
            for baseline in &baselines {
                out.push_str(&format!(" {:.2} |", bench.median_ns / baseline.median_ns));
            }
            out.push('\n');
        }
    }
    out
}

fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bench(root: &Path, dir: &str, group: &str, name: &str, median: f64) {
        let new = root.join(group).join(dir).join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            format!(r#"{{"group_id":"{group}","function_id":"{name}"}}"#),
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            format!(r#"{{"median":{{"point_estimate":{median}}},"mean":{{"point_estimate":1}}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn benches_are_grouped_with_baselines_first_and_ratios_against_each() {
        let root = tempfile::tempdir().unwrap();
        write_bench(root.path(), "a", "extract", "Component<T>", 30.0);
        write_bench(root.path(), "b", "extract", "baseline: State", 10.0);
        write_bench(root.path(), "c", "extract", "baseline: Extension", 15.0);
        let groups = read(root.path()).unwrap();
        let names: Vec<&str> = groups["extract"].iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["baseline: Extension", "baseline: State", "Component<T>"]
        );
        let table = markdown(&groups);
        assert!(
            table.contains("| Component<T> | 30.0 ns | 2.00 | 3.00 |"),
            "{table}"
        );
    }

    #[test]
    fn a_missing_directory_says_to_run_the_benches() {
        let err = read(Path::new("/nonexistent/criterion")).unwrap_err();
        assert!(err.to_string().contains("cargo bench"), "{err}");
    }
}
