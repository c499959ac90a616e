//! An ADS server on a loopback socket (mTLS with freshly generated certificates) over the fixture
//! objects, for the gRPC-level tests of both protocols (`xds_grpc.rs`, `xds_grpc_delta.rs`).
#![allow(dead_code)] // each test file uses its own part

use std::sync::Arc;
use std::time::Duration;

use isobar::dag::{self, DagOptions};
use isobar::source::file::parse_manifests;
use isobar::store::Snapshot;
use isobar::tls::certgen::{self, CertgenOptions};
use isobar::tls::server::{ReloadingServerConfig, TlsFiles};
use isobar::xds::cache::XdsCache;
use isobar::xds::limits::XdsServerLimits;
use isobar::xds::server::{serve, AdsService};
use isobar::xds::stats::XdsStats;
use isobar::xds::tls_incoming::XdsTls;
use isobar::xds::translate::{self, ListenerConfig};
use isobar_harness::xds_client::XdsClientTls;
use tokio::sync::oneshot;

pub const RECV: Duration = Duration::from_secs(5);
/// How long a test waits to see that nothing is sent. It bounds a check for absence; nothing
/// synchronises on it.
pub const QUIET: Duration = Duration::from_millis(400);

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub cache: Arc<XdsCache>,
    pub stats: Arc<XdsStats>,
    pub client_tls: XdsClientTls,
    pub dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

pub fn fixture_snapshot(extra: &str) -> Snapshot {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/grpc/objects.yaml"
    ))
    .unwrap();
    let mut snapshot = Snapshot::default();
    for o in parse_manifests("objects.yaml", &format!("{text}\n---\n{extra}")).unwrap() {
        snapshot.insert(o);
    }
    snapshot
}

pub fn publish(cache: &XdsCache, snapshot: &Snapshot) -> bool {
    let (dag, statuses) = dag::build(snapshot, &DagOptions::default());
    assert!(
        statuses.iter().all(|s| s.validity == dag::Validity::Valid),
        "{statuses:?}"
    );
    let config = ListenerConfig {
        http_address: "127.0.0.1".into(),
        http_port: 18080,
        https_address: "127.0.0.1".into(),
        https_port: 18443,
    };
    cache.set(translate::translate(&dag, snapshot, &config).by_type())
}

pub async fn start() -> Server {
    start_with(XdsServerLimits::default()).await
}

pub async fn start_with(limits: XdsServerLimits) -> Server {
    isobar::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs =
        certgen::generate(&CertgenOptions::default(), time::OffsetDateTime::now_utc()).unwrap();
    certgen::write_to_dir(&certs, dir.path(), false).unwrap();
    let tls = ReloadingServerConfig::load(TlsFiles {
        ca: dir.path().join("ca.crt"),
        cert: dir.path().join("isobar.crt"),
        key: dir.path().join("isobar.key"),
    })
    .unwrap();
    let tls = Arc::new(tls);
    Arc::clone(&tls).spawn_watch(Duration::from_millis(50));
    let cache = Arc::new(XdsCache::new());
    publish(&cache, &fixture_snapshot(""));
    let stats = Arc::new(XdsStats::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let service = AdsService::new(Arc::clone(&cache), Arc::clone(&stats));
    let tls = XdsTls {
        server_config: tls,
        client_sans: Default::default(),
    };
    tokio::spawn(async move {
        serve(listener, Some(tls), &limits, service, async {
            let _ = stopped.await;
        })
        .await
    });
    Server {
        addr,
        cache,
        stats,
        client_tls: XdsClientTls {
            ca_pem: Some(certs.ca_cert.into_bytes()),
            client_cert_pem: Some(certs.envoy_cert.into_bytes()),
            client_key_pem: Some(certs.envoy_key.into_bytes()),
            server_name: "isobar".into(),
        },
        dir,
        _stop: stop,
    }
}

/// Services `flip-a`, `flip-b` and `flip-c` with an endpoint each, and Ingress `flip` routing
/// flip.example.com to `flip-<to>`.
pub fn flip(to: &str) -> String {
    let service = |n: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: flip-{n}, namespace: shop}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
             apiVersion: v1\nkind: Endpoints\nmetadata: {{name: flip-{n}, namespace: shop}}\nsubsets:\n- addresses: [{{ip: {ip}}}]\n  ports: [{{port: 8080}}]\n---\n"
        )
    };
    format!(
        "{}{}{}apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: flip, namespace: shop}}\nspec:\n  rules:\n  - host: flip.example.com\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: flip-{to}, port: {{number: 80}}}}}}}}]}}\n",
        service("a", "127.0.0.21"),
        service("b", "127.0.0.22"),
        service("c", "127.0.0.23")
    )
}
