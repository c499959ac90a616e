//! Provisions the real Envoy and runs it with a static, admin-only bootstrap.

use std::time::Duration;

use isobar_harness::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions};

#[tokio::test]
async fn envoy_with_no_dynamic_resources_goes_live() {
    let version = default_envoy_version();
    let bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
        .await
        .unwrap()
        .unwrap();
    // Memoized: the second call answers at once with the same path.
    assert_eq!(envoy_binary(&default_envoy_version()).unwrap(), bin);

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(
        &bootstrap,
        r#"{"node":{"id":"harness-test","cluster":"harness"},
            "admin":{"address":{"socket_address":{"address":"127.0.0.1","port_value":0}}}}"#,
    )
    .unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(bin, bootstrap, dir.path().join("envoy")))
        .await
        .unwrap();
    assert!(envoy.admin_url().starts_with("http://127.0.0.1:"));
    envoy.wait_live(Duration::from_secs(30)).await.unwrap();
    assert_eq!(envoy.admin_get("/ready").await.unwrap().trim(), "LIVE");
    assert_eq!(envoy.stat("server.live").await.unwrap(), Some(1));
    assert_eq!(envoy.stat("no.such.stat").await.unwrap(), None);
    assert!(envoy.dynamic_listener_names().await.unwrap().is_empty());
    let dump = envoy.config_dump().await.unwrap();
    assert!(dump["configs"].is_array(), "{dump}");

    let pid = envoy.pid();
    drop(envoy);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "Envoy {pid} survived drop"
    );
}
