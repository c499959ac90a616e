//! Hostile values against the real thing: proptest generates Ingresses, IngressRoutes, Services,
//! Endpoints and Secrets full of values Envoy might refuse (out-of-range durations, CR/LF/NUL,
//! non-ASCII hosts, 32-bit overflowing weights, negative and huge numbers, bad IPs and ports, keys
//! that don't match their certificate). Whatever isobar accepts is translated and pushed to one real
//! Envoy; Envoy must accept every push (0 NACKs), and a canary host added in each case must reach it.
//!
//! `HOSTILE_CASES` sets the number of cases (default 500).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use isobar::bootstrap::{self, BootstrapOptions, XdsApi};
use isobar::dag::{self, DagOptions};
use isobar::source::file::parse_manifests;
use isobar::store::Snapshot;
use isobar::xds::cache::XdsCache;
use isobar::xds::limits::XdsServerLimits;
use isobar::xds::server::{serve, AdsService};
use isobar::xds::stats::XdsStats;
use isobar::xds::translate::{self, ListenerConfig};
use isobar_harness::envoy::{default_envoy_version, envoy_binary, Envoy, EnvoyOptions};
use isobar_harness::wait_for_async;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const NS: &str = "t";
/// How long one push may take to be ACKed by Envoy.
const ACK: Duration = Duration::from_secs(15);

fn pick<T: Clone + std::fmt::Debug + 'static>(values: &[T]) -> impl Strategy<Value = T> {
    proptest::sample::select(values.to_vec())
}

/// Mostly `benign`, sometimes one of `hostile`: with every field hostile at once, nearly every object
/// would be refused for something and little would reach Envoy.
fn mostly<T: Clone + std::fmt::Debug + 'static>(
    benign: T,
    hostile: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![10 => Just(benign), 1 => hostile].boxed()
}

fn durations() -> impl Strategy<Value = String> {
    mostly("5s".to_string(), hostile_durations())
}

fn hostile_durations() -> impl Strategy<Value = String> {
    pick(&[
        "1s",
        "0",
        "250ms",
        "infinity",
        "100000000000h",
        "2562047h",
        "2562048h",
        "9223372036s",
        "9223372037s",
        "87600000h",
        "1.5h30m",
        "-1s",
        "1e9s",
        "18446744073709551615s",
        "0.000000001s",
        "",
    ])
    .prop_map(str::to_string)
}

fn texts() -> impl Strategy<Value = String> {
    mostly("/".to_string(), hostile_texts())
}

fn hostile_texts() -> impl Strategy<Value = String> {
    prop_oneof![
        pick(&[
            "/",
            "/api",
            "/a b",
            "/a\r\nx-injected: 1",
            "/a\0b",
            "/caf\u{e9}",
            "/a?b=c",
            "/a#frag",
            "a",
            "",
            "/%00",
            "/\t",
            "/a/../b",
            "//",
            "/x\u{7f}",
        ])
        .prop_map(str::to_string),
        "/[a-z]{1,5}".prop_map(|s| s),
        Just(format!("/{}", "a".repeat(10_000))),
    ]
}

fn hosts() -> impl Strategy<Value = String> {
    mostly("a.example.com".to_string(), hostile_hosts())
}

fn hostile_hosts() -> impl Strategy<Value = String> {
    prop_oneof![
        pick(&[
            "a.example.com",
            "A.Example.com",
            "*.example.com",
            "b\u{fc}cher.example",
            "xn--bcher-kva.example",
            "a.example.com:8080",
            "a..example.com",
            "-a.example.com",
            "a.example.com.",
            "a.example.com\r\nx",
            "*",
            "",
            "1.2.3.4",
            "[::1]",
        ])
        .prop_map(str::to_string),
        Just(format!("{}.example.com", "a".repeat(64))),
        Just(format!("{}.com", vec!["a".repeat(60); 5].join("."))),
    ]
}

fn numbers() -> impl Strategy<Value = i64> {
    mostly(80, hostile_numbers())
}

