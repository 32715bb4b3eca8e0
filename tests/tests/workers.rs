//! `forks = 0` counts CPUs from the cgroup CPU quota: a service in a cgroup limited to 1 CPU
//! runs 1 worker on a machine with more, and says where the count came from.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// A child cgroup of the v1 `cpu` controller with a quota of one CPU, removed on drop.
struct OneCpu(PathBuf);

impl OneCpu {
    fn new() -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/cpu/buvar-one-cpu-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("create the cgroup");
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000").expect("set the period");
        std::fs::write(dir.join("cpu.cfs_quota_us"), "100000").expect("set the quota");
        Self(dir)
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[cfg_attr(
    not(cgroup_v1_cpu_writable),
    ignore = "needs a writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu (run as root)"
)]
fn a_one_cpu_quota_gives_one_worker_and_the_log_names_the_quota() {
    assert!(
        std::thread::available_parallelism().map_or(1, usize::from) > 1,
        "the test needs a machine with more than one CPU"
    );
    let cgroup = OneCpu::new();
    let procs = cgroup.0.join("cgroup.procs");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("svc.toml");
    std::fs::write(&config, "[http]\nport = 0\nforks = 0\n").unwrap();
    let mut command = buvar_tests::service::command();
    command
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped());
    // SAFETY: only writes this process's pid to a file between fork and exec.
    unsafe {
        command.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
    }
    let mut child = command.spawn().expect("spawn service-server");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut count_line = None;
    for line in stdout.lines() {
        let line = line.expect("read the log");
        if line.contains("worker(s), from") {
            count_line = Some(line.clone());
        }
        if line.contains("\"serving\"") {
            break;
        }
    }
    let workers = buvar_tests::live_children(child.id() as i32);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop the service");
    let status = child.wait().expect("wait for the service");
    let line = count_line.expect("no worker count line");
    assert!(
        line.contains("1 worker(s), from the cgroup CPU quota of 1 CPUs"),
        "{line}"
    );
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert!(status.success());
}
