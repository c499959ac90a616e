//! Rebuild cost: DAG build + translation + cache update for N Ingresses (each with its own Service,
//! Endpoints and host), the work isobar does on every routing change. Writes a Markdown table.
//!
//! `cargo bench --bench rebuild` (release build). Figures go in BENCHMARKS.md.

use std::time::{Duration, Instant};

use isobar::dag::{self, DagOptions};
use isobar::source::file::parse_manifests;
use isobar::store::Snapshot;
use isobar::xds::cache::XdsCache;
use isobar::xds::translate::{self, ListenerConfig};

fn snapshot(n: usize) -> Snapshot {
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: ns{}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
             apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: ns{}}}\nsubsets: [{{addresses: [{{ip: 10.0.{}.{}}}], ports: [{{name: http, port: 8080}}]}}]\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: ns{}}}\nspec: {{rules: [{{host: h{i}.example.com, http: {{paths: [\
             {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}, \
             {{path: /api, pathType: Exact, backend: {{service: {{name: s{i}, port: {{name: http}}}}}}}}]}}}}]}}\n---\n",
            i % 50,
            i % 50,
            (i / 250) % 250,
            i % 250,
            i % 50
        ));
    }
    let mut s = Snapshot::default();
    for o in parse_manifests("bench.yaml", &yaml).expect("generated YAML parses") {
        s.insert(o);
    }
    s
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let config = ListenerConfig::default();
    println!("| Ingresses | routes | DAG build | translate | cache update | total per rebuild | per route |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [100usize, 1_000, 4_000, 10_000] {
        let snap = snapshot(n);
        let rounds = if n >= 4_000 { 7 } else { 21 };
        let (mut build, mut translate_t, mut publish) = (Vec::new(), Vec::new(), Vec::new());
        let mut routes = 0;
        for round in 0..rounds {
            let cache = XdsCache::new();
            let t0 = Instant::now();
            let (dag, statuses) = dag::build(&snap, &DagOptions::default());
            let t1 = Instant::now();
            let resources = translate::translate(&dag, &snap, &config);
            let t2 = Instant::now();
            let changed = cache.set(resources.by_type());
            let t3 = Instant::now();
            assert!(changed && statuses.len() == n);
            routes = dag.virtual_hosts.values().map(|v| v.routes.len()).sum();
            if round > 0 {
                build.push(t1 - t0);
                translate_t.push(t2 - t1);
                publish.push(t3 - t2);
            }
        }
        let (b, t, p) = (median(build), median(translate_t), median(publish));
        let total = b + t + p;
        println!(
            "| {n} | {routes} | {b:.2?} | {t:.2?} | {p:.2?} | {total:.2?} | {:.2?} |",
            total / routes as u32
        );
    }
}