fn hostile_numbers() -> impl Strategy<Value = i64> {
    pick(&[
        0i64,
        1,
        -1,
        2,
        100,
        65535,
        65536,
        2147483647,
        4294967295,
        4294967296,
        i64::MAX,
        i64::MIN,
    ])
}

fn ips() -> impl Strategy<Value = String> {
    mostly("127.0.0.1".to_string(), hostile_ips())
}

fn hostile_ips() -> impl Strategy<Value = String> {
    pick(&[
        "127.0.0.1",
        "::1",
        "not-an-ip",
        "999.1.1.1",
        "127.0.0.1:80",
        "",
        "fe80::1%eth0",
        "0.0.0.0",
    ])
    .prop_map(str::to_string)
}

fn annotation_values() -> impl Strategy<Value = String> {
    prop_oneof![
        durations(),
        pick(&[
            "5xx",
            "5xx,gateway-error",
            "sometimes",
            "1.3",
            "1.0",
            "true",
            "yes",
            "/ws,/a b",
            "http,h2c",
            "\r\n",
        ])
        .prop_map(str::to_string),
        numbers().prop_map(|n| n.to_string()),
    ]
}

const ANNOTATIONS: [&str; 9] = [
    "projectcontour.io/request-timeout",
    "projectcontour.io/retry-on",
    "projectcontour.io/num-retries",
    "projectcontour.io/per-try-timeout",
    "projectcontour.io/websocket-routes",
    "projectcontour.io/tls-minimum-protocol-version",
    "ingress.kubernetes.io/force-ssl-redirect",
    "kubernetes.io/ingress.allow-http",
    "projectcontour.io/max-connections",
];

const SERVICE_ANNOTATIONS: [&str; 5] = [
    "projectcontour.io/max-connections",
    "projectcontour.io/max-pending-requests",
    "projectcontour.io/max-requests",
    "projectcontour.io/max-retries",
    "projectcontour.io/upstream-protocol.h2c",
];

/// One generated case: hostile objects of every kind isobar reads.
#[derive(Debug, Clone)]
struct Case {
    service_port: i64,
    service_annotations: Vec<(usize, String)>,
    endpoint_ip: String,
    endpoint_port: i64,
    ingress_host: String,
    ingress_path: String,
    ingress_path_type: String,
    ingress_annotations: Vec<(usize, String)>,
    ingress_tls: Option<bool>,
    fqdn: String,
    route_match: String,
    child_match: String,
    prefix_rewrite: Option<String>,
    timeout: Option<String>,
    retry_count: Option<i64>,
    per_try_timeout: Option<String>,
    weights: (Option<i64>, Option<i64>),
    health_check: Option<(String, Option<String>, i64, i64, i64, i64)>,
    strategy: String,
    subject_name: Option<String>,
    tls: Option<TlsChoice>,
}

#[derive(Debug, Clone, Copy)]
enum TlsChoice {
    Valid,
    MismatchedKey,
    Garbage,
    Passthrough,
}

fn case() -> impl Strategy<Value = Case> {
    let objects = (
        numbers(),
        proptest::collection::vec((0..SERVICE_ANNOTATIONS.len(), annotation_values()), 0..3),
        ips(),
        numbers(),
        hosts(),
        texts(),
        pick(&["Prefix", "Exact", "ImplementationSpecific", "Regex"]).prop_map(str::to_string),
        proptest::collection::vec((0..ANNOTATIONS.len(), annotation_values()), 0..4),
        proptest::option::of(any::<bool>()),
    );
    let route = (
        hosts(),
        texts(),
        texts(),
        proptest::option::of(texts()),
        proptest::option::of(durations()),
        proptest::option::of(numbers()),
        proptest::option::of(durations()),
        (
            proptest::option::of(numbers()),
            proptest::option::of(numbers()),
        ),
        proptest::option::of((
            texts(),
            proptest::option::of(hosts()),
            numbers(),
            numbers(),
            numbers(),
            numbers(),
        )),
        pick(&["RoundRobin", "Cookie", "Random", "Maglev"]).prop_map(str::to_string),
        proptest::option::of(hosts()),
        proptest::option::of(pick(&[
            TlsChoice::Valid,
            TlsChoice::MismatchedKey,
            TlsChoice::Garbage,
            TlsChoice::Passthrough,
        ])),
    );
    (objects, route).prop_map(|(o, r)| Case {
        service_port: o.0,
        service_annotations: o.1,
        endpoint_ip: o.2,
        endpoint_port: o.3,
        ingress_host: o.4,
        ingress_path: o.5,
        ingress_path_type: o.6,
        ingress_annotations: o.7,
        ingress_tls: o.8,
        fqdn: r.0,
        route_match: r.1,
        child_match: r.2,
        prefix_rewrite: r.3,
        timeout: r.4,
        retry_count: r.5,
        per_try_timeout: r.6,
        weights: r.7,
        health_check: r.8,
        strategy: r.9,
        subject_name: r.10,
        tls: r.11,
    })
}

