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

/// An ADS server that accepts connections but never answers: the admin still comes up, and
/// `wait_live` fails with a timeout naming what it waited for and Envoy's log.
#[tokio::test]
async fn envoy_with_a_silent_ads_server_has_admin_but_is_not_live() {
    let version = default_envoy_version();
    let bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
        .await
        .unwrap()
        .unwrap();
    // Accepts TCP (kernel backlog) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    let json = serde_json::json!({
        "node": {"id": "harness-test", "cluster": "harness"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"}
        },
        "static_resources": {"clusters": [{
            "name": "xds",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
            }]}]}
        }]}
    });
    std::fs::write(&bootstrap, json.to_string()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(bin, bootstrap, dir.path().join("envoy")))
        .await
        .unwrap();
    let ready = envoy.admin_request("/ready").await.unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text());
    let err = envoy
        .wait_live(Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Envoy /ready to say LIVE"), "{err}");
    assert!(err.contains("[envoy stderr]"), "{err}");
    drop(silent);
}
