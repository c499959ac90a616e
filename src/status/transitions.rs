//! Which objects' statuses changed between two builds, so the log gets one line per transition instead
//! of one per object per rebuild (3,000 lines a rebuild at 3,000 IngressRoutes).

use crate::dag::{ObjectStatus, StatusMap};

/// The statuses in `current` that are new or differ from `previous`, in key order. Visits only what
/// differs: two builds' maps share the entries of objects the later build did not touch.
pub fn changed<'a>(previous: &StatusMap, current: &'a StatusMap) -> Vec<&'a ObjectStatus> {
    use imbl::ordmap::DiffItem;
    previous
        .diff(current)
        .filter_map(|d| match d {
            DiffItem::Add(_, s) | DiffItem::Update { new: (_, s), .. } => Some(s),
            DiffItem::Remove(..) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{status_map, ObjectKind, Validity};
    use crate::store::ObjectKey;

    fn status(name: &str, validity: Validity, description: &str) -> ObjectStatus {
        ObjectStatus {
            kind: ObjectKind::IngressRoute,
            object: ObjectKey::new("default", name),
            validity,
            description: description.into(),
        }
    }

    #[test]
    fn only_new_and_changed_statuses_are_transitions() {
        let previous = vec![
            status("same", Validity::Valid, "valid IngressRoute"),
            status("broken", Validity::Valid, "valid IngressRoute"),
            status("reworded", Validity::Invalid, "fqdn \"a\" is used twice"),
            status("gone", Validity::Valid, "valid IngressRoute"),
        ];
        let current = vec![
            status("same", Validity::Valid, "valid IngressRoute"),
            status(
                "broken",
                Validity::Invalid,
                "route creates a delegation cycle",
            ),
            status(
                "reworded",
                Validity::Invalid,
                "fqdn \"a\" is used in 2 IngressRoutes",
            ),
            status("new", Validity::Orphaned, "not part of a delegation chain"),
        ];
        let (previous, current) = (status_map(previous), status_map(current));
        let names: Vec<&str> = changed(&previous, &current)
            .iter()
            .map(|s| &*s.object.name)
            .collect();
        assert_eq!(names, ["broken", "new", "reworded"]);
    }

    #[test]
    fn the_same_name_in_another_kind_is_another_object() {
        let previous = vec![status("web", Validity::Valid, "valid")];
        let mut ingress = status("web", Validity::Valid, "valid");
        ingress.kind = ObjectKind::Ingress;
        let current = status_map(vec![previous[0].clone(), ingress]);
        let previous = status_map(previous);
        let kinds: Vec<ObjectKind> = changed(&previous, &current)
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, [ObjectKind::Ingress]);
    }

    #[test]
    fn an_unchanged_build_logs_nothing() {
        let statuses =
            status_map((0..3000).map(|i| status(&format!("r{i}"), Validity::Valid, "valid")));
        assert!(changed(&statuses, &statuses.clone()).is_empty());
        assert_eq!(changed(&StatusMap::new(), &statuses).len(), 3000);
    }
}