/// Two certificates and their keys, made once.
struct Pki {
    cert: String,
    key: String,
    other_key: String,
    ca: String,
}

fn pki() -> Pki {
    let make = |name: &str| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = make("a.example.com");
    let (ca, other_key) = make("other.example.com");
    Pki {
        cert,
        key,
        other_key,
        ca,
    }
}

fn meta(name: &str, annotations: Value) -> Value {
    json!({"name": name, "namespace": NS, "annotations": annotations})
}

fn annotations(pairs: &[(usize, String)], names: &[&str]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(i, v)| (names[*i].to_string(), Value::String(v.clone())))
            .collect(),
    )
}

/// The case as Kubernetes objects (JSON, which the YAML reader takes), plus a canary Ingress on host
/// `canary` that must always be served.
fn documents(c: &Case, pki: &Pki, canary: &str) -> Vec<Value> {
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("svc", annotations(&c.service_annotations, &SERVICE_ANNOTATIONS)),
               "spec": {"ports": [{"name": "http", "port": c.service_port}]}}),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("svc", json!({})),
               "subsets": [{"addresses": [{"ip": c.endpoint_ip}], "ports": [{"name": "http", "port": c.endpoint_port}]}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("good", json!({})),
               "spec": {"ports": [{"name": "http", "port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("good", json!({})),
               "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": 9}]}]}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("canary", json!({})),
               "spec": {"rules": [{"host": canary, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": "good", "port": {"number": 80}}}}]}}]}}),
    ];
    let secret = |cert: &str, key: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("tls", json!({})), "type": "kubernetes.io/tls",
               "stringData": {"tls.crt": cert, "tls.key": key, "ca.crt": pki.ca}})
    };
    match c.tls {
        Some(TlsChoice::Valid) | Some(TlsChoice::Passthrough) | None => {
            docs.push(secret(&pki.cert, &pki.key))
        }
        Some(TlsChoice::MismatchedKey) => docs.push(secret(&pki.cert, &pki.other_key)),
        Some(TlsChoice::Garbage) => docs.push(secret(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "garbage",
        )),
    }
    let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": meta("ing", annotations(&c.ingress_annotations, &ANNOTATIONS)),
        "spec": {"rules": [{"host": c.ingress_host, "http": {"paths": [{"path": c.ingress_path, "pathType": c.ingress_path_type,
            "backend": {"service": {"name": "svc", "port": {"name": "http"}}}}]}}]}});
    if c.ingress_tls.is_some() {
        ingress["spec"]["tls"] = json!([{"hosts": [c.ingress_host], "secretName": "tls"}]);
    }
    docs.push(ingress);
    let mut service = json!({"name": "svc", "port": c.service_port, "strategy": c.strategy});
    if let Some(w) = c.weights.0 {
        service["weight"] = json!(w);
    }
    if let Some((path, host, interval, timeout, unhealthy, healthy)) = &c.health_check {
        service["healthCheck"] = json!({"path": path, "host": host, "intervalSeconds": interval, "timeoutSeconds": timeout,
            "unhealthyThresholdCount": unhealthy, "healthyThresholdCount": healthy});
    }
    if let Some(subject) = &c.subject_name {
        service["validation"] = json!({"caSecret": "tls", "subjectName": subject});
    }
    let mut second = json!({"name": "good", "port": 80});
    if let Some(w) = c.weights.1 {
        second["weight"] = json!(w);
    }
    let mut route = json!({"match": c.route_match, "services": [service, second]});
    if let Some(r) = &c.prefix_rewrite {
        route["prefixRewrite"] = json!(r);
    }
    if let Some(t) = &c.timeout {
        route["timeoutPolicy"] = json!({"request": t});
    }
    if c.retry_count.is_some() || c.per_try_timeout.is_some() {
        route["retryPolicy"] = json!({"count": c.retry_count, "perTryTimeout": c.per_try_timeout});
    }
    let mut vhost = json!({"fqdn": c.fqdn});
    let mut spec =
        json!({"routes": [route, {"match": c.child_match, "delegate": {"name": "child"}}]});
    match c.tls {
        Some(TlsChoice::Passthrough) => {
            vhost["tls"] = json!({"passthrough": true});
            spec["tcpproxy"] = json!({"services": [{"name": "svc", "port": c.service_port}]});
        }
        Some(_) => vhost["tls"] = json!({"secretName": "tls"}),
        None => {}
    }
    spec["virtualhost"] = vhost;
    docs.push(json!({"apiVersion": "contour.heptio.com/v1beta1", "kind": "IngressRoute", "metadata": meta("root", json!({})), "spec": spec}));
    docs.push(json!({"apiVersion": "contour.heptio.com/v1beta1", "kind": "IngressRoute", "metadata": meta("child", json!({})),
        "spec": {"routes": [{"match": c.child_match, "services": [{"name": "svc", "port": c.service_port}], "enableWebsockets": true}]}}));
    docs
}

