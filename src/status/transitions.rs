//! Which objects' statuses changed between two builds, so the log gets one line per transition instead
//! of one per object per rebuild (3,000 lines a rebuild at 3,000 IngressRoutes).

use std::collections::HashMap;

use crate::dag::{ObjectKind, ObjectStatus};
use crate::store::ObjectKey;

/// The statuses in `current` that are new or whose validity or description differs from `previous`,
/// in `current`'s order. Linear: `previous` is indexed by object once.
pub fn changed<'a>(
    previous: &[ObjectStatus],
    current: &'a [ObjectStatus],
) -> Vec<&'a ObjectStatus> {
    let before: HashMap<(ObjectKind, &ObjectKey), &ObjectStatus> =
        previous.iter().map(|s| ((s.kind, &s.object), s)).collect();
    current
        .iter()
        .filter(|s| {
            before
                .get(&(s.kind, &s.object))
                .is_none_or(|old| old.validity != s.validity || old.description != s.description)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::Validity;

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
        let names: Vec<&str> = changed(&previous, &current)
            .iter()
            .map(|s| s.object.name.as_str())
            .collect();
        assert_eq!(names, ["broken", "reworded", "new"]);
    }

    #[test]
    fn the_same_name_in_another_kind_is_another_object() {
        let previous = vec![status("web", Validity::Valid, "valid")];
        let mut ingress = status("web", Validity::Valid, "valid");
        ingress.kind = ObjectKind::Ingress;
        let current = vec![previous[0].clone(), ingress];
        let kinds: Vec<ObjectKind> = changed(&previous, &current)
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, [ObjectKind::Ingress]);
    }

    #[test]
    fn an_unchanged_build_logs_nothing() {
        let statuses: Vec<ObjectStatus> = (0..3000)
            .map(|i| status(&format!("r{i}"), Validity::Valid, "valid"))
            .collect();
        assert!(changed(&statuses, &statuses).is_empty());
        assert_eq!(changed(&[], &statuses).len(), 3000);
    }
}
