//! Gateway API rebuild cost: N HTTPRoutes (each with its own Service, Endpoints and host, two rules)
//! on one Gateway listener, beside N Ingresses. A full rebuild from nothing (DAG build, translation,
//! cache update), and the pipeline's memoised rebuild after one HTTPRoute changed and after one
//! Ingress changed; and the status writer's pass over the routes once their statuses are stored.
//! Writes Markdown tables.
//!
//! An HTTPRoute edit computes that route's part of the Gateway API program again and re-orders the
//! hosts it is on; the listener's RouteConfiguration is put together from its hosts' encodings, of
//! which only the changed host's is encoded again. An Ingress edit leaves the program as it was.
//!
//! `cargo bench --bench gateway` (release build; `-- --quick` for CI's small run, `--sizes 100,1000`).
//! Figures go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use isobar::dag::gateway::status::{
    gateway_api_status, GatewayOptions, DEFAULT_GATEWAY_CONTROLLER_NAME,
};
use isobar::dag::{self, DagOptions, Memo};
use isobar::status::gateway::{gateway_writes, GatewayStatusWrite, SettledRoutes};
use isobar::store::{ObjectKey, Snapshot};
use isobar::xds::cache::XdsCache;
use isobar::xds::translate::{self, ListenerConfig, TranslationMemo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff;

#[path = "common/allocator.rs"]
mod allocator;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/pure.rs"]
mod pure;
use pure::median;

fn snapshot(n: usize) -> Snapshot {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: isobar}\nspec: {controllerName: isobar.dev/gateway-controller}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\n\
         spec: {gatewayClassName: isobar, listeners: [{name: web, protocol: HTTP, port: 8081, allowedRoutes: {namespaces: {from: All}}}]}\n---\n",
    );
    for i in 0..n {
        let (ns, a, b) = (i % 50, (i / 250) % 250, i % 250);
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: ns{ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
             apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: ns{ns}}}\nsubsets: [{{addresses: [{{ip: 10.0.{a}.{b}}}], ports: [{{name: http, port: 8080}}]}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}, namespace: ns{ns}}}\n\
             spec: {{parentRefs: [{{name: gw, namespace: infra}}], hostnames: [r{i}.example.com], rules: [\
             {{backendRefs: [{{name: s{i}, port: 80}}]}}, \
             {{matches: [{{path: {{type: Exact, value: /api}}}}], backendRefs: [{{name: s{i}, port: 80}}]}}]}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: ns{ns}}}\nspec: {{rules: [{{host: h{i}.example.com, http: {{paths: [\
             {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
        ));
    }
    pure::snapshot_of(&yaml)
}

/// The snapshot with HTTPRoute `ns0/r0`'s Exact path moved, as a store holds it.
fn with_route_edit(snap: &Snapshot, round: usize) -> Snapshot {
    let mut next = snap.clone();
    let key = ObjectKey::new("ns0", "r0");
    let mut route = (*next.http_routes[&key]).clone();
    let mut spec = serde_json::to_value(&route.spec).expect("a route spec");
    spec["rules"][1]["matches"][0]["path"]["value"] = format!("/api{round}").into();
    route.spec = serde_json::from_value(spec).expect("still a route spec");
    next.http_routes.insert(key, Arc::new(route));
    next
}

/// The snapshot with Ingress `ns0/i0`'s path moved.
fn with_ingress_edit(snap: &Snapshot, round: usize) -> Snapshot {
    pure::with_ingress_path(snap, ObjectKey::new("ns0", "i0"), 0, format!("/v{round}"))
}

/// Memoised rebuilds of `edit(snap, round)`, one per round, from memos warm with `snap`: the
/// median DAG build and translation + cache update.
fn memoised(
    snap: &Snapshot,
    rounds: usize,
    edit: fn(&Snapshot, usize) -> Snapshot,
) -> (Duration, Duration) {
    let (options, config) = (DagOptions::default(), ListenerConfig::default());
    let cache = XdsCache::new();
    let (mut memo, mut translation) = (Memo::default(), TranslationMemo::default());
    let (dag, _, _) = dag::build_memoised(snap, &options, &mut memo);
    cache.apply(translate::translate_changes(
        &dag,
        snap,
        &config,
        &mut translation,
        &cache.current(),
    ));
    let (mut build, mut publish) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let next = edit(snap, round);
        let t0 = Instant::now();
        let (dag, _, _) = dag::build_memoised(&next, &options, &mut memo);
        let t1 = Instant::now();
        let diff =
            translate::translate_changes(&dag, &next, &config, &mut translation, &cache.current());
        let changed = cache.apply(diff);
        let t2 = Instant::now();
        assert!(
            changed,
            "round {round}: the edit changed nothing Envoy is sent"
        );
        build.push(t1 - t0);
        publish.push(t2 - t1);
    }
    (median(build), median(publish))
}

/// The status writer's pass over `snap`'s routes once their stored statuses say all isobar wants
/// (the steady state): looking at every route (what each pass did before routes were remembered as
/// settled), and with the routes settled by an earlier pass. Medians.
fn status_pass(snap: &Snapshot, rounds: usize) -> (Duration, Duration) {
    let options = GatewayOptions::default();
    let status = gateway_api_status(snap, &options);
    let now = Time(jiff::Timestamp::now());
    let controller = DEFAULT_GATEWAY_CONTROLLER_NAME;
    let mut stored = snap.clone();
    for w in gateway_writes(
        snap,
        &status,
        controller,
        &now,
        &mut SettledRoutes::default(),
    ) {
        if let GatewayStatusWrite::HttpRoute { object, status } = w {
            let mut route = (*stored.http_routes[&object]).clone();
            route.status = Some(serde_json::from_value(status).expect("a route status"));
            stored.http_routes.insert(object, Arc::new(route));
        }
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut settled = SettledRoutes::default();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let due = gateway_writes(
            &stored,
            &status,
            controller,
            &now,
            &mut SettledRoutes::default(),
        );
        let t1 = Instant::now();
        gateway_writes(&stored, &status, controller, &now, &mut settled);
        let t2 = Instant::now();
        assert!(
            due.iter()
                .all(|w| !matches!(w, GatewayStatusWrite::HttpRoute { .. })),
            "stored route statuses need no write"
        );
        cold.push(t1 - t0);
        warm.push(t2 - t1);
    }
    (median(cold), median(warm))
}

fn main() {
    let sizes = cli::sizes_only(
        "The Gateway API path's cost at N HTTPRoutes (and as many Ingresses; default 100,1000,5000): a Markdown table.",
    );
    let quick = sizes.common.quick;
    let sizes = sizes.or(&[100, 1_000, 5_000], &[50]);
    let config = ListenerConfig::default();
    println!("| HTTPRoutes (+ as many Ingresses) | full: DAG build | translate + cache | one HTTPRoute changed: DAG | translate + cache | one Ingress changed: DAG | translate + cache |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let snap = snapshot(n);
        let rounds = if quick { 3 } else { 11 };
        let (mut build, mut publish) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let cache = XdsCache::new();
            let t0 = Instant::now();
            let (dag, _) = dag::build(&snap, &DagOptions::default());
            let t1 = Instant::now();
            let changed = cache.set(translate::translate(&dag, &snap, &config).by_type());
            let t2 = Instant::now();
            let hosts: usize = dag.gateway_listeners.values().map(|l| l.hosts.len()).sum();
            assert!(
                changed && hosts == n,
                "{hosts} Gateway hosts for {n} routes"
            );
            build.push(t1 - t0);
            publish.push(t2 - t1);
        }
        let (b, p) = (median(build), median(publish));
        let (rb, rp) = memoised(&snap, rounds, with_route_edit);
        let (ib, ip) = memoised(&snap, rounds, with_ingress_edit);
        println!("| {n} | {b:.2?} | {p:.2?} | {rb:.2?} | {rp:.2?} | {ib:.2?} | {ip:.2?} |");
    }
    println!();
    println!("| HTTPRoutes, statuses stored | status pass, every route looked at | status pass, settled routes skipped |");
    println!("|---:|---:|---:|");
    for &n in &sizes {
        let (cold, warm) = status_pass(&snapshot(n), if quick { 3 } else { 11 });
        println!("| {n} | {cold:.2?} | {warm:.2?} |");
    }
}
