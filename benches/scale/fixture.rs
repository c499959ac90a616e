//! The file-source fixture: N Ingresses, each with its own host, Service and Endpoints (one echo
//! backend of a few), 100 to a file as a GitOps directory would have them; then the files the
//! measured changes write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

/// The namespace of every object.
const NS: &str = "scale";
/// Ingresses (with their Service and Endpoints) per bulk file.
const PER_FILE: usize = 100;

/// The host of Ingress `i`.
pub fn host(i: usize) -> String {
    format!("h{i}.scale.test")
}

/// The only path of Ingress `i` after small change `c` ([`Fixture::change`]).
pub fn changed_path(c: usize) -> String {
    format!("/only-{c}")
}

/// Service `s{i}`, its Endpoints (127.0.0.1:`port`) and Ingress `i{i}` routing `path` (Prefix)
/// of its host to it.
fn triple(i: usize, port: u16, path: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: {NS}}}\n\
         spec: {{ports: [{{name: http, port: 80, protocol: TCP}}]}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: {NS}}}\n\
         subsets: [{{addresses: [{{ip: \"127.0.0.1\"}}], ports: [{{name: http, port: {port}, protocol: TCP}}]}}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: {NS}}}\n\
         spec: {{rules: [{{host: \"{host}\", http: {{paths: [{{path: \"{path}\", pathType: Prefix, \
         backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n",
        host = host(i),
    )
}

/// The directory and what its files hold.
pub struct Fixture {
    dir: PathBuf,
    size: usize,
    backends: Vec<u16>,
    /// Ingresses whose path is no longer `/`.
    paths: BTreeMap<usize, String>,
}

impl Fixture {
    /// A fixture of `size` Ingresses in `dir`, their Endpoints spread over the echo backends
    /// listening on 127.0.0.1 at `backends`.
    pub fn new(dir: PathBuf, size: usize, backends: Vec<u16>) -> Fixture {
        Fixture {
            dir,
            size,
            backends,
            paths: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn port(&self, i: usize) -> u16 {
        self.backends[i % self.backends.len()]
    }

    fn bulk_file(&self, chunk: usize) -> String {
        let mut yaml = String::new();
        for i in chunk * PER_FILE..((chunk + 1) * PER_FILE).min(self.size) {
            let path = self.paths.get(&i).map_or("/", String::as_str);
            yaml.push_str(&triple(i, self.port(i), path));
        }
        yaml
    }

    /// Writes every bulk file.
    pub fn write_all(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        for chunk in 0..self.size.div_ceil(PER_FILE) {
            self.write(&format!("bulk-{chunk:04}.yaml"), &self.bulk_file(chunk))?;
        }
        Ok(())
    }

    /// Small change `c`: one Ingress (a different one each time, while there are enough) routes
    /// only [`changed_path`]`(c)` instead of what it routed; its bulk file is rewritten. Returns
    /// the Ingress's index.
    pub fn change(&mut self, c: usize, changes: usize) -> anyhow::Result<usize> {
        let i = (c * self.size / changes.max(1)) % self.size;
        self.paths.insert(i, changed_path(c));
        let chunk = i / PER_FILE;
        self.write(&format!("bulk-{chunk:04}.yaml"), &self.bulk_file(chunk))?;
        Ok(i)
    }

    /// Sample `k`: a new file with one new Ingress, Service and Endpoints (index `size + k`, host
    /// [`host`]`(size + k)`). Returns when the file was renamed into place.
    pub fn add_sample(&self, k: usize) -> anyhow::Result<(usize, Instant)> {
        let i = self.size + k;
        let yaml = triple(i, self.port(i), "/");
        let at = self.write(&format!("sample-{k:03}.yaml"), &yaml)?;
        Ok((i, at))
    }

    /// Writes `name` atomically: a hidden temp file (the file source skips hidden files) renamed
    /// into place. Returns the instant just before the rename, where a measurement starts.
    fn write(&self, name: &str, yaml: &str) -> anyhow::Result<Instant> {
        let (tmp, path) = (self.dir.join(format!(".{name}.tmp")), self.dir.join(name));
        std::fs::write(&tmp, yaml).with_context(|| format!("writing {}", tmp.display()))?;
        let at = Instant::now();
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(at)
    }
}
