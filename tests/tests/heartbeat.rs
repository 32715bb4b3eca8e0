//! `[http] heartbeat_timeout` of a real `Service`: a worker whose runtime is blocked is
//! replaced; one busy with a long async request is not.

use std::time::{Duration, Instant};

use buvar_tests::service::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_replaces_a_worker_whose_runtime_is_blocked() {
    let service = Service::start(
        "[http]\nport = 0\nforks = 2\nheartbeat_timeout = 0.4\n",
        &[],
        2,
    );
    let before = service.workers();
    let client = reqwest::Client::new();
    let slow = client
        .get(format!("http://{}/slow?ms=1500", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.text().await.unwrap(), "slow done");
    assert_eq!(service.workers(), before, "a busy worker was replaced");

    let started = Instant::now();
    let blocked = client
        .get(format!("http://{}/block?ms=30000", service.addr))
        .send()
        .await;
    // The request in flight on the blocked worker is the one casualty, long before 30 s.
    assert!(blocked.is_err(), "{blocked:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = service.workers();
        if now.len() == 2 && now != before {
            break;
        }
        assert!(Instant::now() < deadline, "never replaced: {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = client
        .get(format!("http://{}/pid", service.addr))
        .send()
        .await
        .unwrap();
    assert!(after.status().is_success());
}
