//! The probes every deployment relies on, apart from any plugin: `/healthz` answers while the
//! process lives, `/readyz` once the server accepts requests.

use buvar_axum::testing::TestApp;

#[tokio::test]
async fn the_server_is_live_and_ready() {
    let server = TestApp::new().serve().await.unwrap();
    let client = reqwest::Client::new();
    for probe in ["/healthz", "/readyz"] {
        let response = client.get(server.url(probe)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{probe}");
    }
    let report = server.stop().await;
    assert!(report.is_success(), "{report:?}");
}
