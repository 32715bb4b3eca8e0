//! The global set-up, in its own test binary: it installs the process-wide subscriber.

use buvar_kit::log::{LogConfig, LogError, init};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn init_starts_no_thread_and_refuses_a_second_call() {
    let before = threads();
    init(&LogConfig::default()).unwrap();
    tracing::info!("after init");
    assert_eq!(threads(), before);
    assert!(matches!(
        init(&LogConfig::default()),
        Err(LogError::AlreadySet)
    ));
}
