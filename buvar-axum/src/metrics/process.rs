//! Resources of one process of the service, read from `/proc` by whichever worker answers the
//! scrape: no process has to report them itself, so a stuck worker still shows.

/// What `/proc` says about one process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) resident_bytes: f64,
    pub(crate) cpu_seconds: f64,
    /// `None` when its descriptors cannot be listed (another user's process).
    pub(crate) open_fds: Option<f64>,
    pub(crate) start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads the process `pid`; `None` when it is gone.
    pub(crate) fn read(pid: u32) -> Option<ProcessStats> {
        if pid == 0 {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|dir| dir.count() as f64);
        let boot = boot_time()?;
        Self::parse(&stat, &statm, open_fds, boot, clock_ticks(), page_size())
    }

    fn parse(
        stat: &str,
        statm: &str,
        open_fds: Option<f64>,
        boot_time: f64,
        ticks: f64,
        page: f64,
    ) -> Option<ProcessStats> {
        // The command name may hold spaces and parentheses: fields start after the last `)`,
        // with the state, field 3 of proc(5), first.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let resident: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(ProcessStats {
            resident_bytes: resident * page,
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            open_fds,
            start_time_seconds: boot_time + field(22)? / ticks,
        })
    }
}

/// The boot time, read once: `/proc/stat` is long on a machine with many CPUs.
fn boot_time() -> Option<f64> {
    static BOOT: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 { page as f64 } else { 4096.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_tricky_name_is_parsed() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 \
                    12345678 300 18446744073709551615";
        let stats = ProcessStats::parse(
            stat,
            "3000 300 100 1 0 200 0",
            Some(7.0),
            1e9,
            100.0,
            4096.0,
        )
        .unwrap();
        assert_eq!(stats.resident_bytes, 300.0 * 4096.0);
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.start_time_seconds, 1e9 + 10.0);
        assert_eq!(stats.open_fds, Some(7.0));
    }

    #[test]
    fn this_process_is_read_and_a_gone_one_is_not() {
        let stats = ProcessStats::read(std::process::id()).unwrap();
        assert!(stats.resident_bytes > 0.0);
        assert!(stats.open_fds.unwrap() >= 3.0);
        assert!(stats.start_time_seconds > 1.5e9);
        assert_eq!(ProcessStats::read(0), None);
    }
}
