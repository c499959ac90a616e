//! The file source's load of a manifest directory (`isobar serve --manifests`): N units of a Service,
//! its Endpoints and an Ingress, all in one file or 100 units to a file. The first load reads and
//! parses everything; a load after one unit's Ingress was edited (its file rewritten) reads what
//! changed. Writes a Markdown table.
//!
//! `cargo bench --bench manifests` (release build; `-- --quick` for CI's small run). Figures go in
//! BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use isobar::source::manifest_dir::ManifestDir;
use isobar::store::ObjectKey;

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/cli.rs"]
mod cli;
#[path = "common/pure.rs"]
mod pure;
use pure::median;

/// Units to a file in the many-files layout (as `benches/scale` writes its directory).
const PER_FILE: usize = 100;

/// Unit `i`: Service and Endpoints `s{i}`, and Ingress `i{i}` routing `path` of its own host to
/// them.
fn unit(i: usize, path: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: ns{ns}}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: ns{ns}}}\n\
         subsets: [{{addresses: [{{ip: 10.0.{}.{}}}], ports: [{{name: http, port: 8080}}]}}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: ns{ns}}}\n\
         spec: {{rules: [{{host: h{i}.example.com, http: {{paths: [{{path: \"{path}\", pathType: Prefix, \
         backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n",
        (i / 250) % 250,
        i % 250,
        ns = i % 50,
    )
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    OneFile,
    ManyFiles,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneFile => "one file",
            Layout::ManyFiles => "100 units a file",
        }
    }

    fn units_per_file(self, n: usize) -> usize {
        match self {
            Layout::OneFile => n,
            Layout::ManyFiles => PER_FILE,
        }
    }
}

/// Writes the file holding unit `edited`'s (or the first) chunk of units, unit `edited` routing
/// `path`; every other unit routes `/`.
fn write_chunk(dir: &Path, n: usize, layout: Layout, chunk: usize, edited: Option<(usize, &str)>) {
    let per_file = layout.units_per_file(n);
    let mut yaml = String::new();
    for i in chunk * per_file..((chunk + 1) * per_file).min(n) {
        let path = edited.filter(|(e, _)| *e == i).map_or("/", |(_, p)| p);
        yaml.push_str(&unit(i, path));
    }
    std::fs::write(dir.join(format!("m{chunk:04}.yaml")), yaml).expect("writing a manifest");
}

fn main() {
    let sizes = cli::sizes_only(
        "The file source's cost at N units (a Service, its Endpoints and an Ingress each; default 1000,10000,50000): the first load, a load after one Ingress was edited, a load with nothing changed. A Markdown table.",
    );
    let quick = sizes.common.quick;
    let sizes = sizes.or(&[1_000, 10_000, 50_000], &[300]);
    let rounds = if quick { 3 } else { 9 };
    println!("| units (objects) | layout | first load | one Ingress edited | nothing changed |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        for layout in [Layout::OneFile, Layout::ManyFiles] {
            let (first, edited, unchanged) = measure(n, layout, rounds);
            println!(
                "| {n} ({}) | {} | {first:.2?} | {edited:.2?} | {unchanged:.2?} |",
                3 * n,
                layout.name()
            );
        }
    }
}

/// Medians of `rounds`: a first load (a new `ManifestDir`), a load after one edit, and a load with
/// nothing changed. A load without a watcher reads every file; a file whose text is unchanged is not
/// parsed again.
fn measure(n: usize, layout: Layout, rounds: usize) -> (Duration, Duration, Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let chunks = n.div_ceil(layout.units_per_file(n));
    for chunk in 0..chunks {
        write_chunk(dir.path(), n, layout, chunk, None);
    }
    let mut first = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let loaded = ManifestDir::new(dir.path())
            .load()
            .expect("the directory loads");
        first.push(t0.elapsed());
        assert!(loaded.errors.is_empty() && loaded.snapshot.ingresses.len() == n);
    }

    let mut manifests = ManifestDir::new(dir.path());
    manifests.load().expect("the directory loads");
    let (mut edited, mut unchanged) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // A different unit each round, spread over the files.
        let i = (round * 7919) % n;
        let path = format!("/edited-{round}");
        let chunk = i / layout.units_per_file(n);
        write_chunk(dir.path(), n, layout, chunk, Some((i, &path)));
        let t0 = Instant::now();
        let loaded = manifests.load().expect("the directory loads");
        edited.push(t0.elapsed());
        let key = ObjectKey::new(format!("ns{}", i % 50), format!("i{i}"));
        let ingress = &loaded.snapshot.ingresses[&key];
        let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
        let routed = rules
            .and_then(|r| r[0].http.as_ref())
            .map(|h| &h.paths[0].path);
        assert_eq!(routed, Some(&Some(path)), "the edit is loaded");

        let t0 = Instant::now();
        let loaded = manifests.load().expect("the directory loads");
        unchanged.push(t0.elapsed());
        assert!(loaded.errors.is_empty());
        // Back to `/` for the next round's edit.
        write_chunk(dir.path(), n, layout, chunk, None);
        manifests.load().expect("the directory loads");
    }
    (median(first), median(edited), median(unchanged))
}
