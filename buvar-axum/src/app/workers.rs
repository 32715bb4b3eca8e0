//! How many workers `forks = 0` means: one per CPU the process may use, which std's
//! `available_parallelism` counts from the affinity mask and the cgroup CPU quota (v1
//! `cpu.cfs_quota_us`, v2 `cpu.max`). A container with a 1-CPU limit on a 64-core node gets one
//! worker, not 64. The count is logged with where it came from.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the worker count came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// `forks` in the config.
    Configured,
    /// The cgroup CPU quota, in CPUs (e.g. 1.5), rounded up.
    CgroupQuota(f64),
    /// The CPUs the process may run on.
    Cpus,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Configured => f.write_str("`http.forks`"),
            Source::CgroupQuota(cpus) => write!(f, "the cgroup CPU quota of {cpus} CPUs"),
            Source::Cpus => f.write_str("the CPUs this process may use"),
        }
    }
}

/// The worker count for `forks` and where it came from, given the CPU count std found and the
/// cgroup quota, if one is set.
pub(crate) fn decide(forks: usize, cpus: usize, quota: Option<f64>) -> (usize, Source) {
    if forks > 0 {
        return (forks, Source::Configured);
    }
    match quota {
        // std rounds the quota up and takes the smaller of it and the affinity count; the
        // quota is named only when it is what decided.
        Some(quota) if quota.ceil() as usize == cpus => (cpus.max(1), Source::CgroupQuota(quota)),
        _ => (cpus.max(1), Source::Cpus),
    }
}

/// The worker count for `forks`, logged once with its source.
pub(crate) fn count(forks: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let quota = if forks == 0 { cgroup_quota() } else { None };
    let (workers, source) = decide(forks, cpus, quota);
    tracing::info!(workers, source = %source, "{workers} worker(s), from {source}");
    if workers > 1 {
        tracing::info!(
            "state is per worker: each of the {workers} workers has its own components and \
             memory, lost when it exits; keep shared state in a database or another process, \
             or set `http.forks = 1` for one process"
        );
    }
    workers
}

/// The CPU quota of this process's cgroup in CPUs, if one is set (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us` over `cpu.cfs_period_us`).
fn cgroup_quota() -> Option<f64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    membership.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            let text = read(&Path::new("/sys/fs/cgroup").join(relative).join("cpu.max"))?;
            parse_v2(&text)
        } else if controllers.split(',').any(|c| c == "cpu") {
            let dir = v1_dir(controllers)?.join(relative);
            let quota = read(&dir.join("cpu.cfs_quota_us"))?;
            let period = read(&dir.join("cpu.cfs_period_us"))?;
            parse_v1(&quota, &period)
        } else {
            None
        }
    })
}

fn v1_dir(controllers: &str) -> Option<PathBuf> {
    [controllers, "cpu", "cpu,cpuacct"]
        .iter()
        .map(|name| Path::new("/sys/fs/cgroup").join(name))
        .find(|dir| dir.join("cpu.cfs_quota_us").exists())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `"max 100000"` (no quota) or `"150000 100000"` (1.5 CPUs).
fn parse_v2(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// `"-1"` (no quota) or `"100000"` over a period of `"100000"` (1 CPU).
fn parse_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_forks_win() {
        assert_eq!(decide(3, 64, Some(1.0)), (3, Source::Configured));
    }

    #[test]
    fn a_quota_that_decided_the_count_is_named() {
        assert_eq!(decide(0, 2, Some(1.5)), (2, Source::CgroupQuota(1.5)));
        assert_eq!(decide(0, 1, Some(1.0)), (1, Source::CgroupQuota(1.0)));
        // A quota above the CPUs the process may use did not decide.
        assert_eq!(decide(0, 2, Some(8.0)), (2, Source::Cpus));
        assert_eq!(decide(0, 4, None), (4, Source::Cpus));
    }

    #[test]
    fn cgroup_files_parse_in_both_versions() {
        assert_eq!(parse_v2("max 100000\n"), None);
        assert_eq!(parse_v2("150000 100000\n"), Some(1.5));
        assert_eq!(parse_v1("-1\n", "100000\n"), None);
        assert_eq!(parse_v1("100000\n", "100000\n"), Some(1.0));
    }
}