/// The documents that parse as their kind (a value of the wrong type, such as a port beyond 32 bits,
/// is refused by the API server before isobar could see it; the file source reports it).
fn snapshot(docs: &[Value]) -> Snapshot {
    let mut s = Snapshot::default();
    for doc in docs {
        for o in parse_manifests("case.yaml", &doc.to_string()).unwrap_or_default() {
            s.insert(o);
        }
    }
    s
}

struct World {
    cache: Arc<XdsCache>,
    stats: Arc<XdsStats>,
    envoy: Envoy,
    listeners: ListenerConfig,
}

async fn world(dir: &std::path::Path) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the xDS port");
    let addr: SocketAddr = listener.local_addr().expect("xDS address");
    let cache = Arc::new(XdsCache::new());
    let stats = Arc::new(XdsStats::default());
    let service = AdsService::new(Arc::clone(&cache), Arc::clone(&stats));
    tokio::spawn(async move {
        let limits = XdsServerLimits::default();
        serve(listener, None, &limits, service, std::future::pending()).await
    });
    let listeners = ListenerConfig {
        http_address: "127.0.0.1".into(),
        http_port: isobar_harness::ports::free_port().expect("a free port"),
        https_address: "127.0.0.1".into(),
        https_port: isobar_harness::ports::free_port().expect("a free port"),
    };
    // Envoy becomes live only once it has a first configuration.
    let start = snapshot(&[
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("good", json!({})),
               "spec": {"ports": [{"name": "http", "port": 80}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("canary", json!({})),
               "spec": {"rules": [{"host": "start.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": "good", "port": {"number": 80}}}}]}}]}}),
    ]);
    let (dag, _) = dag::build(&start, &DagOptions::default());
    cache.set(translate::translate(&dag, &start, &listeners).by_type());
    let bootstrap_path = dir.join("bootstrap.json");
    let options = BootstrapOptions {
        xds_address: addr.ip().to_string(),
        xds_port: addr.port(),
        admin_address: "127.0.0.1".into(),
        admin_port: 0,
        tls: None,
        xds_server_name: "isobar".into(),
        node_id: "hostile".into(),
        node_cluster: "isobar".into(),
        resources_dir: None,
        xds_api: XdsApi::Sotw,
    };
    bootstrap::write(&options, &bootstrap_path).expect("writing the bootstrap");
    let version = default_envoy_version();
    let bin = tokio::task::spawn_blocking(move || envoy_binary(&version))
        .await
        .expect("provisioning task")
        .unwrap_or_else(|e| panic!("Envoy is needed for this test: {e}"));
    let envoy = Envoy::start(EnvoyOptions::new(bin, bootstrap_path, dir.join("envoy")))
        .await
        .expect("starting Envoy");
    envoy
        .wait_live(Duration::from_secs(30))
        .await
        .expect("Envoy live");
    World {
        cache,
        stats,
        envoy,
        listeners,
    }
}

