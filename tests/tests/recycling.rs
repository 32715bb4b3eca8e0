//! `[http] max_requests` of a real `Service`: workers are replaced, new one first, while keep-alive
//! clients keep sending, and no request fails.

use std::collections::HashSet;

use buvar_tests::service::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_replaces_workers_after_max_requests_without_failing_a_request() {
    let service = Service::start(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 5\nmax_requests = 25\n\
         max_requests_jitter = 5\n",
        &[],
        2,
    );
    let first: HashSet<i32> = service.workers().into_iter().collect();
    let url = format!("http://{}/pid", service.addr);
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut pids = HashSet::new();
            let mut failures = Vec::new();
            for _ in 0..75 {
                match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        pids.insert(response.text().await.unwrap_or_default());
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            (pids, failures)
        });
    }
    let mut pids = HashSet::new();
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (seen, failed) = done.unwrap();
        pids.extend(seen);
        failures.extend(failed);
    }

    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    // 300 responses at 25 to 30 per worker: well over the first two workers answered.
    assert!(pids.len() >= 5, "only {} workers answered", pids.len());
    // Retired workers drain their keep-alive connections before they exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while service.workers().iter().any(|pid| first.contains(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "first workers {first:?} still run beside {:?}",
            service.workers()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (status, _, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
}
