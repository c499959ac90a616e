//! Memory held by each stage of the pipeline, measured by counting the bytes the allocator has
//! handed out and not taken back (not RSS, which also counts what the allocator keeps for reuse):
//! the manifest directory and its snapshot, the incremental DAG (memo, DAG, statuses), the
//! translation memo with the xDS cache, the isolation fingerprints; and, for comparison, what a full
//! build's DAG and statuses hold. N Ingresses, each with its Service and Endpoints, 100 to a file, as
//! `benches/scale.rs` writes them.
//!
//! `cargo bench --bench memory [-- --sizes 1000,10000]`; `--quick` runs a tiny size so CI keeps it
//! working. Figures go in BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use isobar::dag::{self, DagOptions};
use isobar::source::manifest_dir::ManifestDir;
use isobar::xds::cache::XdsCache;
use isobar::xds::translate::{self, ListenerConfig, TranslationMemo};

#[path = "common/cli.rs"]
mod cli;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

/// Runs `f`, returning what it returned and the MiB it left allocated.
fn held<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let before = live_mib();
    let r = f();
    (r, live_mib() - before)
}

fn triple(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: scale}}\n\
         spec: {{ports: [{{name: http, port: 80, protocol: TCP}}]}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: scale}}\n\
         subsets: [{{addresses: [{{ip: \"127.0.0.1\"}}], ports: [{{name: http, port: 8080, protocol: TCP}}]}}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: scale}}\n\
         spec: {{rules: [{{host: \"h{i}.scale.test\", http: {{paths: [{{path: \"/\", pathType: Prefix, \
         backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
    )
}

fn row(size: usize) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for chunk in 0..size.div_ceil(100) {
        let yaml: String = (chunk * 100..((chunk + 1) * 100).min(size))
            .map(triple)
            .collect();
        std::fs::write(dir.path().join(format!("bulk-{chunk:04}.yaml")), yaml)
            .expect("writing the manifests");
    }
    let options = DagOptions::default();
    let ((manifests, snapshot), load) = held(|| {
        let mut manifests = ManifestDir::new(dir.path());
        let snapshot = manifests.load().expect("the manifests load").snapshot;
        (manifests, snapshot)
    });
    let ((memo, dag, statuses), incremental) = held(|| {
        let mut memo = dag::Memo::default();
        let (dag, statuses, _) = dag::build_memoised(&snapshot, &options, &mut memo);
        (memo, dag, statuses)
    });
    let ((translation, cache), translated) = held(|| {
        let mut translation = TranslationMemo::default();
        let cache = XdsCache::new();
        let config = ListenerConfig::default();
        let diff = translate::translate_changes(
            &dag,
            &snapshot,
            &config,
            &mut translation,
            &cache.current(),
        );
        cache.apply(diff);
        (translation, cache)
    });
    let (fingerprints, fingerprinted) = held(|| {
        let mut memo = isobar::isolation::FingerprintMemo::default();
        let objects = memo.objects_of(&snapshot);
        (memo, objects)
    });
    let (full, full_held) = held(|| dag::build(&snapshot, &options));
    let total = load + incremental + translated + fingerprinted;
    drop((
        manifests,
        memo,
        statuses,
        translation,
        cache,
        fingerprints,
        full,
    ));
    format!(
        "| {size} | {load:.1} | {incremental:.1} | {translated:.1} | {fingerprinted:.1} | {total:.1} | {full_held:.1} |"
    )
}

fn main() {
    let sizes = cli::sizes_only(
        "Bytes held by each stage of the pipeline at N Ingresses (a counting allocator; default 1000,10000): a Markdown table.",
    );
    let sizes = sizes.or(&[1_000, 10_000], &[100]);
    println!(
        "| Ingresses (+ Services + Endpoints) | manifests + snapshot MiB | incremental DAG (memo, DAG, statuses) MiB | translation memo + xDS cache MiB | fingerprints MiB | total MiB | full build's DAG + statuses MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        println!("{}", row(size));
    }
}
