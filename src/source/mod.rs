//! Sources turn the outside world into a [`Snapshot`](crate::store::Snapshot): a directory of YAML
//! ([`file`]) or a Kubernetes API server ([`kube`]). After the source there is one code path.

mod documents;
pub mod file;
pub mod kube;
pub mod manifest_dir;

/// What kind of change a source saw, which decides how much is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only status (or nothing isobar reads) changed: no rebuild, but the status writer may care.
    StatusOnly,
    /// Only endpoints changed: only EDS is recomputed.
    Endpoints,
    /// Something routing depends on changed: the DAG is rebuilt.
    Routing,
}
