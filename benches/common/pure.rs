//! What the pure benches (no servers) share: snapshots made from generated manifests, read by the
//! file source's parser as `isobar serve --manifests` reads them; edits made as a store makes them
//! (one new object, every other one shared); and the median of timed rounds.

#![allow(dead_code)] // each bench binary includes this file and uses part of it

use std::sync::Arc;
use std::time::Duration;

use isobar::source::file::parse_manifests;
use isobar::store::{ObjectKey, Snapshot};

/// The objects of the manifests `yaml`.
pub fn snapshot_of(yaml: &str) -> Snapshot {
    with_objects(&Snapshot::default(), yaml)
}

/// `base` with the objects of the manifests `yaml` added, or replacing those of the same kind,
/// namespace and name.
pub fn with_objects(base: &Snapshot, yaml: &str) -> Snapshot {
    let mut next = base.clone();
    for o in parse_manifests("bench.yaml", yaml).expect("generated YAML parses") {
        next.insert(o);
    }
    next
}

/// `snap` with path `index` of Ingress `key`'s first rule set to `path`.
pub fn with_ingress_path(snap: &Snapshot, key: ObjectKey, index: usize, path: String) -> Snapshot {
    let mut next = snap.clone();
    let mut ingress = (*next.ingresses[&key]).clone();
    let paths = ingress
        .spec
        .as_mut()
        .and_then(|s| s.rules.as_mut())
        .and_then(|r| r[0].http.as_mut())
        .map(|h| &mut h.paths)
        .expect("the bench's Ingress has a rule with paths");
    paths[index].path = Some(path);
    next.ingresses.insert(key, Arc::new(ingress));
    next
}

/// The median of timed rounds (the upper one of an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
