//! The DAG build on adversarial IngressRoute delegation shapes: the ones that made the old recursive
//! walk exponential (two routes per level delegating `/` to the next) and the long and wide ones.
//! Writes a Markdown table: objects, time per build, and per object; then the memoised build's
//! first build and one edit of the last IngressRoute (the one every walk reaches).
//!
//! `cargo bench --bench delegation` (release build). Figures go in BENCHMARKS.md.

use std::time::{Duration, Instant};

use isobar::dag::{self, DagLimits, DagOptions};
use isobar::source::file::parse_manifests;
use isobar::store::Snapshot;

#[path = "common/allocator.rs"]
mod allocator;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/pure.rs"]
mod pure;
use pure::median;

/// Delegation chains and fan-ins at thousands of IngressRoutes: one edit's cost, a Markdown table.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
}

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {ports: [{port: 80}]}\n---\n";

fn ir(name: &str, fqdn: Option<&str>, routes: &[String]) -> String {
    let vhost = fqdn
        .map(|f| format!("virtualhost: {{fqdn: {f}}}, "))
        .unwrap_or_default();
    format!(
        "apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: {name}, namespace: t}}\nspec: {{{vhost}routes: [{}]}}\n---\n",
        routes.join(", ")
    )
}

fn delegate(to: &str) -> String {
    format!("{{match: /, delegate: {{name: {to}}}}}")
}

const SERVE: &str = "{match: /, services: [{name: web, port: 80}]}";
/// What the last IngressRoute serves after the edit.
const SERVE_EDITED: &str = "{match: /v2, services: [{name: web, port: 80}]}";

/// `n` IngressRoutes, each with `k` routes delegating `/` to the next.
fn chain(n: usize, k: usize) -> String {
    let mut yaml = SERVICE.to_string();
    for i in 0..n {
        let routes: Vec<String> = if i + 1 == n {
            vec![SERVE.to_string()]
        } else {
            (0..k).map(|_| delegate(&format!("c{}", i + 1))).collect()
        };
        yaml.push_str(&ir(
            &format!("c{i}"),
            (i == 0).then_some("a.example.com"),
            &routes,
        ));
    }
    yaml
}

/// A root delegating to `n` parents that all delegate to one child.
fn fan_in(n: usize) -> String {
    let mut yaml = SERVICE.to_string();
    let routes: Vec<String> = (0..n).map(|i| delegate(&format!("p{i}"))).collect();
    yaml.push_str(&ir("root", Some("a.example.com"), &routes));
    for i in 0..n {
        yaml.push_str(&ir(&format!("p{i}"), None, &[delegate("child")]));
    }
    yaml.push_str(&ir("child", None, &[SERVE.to_string()]));
    yaml
}

fn main() {
    // `--quick` (CI): the first shape, 3 rounds, so the bench keeps building and running.
    let quick = <Args as clap::Parser>::parse().common.quick;
    let unbounded = DagOptions {
        limits: DagLimits {
            max_delegation_depth: usize::MAX,
            max_routes_per_virtual_host: usize::MAX,
        },
        ..DagOptions::default()
    };
    println!("| shape | IngressRoutes | work units | DAG build (median) | per IngressRoute | memoised: first build | memoised: last IngressRoute edited |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let shapes: Vec<(String, String)> = vec![
        (
            "fan-out chain, 31 levels x 2 routes (2^30 walks before)".into(),
            chain(31, 2),
        ),
        (
            "fan-out chain, 1,000 levels x 4 routes".into(),
            chain(1_000, 4),
        ),
        ("linear chain of 1,000".into(), chain(1_000, 1)),
        ("linear chain of 5,000".into(), chain(5_000, 1)),
        ("linear chain of 10,000".into(), chain(10_000, 1)),
        ("wide fan-in, 1,000 parents".into(), fan_in(1_000)),
        ("wide fan-in, 10,000 parents".into(), fan_in(10_000)),
    ];
    let (count, rounds) = if quick { (1, 3) } else { (shapes.len(), 11) };
    for (name, yaml) in shapes.into_iter().take(count) {
        let snap = pure::snapshot_of(&yaml);
        let objects = snap.ingress_routes.len();
        let mut samples = Vec::new();
        let mut work = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let (_, statuses, w) = dag::build_counting_work(&snap, &unbounded);
            samples.push(t.elapsed());
            work = w;
            assert_eq!(statuses.len(), objects);
        }
        let m = median(samples);
        let at = yaml.rfind(SERVE).expect("every shape serves at its end");
        // The edited IngressRoute is the last object; every other one stays the object it was, as
        // in isobar's store, where an unchanged object is the same shared value from one snapshot
        // to the next.
        let edited_yaml = format!("{}{SERVE_EDITED}{}", &yaml[..at], &yaml[at + SERVE.len()..]);
        let mut edited = snap.clone();
        let last = parse_manifests("bench.yaml", &edited_yaml)
            .expect("generated YAML parses")
            .pop()
            .expect("every shape ends with the IngressRoute it edits");
        edited.insert(last);
        let (first, edit) = memoised(&snap, &edited, &unbounded, rounds);
        println!(
            "| {name} | {objects} | {work} | {:.2} ms | {:.2} µs | {:.2} ms | {:.2} ms |",
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e6 / objects as f64,
            first.as_secs_f64() * 1e3,
            edit.as_secs_f64() * 1e3,
        );
    }
}

/// The memoised build's first build of `base` (median over `rounds` fresh memos), and one build
/// after the edit that gives `edited` (median over `rounds` edits back and forth).
fn memoised(
    base: &Snapshot,
    edited: &Snapshot,
    options: &DagOptions,
    rounds: usize,
) -> (Duration, Duration) {
    let objects = base.ingress_routes.len();
    let mut firsts = Vec::new();
    let mut memo = dag::Memo::default();
    for _ in 0..rounds {
        memo = dag::Memo::default();
        let t = Instant::now();
        let (_, statuses, _) = dag::build_memoised(base, options, &mut memo);
        firsts.push(t.elapsed());
        assert_eq!(statuses.len(), objects);
    }
    let mut edits = Vec::new();
    for round in 0..rounds {
        let next = if round % 2 == 0 { edited } else { base };
        let t = Instant::now();
        let (_, statuses, _) = dag::build_memoised(next, options, &mut memo);
        edits.push(t.elapsed());
        assert_eq!(statuses.len(), objects);
        assert!(memo.recomputed > 0, "the edit was walked again");
    }
    (median(firsts), median(edits))
}