/// Pushes one case and waits until Envoy has ACKed every type it subscribes to at the versions now in
/// the cache, or NACKed something.
async fn push(w: &World, docs: &[Value]) -> Result<(), String> {
    let snap = snapshot(docs);
    let (dag, _) = dag::build(&snap, &DagOptions::default());
    w.cache
        .set(translate::translate(&dag, &snap, &w.listeners).by_type());
    let current = w.cache.current();
    wait_for_async(ACK, "Envoy to ACK the case", || async {
        if let Some(n) = w.stats.last_nack() {
            return Ok(Some(Err(format!(
                "Envoy NACKed {}: {}",
                n.type_url, n.message
            ))));
        }
        let streams = w.stats.streams();
        let acked = streams.len() == 1
            && streams.iter().all(|s| {
                !s.types.is_empty()
                    && s.types
                        .iter()
                        .all(|(t, state)| state.acked_version == current.type_version(t))
            });
        Ok(acked.then_some(Ok(())))
    })
    .await
    .map_err(|e| {
        let states: Vec<String> = w
            .stats
            .streams()
            .iter()
            .flat_map(|s| {
                s.types
                    .iter()
                    .map(|(t, st)| {
                        format!(
                            "{t}: acked {:?}, sent {:?}, in cache {:?}",
                            st.acked_version,
                            st.sent_version,
                            current.type_version(t)
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        format!("{e}\n{}", states.join("\n"))
    })?
}

#[test]
fn envoy_accepts_everything_isobar_lets_through() {
    isobar::tls::install_default_provider();
    let cases: u32 = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("a temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let w = runtime.block_on(world(dir.path()));
    let pki = pki();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&case(), |c| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let canary = format!("canary-{n}.example.com");
        let docs = documents(&c, &pki, &canary);
        runtime.block_on(async {
            match push(&w, &docs).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let warming = w
                        .envoy
                        .config_dump()
                        .await
                        .map(|d| {
                            d.to_string()
                                .match_indices("dynamic_warming_clusters")
                                .count()
                        })
                        .unwrap_or_default();
                    let dump = w
                        .envoy
                        .config_dump()
                        .await
                        .map(|d| d.to_string())
                        .unwrap_or_default();
                    let i = dump.find("dynamic_warming_clusters").unwrap_or(0);
                    Err(TestCaseError::fail(format!(
                        "{e}\nwarming sections: {warming}: {}\n{}",
                        &dump[i..(i + 1500).min(dump.len())],
                        w.envoy.log_tail(5)
                    )))
                }
            }
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The last canary reached Envoy: pushes were applied, not just answered.
    let last = format!(
        "canary-{}.example.com",
        counter.load(std::sync::atomic::Ordering::Relaxed) - 1
    );
    let dump = runtime
        .block_on(w.envoy.config_dump())
        .expect("Envoy's config dump");
    assert!(
        dump.to_string().contains(&last),
        "Envoy's configuration lacks {last}"
    );
    assert_eq!(
        isobar::xds::stats::XdsStats::get(&w.stats.nacks),
        0,
        "NACKs: {:?}",
        w.stats.last_nack()
    );
    println!(
        "{} hostile cases pushed to Envoy {}, 0 NACKs",
        counter.load(std::sync::atomic::Ordering::Relaxed),
        default_envoy_version()
    );
}
