//! Which Ingresses get a Warning Event, and with what reason.
//!
//! An Ingress has no status field for a reason (an IngressRoute has `status.description`), so an
//! Event (`kubectl describe ingress`) is how its owner learns why it is not served. One Event per
//! transition — the Ingress becoming invalid, or the reason changing — never one per rebuild: the
//! writer remembers what it last published for each Ingress. That memory lives in the process, so a
//! new leader (or a restarted isobar) reports each invalid Ingress once more.

use std::collections::{HashMap, HashSet};

use crate::dag::{ObjectKind, ObjectStatus, Validity};
use crate::isolation::{HELD_BACK_PREFIX, REJECTED_PREFIX};
use crate::store::ObjectKey;

/// The `reportingController` of isobar's Events.
pub const REPORTING_CONTROLLER: &str = "isobar";
/// The Event's `action`: what failed is configuring Envoy for the object.
pub const ACTION: &str = "Configure";
/// The API server refuses an Event whose note is longer (bytes, events.k8s.io/v1 validation); Envoy's
/// messages can be.
pub const NOTE_LIMIT: usize = 1024;

/// The Event's `reason`: a short, stable word a person or an alert can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// isobar's own validation refused it (unknown Service, bad annotation value, …).
    Invalid,
    /// Envoy rejected what it contributed; the note carries Envoy's message.
    RejectedByEnvoy,
    /// Not reachable from a root (not expected for Ingresses, which are all roots).
    Orphaned,
}

impl EventReason {
    /// Why `status` calls for a Warning, or `None` when it doesn't: valid, or only held back while
    /// isobar looks for the object Envoy rejected (transient, and not this object's doing).
    pub fn of(status: &ObjectStatus) -> Option<EventReason> {
        match status.validity {
            Validity::Valid => None,
            Validity::Orphaned => Some(EventReason::Orphaned),
            Validity::Invalid if status.description.starts_with(HELD_BACK_PREFIX) => None,
            Validity::Invalid if status.description.starts_with(REJECTED_PREFIX) => {
                Some(EventReason::RejectedByEnvoy)
            }
            Validity::Invalid => Some(EventReason::Invalid),
        }
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventReason::Invalid => "Invalid",
            EventReason::RejectedByEnvoy => "RejectedByEnvoy",
            EventReason::Orphaned => "Orphaned",
        })
    }
}

/// A Warning Event one Ingress is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressEvent {
    pub object: ObjectKey,
    pub reason: EventReason,
    /// The status description, whole (what the writer remembers; see [`IngressEvent::note`]).
    pub description: String,
}

impl IngressEvent {
    /// The description, cut to [`NOTE_LIMIT`] bytes on a character boundary.
    pub fn note(&self) -> String {
        if self.description.len() <= NOTE_LIMIT {
            return self.description.clone();
        }
        const ELLIPSIS: &str = "…";
        let mut end = NOTE_LIMIT - ELLIPSIS.len();
        while !self.description.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{ELLIPSIS}", &self.description[..end])
    }
}

/// The description each Ingress's last published Event carried.
#[derive(Debug, Default)]
pub struct ReportedIngresses {
    descriptions: HashMap<ObjectKey, String>,
}

