//! Rebuild cost: DAG build + translation + cache update for N Ingresses (each with its own Service,
//! Endpoints and host), the work isobar does on every routing change. Writes a Markdown table.
//!
//! Full rebuilds from nothing, and the pipeline's memoised rebuild after one Ingress changed.
//!
//! `cargo bench --bench rebuild` (release build; `-- --quick` for CI's small run). Figures go in
//! BENCHMARKS.md.

use std::time::{Duration, Instant};

use isobar::dag::{self, DagOptions, Memo, StatusMap, Validity};
use isobar::store::{ObjectKey, Snapshot};
use isobar::xds::cache::XdsCache;
use isobar::xds::translate::{self, ListenerConfig, TranslationMemo};

#[path = "common/allocator.rs"]
mod allocator;

#[path = "common/cli.rs"]
mod cli;
#[path = "rebuild/mixed.rs"]
mod mixed;
#[path = "common/pure.rs"]
mod pure;
use pure::median;

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
    pure::snapshot_of(&yaml)
}

/// The snapshot with Ingress `ns0/i0` edited (its Exact path moved), as a store holds it: one new
/// object, every other one shared.
fn with_one_edit(snap: &Snapshot, round: usize) -> Snapshot {
    pure::with_ingress_path(snap, ObjectKey::new("ns0", "i0"), 1, format!("/api{round}"))
}

/// Rebuild cost at N objects (DAG build, translation, cache update), full and memoised (default
/// 1000,10000,50000): a Markdown table.
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    sizes: cli::Sizes,
    /// Only this table.
    #[arg(long, value_enum)]
    workload: Option<Workload>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    Plain,
    Mixed,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let quick = args.sizes.common.quick;
    let sizes = args.sizes.or(&[1_000, 10_000, 50_000], &[100]);
    let workload = args.workload;
    let rounds = |n: usize| {
        if quick {
            3
        } else if n >= 10_000 {
            7
        } else {
            21
        }
    };
    if workload != Some(Workload::Mixed) {
        println!("Plain: N Ingresses, each with its own Service, Endpoints and host.\n");
        header("Ingresses");
        for &n in &sizes {
            row(n, &snapshot(n), with_one_edit, rounds(n));
        }
    }
    if workload != Some(Workload::Plain) {
        println!("\nMixed (benches/rebuild/mixed.rs): N units of a Service with an EndpointSlice and one of a TLS Ingress, a plain Ingress, a root IngressRoute delegating to a child, an Ingress with annotations.\n");
        header("units");
        let mut changes = Vec::new();
        for &n in &sizes {
            let setup = Instant::now();
            let snap = mixed::snapshot(n);
            eprintln!(
                "mixed {n}: objects generated and parsed in {:.1?}",
                setup.elapsed()
            );
            row(n, &snap, mixed::with_one_edit, rounds(n));
            // Three times the rounds: a change is cheap, and the median then is of a process past
            // its first few changes (which page-fault fresh memory for the largest resources).
            for (what, edit) in mixed::changes() {
                changes.push(change_row(n, what, &snap, edit, 3 * rounds(n)));
            }
        }
        println!("\nOne change of each kind on the mixed workload, the pipeline's memoised way (medians):\n");
        println!("| units | change | DAG | translate | cache update | total |");
        println!("|---:|---|---:|---:|---:|---:|");
        for line in changes {
            println!("{line}");
        }
    }
}

/// One row of the one-change table: the memoised rebuild after each of `rounds` changes made by
/// `edit`; every object valid after each.
fn change_row(n: usize, what: &str, snap: &Snapshot, edit: mixed::Edit, rounds: usize) -> String {
    let (b, t, p) = memoised_changes(snap, edit, rounds, |_, _, statuses, changed| {
        assert!(changed, "{what}: the configuration changed");
        assert!(
            statuses.values().all(|s| s.validity == Validity::Valid),
            "{what}: every object valid"
        );
    });
    format!(
        "| {n} | {what} | {b:.2?} | {t:.2?} | {p:.2?} | {:.2?} |",
        b + t + p
    )
}

