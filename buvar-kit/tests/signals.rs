//! Real signals sent to this test process: kept in its own test binary, with a single test, so
//! that no other test's stage sees them.

use std::process::Command;
use std::time::Duration;

use buvar_kit::plugin::{Plugin, Prepare, Signals, Stage};
use buvar_kit::{BoxError, Cancel};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;

fn send(signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &std::process::id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_cancels_the_stage_and_configured_handlers_see_other_signals() {
    let (hup_tx, mut hup_rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let plugin = Plugin::new("server", move |cx: Prepare| {
        let ready = ready_tx.clone();
        async move {
            let cancel = cx.cancel();
            cx.task("server", move |_| async move {
                ready.send(()).ok();
                cancel.cancelled().await;
                Ok::<_, BoxError>("stopped by signal")
            });
            Ok::<_, BoxError>(())
        }
    });
    let signals = Signals::default().on(SignalKind::hangup(), move |ctx| {
        hup_tx.send(ctx.get::<Cancel>().is_ok()).ok();
    });
    let stage = tokio::spawn(
        Stage::new()
            .signals(signals)
            .cancel_timeout(Duration::from_secs(30))
            .load(plugin)
            .run(),
    );

    ready_rx.recv().await.expect("the task started");
    send("HUP");
    assert_eq!(
        hup_rx.recv().await,
        Some(true),
        "HUP handler got the plugin context"
    );
    send("TERM");
    let report = tokio::time::timeout(Duration::from_secs(20), stage)
        .await
        .expect("SIGTERM ends the stage")
        .unwrap()
        .unwrap();
    assert_eq!(
        report.tasks()[0].value::<&str>(),
        Some(&"stopped by signal")
    );
}