impl ReportedIngresses {
    /// The Events `statuses` call for: each Ingress with a Warning reason whose description is not the
    /// one last published for it. Linear in `statuses`.
    pub fn due<'a>(
        &self,
        statuses: impl IntoIterator<Item = &'a ObjectStatus>,
    ) -> Vec<IngressEvent> {
        statuses
            .into_iter()
            .filter(|s| s.kind == ObjectKind::Ingress)
            .filter(|s| self.descriptions.get(&s.object) != Some(&s.description))
            .filter_map(|s| {
                Some(IngressEvent {
                    object: s.object.clone(),
                    reason: EventReason::of(s)?,
                    description: s.description.clone(),
                })
            })
            .collect()
    }

    /// Remembers a published Event. One that failed is not recorded, so the next pass retries it.
    pub fn published(&mut self, event: &IngressEvent) {
        self.descriptions
            .insert(event.object.clone(), event.description.clone());
    }

    /// Forgets Ingresses that are valid again or gone, so breaking again is a new transition. A
    /// held-back Ingress is neither: what it was last told still stands.
    pub fn forget_resolved<'a>(&mut self, statuses: impl IntoIterator<Item = &'a ObjectStatus>) {
        let still_invalid: HashSet<&ObjectKey> = statuses
            .into_iter()
            .filter(|s| s.kind == ObjectKind::Ingress && s.validity != Validity::Valid)
            .map(|s| &s.object)
            .collect();
        self.descriptions
            .retain(|key, _| still_invalid.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: ObjectKind, name: &str, validity: Validity, description: &str) -> ObjectStatus {
        ObjectStatus {
            kind,
            object: ObjectKey::new("ns", name),
            validity,
            description: description.into(),
        }
    }

    fn valid(name: &str) -> ObjectStatus {
        status(ObjectKind::Ingress, name, Validity::Valid, "valid Ingress")
    }

    fn invalid(name: &str, description: &str) -> ObjectStatus {
        status(ObjectKind::Ingress, name, Validity::Invalid, description)
    }

    /// One writer pass in which every Event is published: the (name, reason) of each.
    fn pass(reported: &mut ReportedIngresses, statuses: &[ObjectStatus]) -> Vec<(String, String)> {
        reported.forget_resolved(statuses);
        let due = reported.due(statuses);
        for e in &due {
            reported.published(e);
        }
        due.iter()
            .map(|e| (e.object.name.to_string(), e.reason.to_string()))
            .collect()
    }

    fn events(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect()
    }

    #[test]
    fn only_transitions_to_invalid_or_to_another_reason_get_an_event() {
        let mut reported = ReportedIngresses::default();
        let timeout = "request-timeout: \"forever\" is not a duration";
        let first = [valid("ok"), invalid("broken", timeout)];
        assert_eq!(
            pass(&mut reported, &first),
            events(&[("broken", "Invalid")])
        );
        // Rebuilds that change nothing about them: nothing.
        assert_eq!(pass(&mut reported, &first), events(&[]));
        assert_eq!(pass(&mut reported, &first), events(&[]));
        // Another reason, and another Ingress breaking.
        let second = [
            invalid("ok", "service \"ns/gone\" not found"),
            invalid("broken", "rejected by Envoy: Duration out-of-range"),
        ];
        assert_eq!(
            pass(&mut reported, &second),
            events(&[("ok", "Invalid"), ("broken", "RejectedByEnvoy")])
        );
        // Fixed: no Event for becoming valid.
        let fixed = [valid("ok"), valid("broken")];
        assert_eq!(pass(&mut reported, &fixed), events(&[]));
        // Broken again with the first reason: a new transition.
        assert_eq!(
            pass(&mut reported, &first),
            events(&[("broken", "Invalid")])
        );
    }

    #[test]
    fn a_deleted_ingress_is_forgotten() {
        let mut reported = ReportedIngresses::default();
        let broken = [invalid("broken", "no spec")];
        assert_eq!(pass(&mut reported, &broken).len(), 1);
        assert_eq!(pass(&mut reported, &[]), events(&[]));
        assert_eq!(pass(&mut reported, &broken).len(), 1, "re-created");
    }

    #[test]
    fn an_event_that_was_not_published_is_due_again() {
        let mut reported = ReportedIngresses::default();
        let broken = [invalid("broken", "no spec")];
        reported.forget_resolved(&broken);
        let first = reported.due(&broken);
        assert_eq!(first.len(), 1);
        // The publish failed, so it was not recorded: the next pass has it again.
        reported.forget_resolved(&broken);
        assert_eq!(reported.due(&broken), first);
        for e in &first {
            reported.published(e);
        }
        assert_eq!(reported.due(&broken), []);
    }

    #[test]
    fn held_back_ingresses_get_no_event_and_keep_their_last_one() {
        let mut reported = ReportedIngresses::default();
        let held = format!("{HELD_BACK_PREFIX} (Duration out-of-range)");
        assert_eq!(pass(&mut reported, &[invalid("a", &held)]), events(&[]));
        assert_eq!(pass(&mut reported, &[invalid("b", "no spec")]).len(), 1);
        assert_eq!(pass(&mut reported, &[invalid("b", &held)]), events(&[]));
        // After the bisection b is still invalid for the same reason: already told.
        assert_eq!(pass(&mut reported, &[invalid("b", "no spec")]), events(&[]));
    }

    #[test]
    fn ingress_routes_get_no_event() {
        let mut reported = ReportedIngresses::default();
        let route = status(ObjectKind::IngressRoute, "r", Validity::Invalid, "bad");
        let orphan = status(
            ObjectKind::IngressRoute,
            "o",
            Validity::Orphaned,
            "orphaned",
        );
        assert_eq!(pass(&mut reported, &[route, orphan]), events(&[]));
    }

    #[test]
    fn the_reason_follows_the_status() {
        let reason = |validity, description| {
            EventReason::of(&status(ObjectKind::Ingress, "i", validity, description))
        };
        assert_eq!(reason(Validity::Valid, "valid Ingress"), None);
        assert_eq!(
            reason(Validity::Invalid, "rejected by Envoy: bad"),
            Some(EventReason::RejectedByEnvoy)
        );
        // Only a prefix counts: a reason that mentions Envoy is isobar's own.
        assert_eq!(
            reason(Validity::Invalid, "timeout: not rejected by Envoy: x"),
            Some(EventReason::Invalid)
        );
        assert_eq!(
            reason(Validity::Orphaned, "orphaned"),
            Some(EventReason::Orphaned)
        );
    }

    #[test]
    fn a_long_note_is_cut_on_a_character_boundary() {
        let event = |description: String| IngressEvent {
            object: ObjectKey::new("ns", "i"),
            reason: EventReason::RejectedByEnvoy,
            description,
        };
        let short = "x".repeat(NOTE_LIMIT);
        assert_eq!(event(short.clone()).note(), short);
        let long = "é".repeat(NOTE_LIMIT);
        let note = event(long).note();
        assert!(note.len() <= NOTE_LIMIT, "{} bytes", note.len());
        assert!(note.starts_with("éé") && note.ends_with('…'), "{note}");
    }
}
