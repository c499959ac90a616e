//! What the DAG builder says about each object.

use crate::store::ObjectKey;

/// The kinds of object that get a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Ingress,
    IngressRoute,
    /// Only where Envoy's NACKs are traced to an object; its status is its Gateway API status.
    HttpRoute,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Ingress => "Ingress",
            ObjectKind::IngressRoute => "IngressRoute",
            ObjectKind::HttpRoute => "HTTPRoute",
        })
    }
}

/// Contour's three words for an object's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Validity {
    Valid,
    Invalid,
    Orphaned,
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Orphaned => "orphaned",
        })
    }
}

/// Every object's status by kind and key, in a persistent map: the incremental build changes the entries
/// of the objects it touched, and two builds' maps diff by what differs.
pub type StatusMap = imbl::OrdMap<(ObjectKind, ObjectKey), ObjectStatus>;

/// `statuses` keyed as a [`StatusMap`] keys them.
pub fn status_map(statuses: impl IntoIterator<Item = ObjectStatus>) -> StatusMap {
    statuses
        .into_iter()
        .map(|s| ((s.kind, s.object.clone()), s))
        .collect()
}

/// One object's status, with a description a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectStatus {
    pub kind: ObjectKind,
    pub object: ObjectKey,
    pub validity: Validity,
    pub description: String,
}

impl std::fmt::Display for ObjectStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.kind, self.object, self.validity, self.description
        )
    }
}