/// The pipeline's way: the memoised rebuild after each of `rounds` changes made by `edit`, memos
/// warm from the change before. Returns the medians of the DAG build, the translation and the cache
/// update; `check` sees each round's memos, statuses and whether the cache changed.
fn memoised_changes(
    snap: &Snapshot,
    edit: mixed::Edit,
    rounds: usize,
    check: impl Fn(&Memo, &TranslationMemo, &StatusMap, bool),
) -> (Duration, Duration, Duration) {
    let (config, options) = (ListenerConfig::default(), DagOptions::default());
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
    let (mut b, mut t, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let next = edit(snap, round);
        let t0 = Instant::now();
        let (dag, statuses, _) = dag::build_memoised(&next, &options, &mut memo);
        let t1 = Instant::now();
        let diff =
            translate::translate_changes(&dag, &next, &config, &mut translation, &cache.current());
        let t2 = Instant::now();
        let changed = cache.apply(diff);
        let t3 = Instant::now();
        check(&memo, &translation, &statuses, changed);
        b.push(t1 - t0);
        t.push(t2 - t1);
        p.push(t3 - t2);
    }
    (median(b), median(t), median(p))
}

fn header(what: &str) {
    println!("| {what} | routes | full: DAG build | translate | cache update | full total | first build, memoised path | one Ingress changed: DAG | translate | cache update | total |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

/// One table row: the full rebuild, the memoised first build and the memoised rebuild after one
/// edit (`edit(snap, round)`), each the median of `rounds`.
fn row(n: usize, snap: &Snapshot, edit: mixed::Edit, rounds: usize) {
    let config = ListenerConfig::default();
    let objects = snap.ingresses.len() + snap.ingress_routes.len();
    let (mut build, mut translate_t, mut publish) = (Vec::new(), Vec::new(), Vec::new());
    let mut routes = 0;
    for round in 0..rounds {
        let cache = XdsCache::new();
        let t0 = Instant::now();
        let (dag, statuses) = dag::build(snap, &DagOptions::default());
        let t1 = Instant::now();
        let resources = translate::translate(&dag, snap, &config);
        let t2 = Instant::now();
        let changed = cache.set(resources.by_type());
        let t3 = Instant::now();
        assert!(changed && statuses.len() == objects);
        assert!(
            statuses.iter().all(|s| s.validity == Validity::Valid),
            "every object of the workload is valid: {:?}",
            statuses.iter().find(|s| s.validity != Validity::Valid)
        );
        routes = dag.virtual_hosts.values().map(|v| v.routes.len()).sum();
        if round > 0 {
            build.push(t1 - t0);
            translate_t.push(t2 - t1);
            publish.push(t3 - t2);
        }
    }
    let (b, t, p) = (median(build), median(translate_t), median(publish));

    // The pipeline's first build (what isobar does at start): the memoised path from empty memos.
    let options = DagOptions::default();
    let mut first = Vec::new();
    for _ in 0..rounds {
        let cache = XdsCache::new();
        let (mut memo, mut translation) = (Memo::default(), TranslationMemo::default());
        let t0 = Instant::now();
        let (dag, _, _) = dag::build_memoised(snap, &options, &mut memo);
        let diff =
            translate::translate_changes(&dag, snap, &config, &mut translation, &cache.current());
        assert!(cache.apply(diff));
        first.push(t0.elapsed());
    }
    let first = median(first);

    // The pipeline's way: memos warm from the previous build, one Ingress edited per round.
    let (ib, it, ip) = memoised_changes(snap, edit, rounds, |memo, translation, _, changed| {
        assert!(changed && memo.recomputed == 1 && translation.recomputed == 1);
    });
    println!(
        "| {n} | {routes} | {b:.2?} | {t:.2?} | {p:.2?} | {:.2?} | {first:.2?} | {ib:.2?} | {it:.2?} | {ip:.2?} | {:.2?} |",
        b + t + p,
        ib + it + ip
    );
}
