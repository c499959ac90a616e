//! Finding the object Envoy rejected, when it rejects one anyway.
//!
//! isobar validates every value Envoy validates (see `dag::validate`), but a rule it lacks, or a
//! stricter Envoy, can still make Envoy NACK a response. With state-of-the-world xDS one bad route
//! holds back the whole RouteConfiguration, so every tenant's later changes would stop reaching
//! Envoy. Instead, isobar bisects: the objects that changed since the last configuration Envoy
//! accepted are the suspects; it pushes the configuration without them (which Envoy accepts), then
//! with half of them, narrowing down on each verdict until one object is left. That object is set
//! aside with Envoy's message ("rejected by Envoy: ..."); everything else is served. Editing the object
//! clears it (its fingerprint changes), and it is tried again.
//!
//! This is a pure state machine: the pipeline tells it what it pushed and what Envoy said, and asks
//! it which objects to leave out of the next build.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;

use crate::crd::gateway::HttpRoute;
use crate::crd::IngressRoute;
use crate::dag::ObjectKind;
use crate::store::ObjectKey;

/// An object that contributes to the configuration.
pub type ObjectId = (ObjectKind, ObjectKey);

/// What identifies one version of an object's content (its resourceVersion, or a content hash).
pub type Fingerprint = String;

/// The objects of one build, with their fingerprints (a persistent map: builds share it, O(1) to copy).
pub type Objects = imbl::OrdMap<ObjectId, Fingerprint>;

/// Why an object is left out of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// Envoy rejected what it contributed; the message is Envoy's.
    Rejected(String),
    /// Held back while the bisection tests other objects.
    Suspect(String),
}

/// How the description of an object Envoy rejected starts; Envoy's message follows. The status
/// writer names such Events `RejectedByEnvoy`.
pub const REJECTED_PREFIX: &str = "rejected by Envoy: ";
/// How the description of an object held back during a bisection starts. Transient and not the
/// object's doing, so it gets no Event.
pub const HELD_BACK_PREFIX: &str = "held back while isobar finds the object Envoy rejected";

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::Rejected(m) => write!(f, "{REJECTED_PREFIX}{m}"),
            Exclusion::Suspect(m) => write!(f, "{HELD_BACK_PREFIX} ({m})"),
        }
    }
}

/// A build that was pushed and whose verdict is awaited.
#[derive(Debug, Clone)]
struct Pushed {
    /// The types pushes changed and Envoy has not answered for, with the cache generation of the
    /// latest change of each.
    awaiting: BTreeMap<String, u64>,
    /// The objects it included.
    objects: Objects,
}

#[derive(Debug, Clone)]
struct Bisection {
    /// The rejected object is one of these (if there is one culprit).
    suspects: Vec<ObjectId>,
    /// The suspects the current push includes.
    testing: Vec<ObjectId>,
    /// Unproven objects outside the suspects (the other half after a rejection): held back until
    /// the culprit is found, so they can't make the test of the suspects fail.
    held: Vec<ObjectId>,
    /// Envoy's message, shown on held-back objects.
    message: String,
}

/// The isolation state of one pipeline.
#[derive(Debug, Default)]
pub struct Isolation {
    last_good: Option<Objects>,
    pushed: Option<Pushed>,
    bisection: Option<Bisection>,
    /// Set-aside objects: the fingerprint Envoy rejected, and its message.
    rejected: BTreeMap<ObjectId, (Fingerprint, String)>,
    /// The fingerprints of the objects as last seen, to remember which version was rejected.
    seen: Objects,
}

impl Isolation {
    /// The objects to leave out of a build of `current`, with why. A rejected object whose content
    /// has changed since is forgiven here (and tried again).
    pub fn exclusions(&mut self, current: &Objects) -> BTreeMap<ObjectId, Exclusion> {
        self.seen.clone_from(current);
        if let Some(b) = self.bisection.as_mut() {
            // A suspect that changed or went away is no longer the same suspect.
            b.suspects.retain(|id| current.contains_key(id));
            b.testing.retain(|id| current.contains_key(id));
            b.held.retain(|id| current.contains_key(id));
        }
        self.rejected
            .retain(|id, (fingerprint, _)| current.get(id) == Some(fingerprint));
        let mut out: BTreeMap<ObjectId, Exclusion> = self
            .rejected
            .iter()
            .map(|(id, (_, m))| (id.clone(), Exclusion::Rejected(m.clone())))
            .collect();
        if let Some(b) = &self.bisection {
            for id in b.suspects.iter().chain(&b.held) {
                if !b.testing.contains(id) {
                    out.insert(id.clone(), Exclusion::Suspect(b.message.clone()));
                }
            }
        }
        out
    }

    /// A build including `objects` was put in the cache at `generation`; `changed` are the types
    /// whose content it changed. A push that changed nothing awaits no verdict.
    pub fn pushed(&mut self, objects: Objects, changed: &[&str], generation: u64) {
        let mut changed: BTreeMap<String, u64> = changed
            .iter()
            .map(|t| (t.to_string(), generation))
            .collect();
        // Types an earlier push changed and Envoy has not answered for still await their verdict:
        // the cache still holds those versions.
        if let Some(earlier) = self.pushed.take() {
            for (t, v) in earlier.awaiting {
                changed.entry(t).or_insert(v);
            }
        }
        if changed.is_empty() {
            if self.pushed.is_none() && self.bisection.is_none() {
                self.last_good = Some(objects);
            }
            return;
        }
        self.pushed = Some(Pushed {
            awaiting: changed,
            objects,
        });
    }

    /// Every connected Envoy has accepted `type_url` as of cache `generation`. Returns true when the
    /// next build should differ (the bisection moved on).
    pub fn accepted(&mut self, type_url: &str, generation: u64) -> bool {
        let Some(p) = self.pushed.as_mut() else {
            return false;
        };
        if p.awaiting.get(type_url).is_none_or(|g| generation < *g) {
            return false;
        }
        p.awaiting.remove(type_url);
        if !p.awaiting.is_empty() {
            return false;
        }
        let Some(p) = self.pushed.take() else {
            return false;
        };
        self.last_good = Some(p.objects);
        let Some(mut b) = self.bisection.take() else {
            return false;
        };
        // What was tested is fine; the culprit is among the rest.
        b.suspects.retain(|id| !b.testing.contains(id));
        match b.suspects.len() {
            0 => {
                // Everything was accepted after all (the rejection did not reproduce).
                false
            }
            n => {
                // Even the last suspect is tried on its own before it is set aside: only a rejection
                // of a push that adds exactly it names it.
                b.testing = if n == 1 {
                    b.suspects.clone()
                } else {
                    b.suspects[..n / 2].to_vec()
                };
                self.bisection = Some(b);
                true
            }
        }
    }

    /// An Envoy rejected `type_url` as built at cache `generation`, with `message`. Returns true
    /// when the next build should differ (suspects held back, or the bisection narrowed).
    pub fn rejected(&mut self, type_url: &str, generation: u64, message: &str) -> bool {
        let Some(p) = self.pushed.as_ref() else {
            return false;
        };
        if p.awaiting.get(type_url).is_none_or(|g| generation < *g) {
            // A verdict on an older push: the newer one decides.
            return false;
        }
        let Some(p) = self.pushed.take() else {
            return false;
        };
        match self.bisection.take() {
            None => {
                let suspects: Vec<ObjectId> = p
                    .objects
                    .iter()
                    .filter(|(id, fp)| {
                        self.last_good
                            .as_ref()
                            .is_none_or(|good| good.get(*id) != Some(*fp))
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                let suspects = if suspects.is_empty() {
                    // Nothing this controller owns changed (a Service or a Secret did, say): any
                    // object may carry the bad value.
                    p.objects.keys().cloned().collect()
                } else {
                    suspects
                };
                if suspects.len() == 1 {
                    self.reject(suspects[0].clone(), message);
                } else {
                    self.bisection = Some(Bisection {
                        suspects,
                        testing: Vec::new(),
                        held: Vec::new(),
                        message: message.to_string(),
                    });
                }
                true
            }
            Some(b) if b.testing.is_empty() => {
                // Rejected even without any suspect: the cause is not one object's contribution.
                tracing::error!(
                    message,
                    "Envoy rejects the configuration even without the objects that changed; its last accepted configuration stays in force"
                );
                false
            }
            Some(b) => {
                let mut suspects = b.testing;
                if suspects.len() == 1 {
                    // Found; the held objects are released and tried with the next push.
                    self.reject(suspects.remove(0), message);
                } else {
                    let half = suspects.len() / 2;
                    let mut held = b.held;
                    held.extend(b.suspects.into_iter().filter(|id| !suspects.contains(id)));
                    self.bisection = Some(Bisection {
                        testing: suspects[..half].to_vec(),
                        suspects,
                        held,
                        message: message.to_string(),
                    });
                }
                true
            }
        }
    }

    fn reject(&mut self, id: ObjectId, message: &str) {
        let fingerprint = self.last_pushed_fingerprint(&id).unwrap_or_default();
        tracing::warn!(kind = %id.0, object = %id.1, error = message, "object set aside: Envoy rejected its configuration");
        self.rejected.insert(id, (fingerprint, message.to_string()));
    }

    fn last_pushed_fingerprint(&self, id: &ObjectId) -> Option<Fingerprint> {
        self.seen.get(id).cloned()
    }

    /// The objects set aside, with Envoy's message.
    pub fn rejected_objects(&self) -> Vec<(ObjectId, String)> {
        self.rejected
            .iter()
            .map(|(id, (_, m))| (id.clone(), m.clone()))
            .collect()
    }

    /// Whether a bisection is under way.
    pub fn bisecting(&self) -> bool {
        self.bisection.is_some()
    }
}

/// The objects of `snapshot` that contribute routes (Ingresses, IngressRoutes, HTTPRoutes), fingerprinted by
/// resourceVersion, or by a hash of their content where there is none (the file source).
pub fn objects_of(snapshot: &crate::store::Snapshot) -> Objects {
    FingerprintMemo::default().objects_of(snapshot)
}

/// Fingerprints kept up to date by diffing each snapshot with the last, so an unchanged object is not
/// hashed again and a build costs what changed.
#[derive(Debug, Default)]
pub struct FingerprintMemo {
    ingresses: crate::store::Objects<Ingress>,
    routes: crate::store::Objects<IngressRoute>,
    http_routes: crate::store::Objects<HttpRoute>,
    objects: Objects,
}

impl FingerprintMemo {
    /// [`objects_of`], fingerprinting only objects that changed since the last call.
    pub fn objects_of(&mut self, snapshot: &crate::store::Snapshot) -> Objects {
        let FingerprintMemo {
            ingresses,
            routes,
            http_routes,
            objects,
        } = self;
        follow(objects, ObjectKind::Ingress, ingresses, &snapshot.ingresses);
        follow(
            objects,
            ObjectKind::IngressRoute,
            routes,
            &snapshot.ingress_routes,
        );
        follow(
            objects,
            ObjectKind::HttpRoute,
            http_routes,
            &snapshot.http_routes,
        );
        objects.clone()
    }
}

/// Brings the fingerprints of `kind` from what `last` held to what `now` holds.
fn follow<T: kube::Resource + serde::Serialize + PartialEq>(
    objects: &mut Objects,
    kind: ObjectKind,
    last: &mut crate::store::Objects<T>,
    now: &crate::store::Objects<T>,
) {
    use imbl::ordmap::DiffItem;
    for d in last.diff(now) {
        match d {
            DiffItem::Add(key, o) | DiffItem::Update { new: (key, o), .. } => {
                objects.insert((kind, key.clone()), fingerprint(&**o));
            }
            DiffItem::Remove(key, _) => {
                objects.remove(&(kind, key.clone()));
            }
        }
    }
    *last = now.clone();
}

fn fingerprint<T: kube::Resource + serde::Serialize>(o: &T) -> Fingerprint {
    match &o.meta().resource_version {
        Some(v) => v.clone(),
        None => {
            use sha2::Digest;
            let bytes = serde_json::to_vec(o).unwrap_or_default();
            hex::encode(&sha2::Sha256::digest(&bytes)[..8])
        }
    }
}

/// `snapshot` without the objects in `excluded`.
pub fn without<T>(
    snapshot: &crate::store::Snapshot,
    excluded: &BTreeMap<ObjectId, T>,
) -> crate::store::Snapshot {
    let mut s = snapshot.clone();
    for (kind, key) in excluded.keys() {
        match kind {
            ObjectKind::Ingress => {
                s.ingresses.remove(key);
            }
            ObjectKind::IngressRoute => {
                s.ingress_routes.remove(key);
            }
            ObjectKind::HttpRoute => {
                s.http_routes.remove(key);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const RDS: &str = "rds";

    fn id(name: &str) -> ObjectId {
        (ObjectKind::Ingress, ObjectKey::new("t", name))
    }

    fn objects(names: &[&str]) -> Objects {
        names.iter().map(|n| (id(n), format!("{n}-1"))).collect()
    }

    fn excluded(iso: &mut Isolation, current: &Objects) -> Vec<String> {
        iso.exclusions(current)
            .keys()
            .map(|(_, k)| k.name.to_string())
            .collect()
    }

    /// Drives a bisection against an "Envoy" that rejects any push including `bad`, and returns the
    /// rejected objects and the number of pushes it took.
    fn bisect(all: &[&str], good_before: &[&str], bad: &[&str]) -> (Vec<String>, usize) {
        let mut iso = Isolation::default();
        let current = objects(all);
        iso.pushed(objects(good_before), &[RDS], 0);
        iso.accepted(RDS, 0);
        let mut pushes = 0;
        loop {
            pushes += 1;
            assert!(pushes < 50, "no convergence");
            let out = excluded(&mut iso, &current);
            let included: Objects = current
                .iter()
                .filter(|(id, _)| !out.iter().any(|o| **o == *id.1.name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let generation = pushes as u64;
            iso.pushed(included.clone(), &[RDS], generation);
            let rejects = included.keys().any(|(_, k)| bad.contains(&&*k.name));
            let moved = if rejects {
                iso.rejected(RDS, generation, "bad value")
            } else {
                iso.accepted(RDS, generation)
            };
            if !moved && !iso.bisecting() {
                let rejected = iso
                    .rejected_objects()
                    .into_iter()
                    .map(|((_, k), _)| k.name.to_string())
                    .collect();
                return (rejected, pushes);
            }
        }
    }

    #[test]
    fn one_changed_object_that_envoy_rejects_is_set_aside_at_once() {
        let (rejected, pushes) = bisect(&["a", "b", "bad"], &["a", "b"], &["bad"]);
        assert_eq!(rejected, ["bad"]);
        assert_eq!(pushes, 2, "the rejected push, then one without the object");
    }

    #[test]
    fn the_culprit_among_many_changed_objects_is_found_in_logarithmic_pushes() {
        let names: Vec<String> = (0..64).map(|i| format!("n{i:02}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let (rejected, pushes) = bisect(&all, &[], &["n37"]);
        assert_eq!(rejected, ["n37"]);
        assert!(pushes <= 2 + 7 + 1, "{pushes} pushes");
    }

    #[test]
    fn two_culprits_are_both_found() {
        let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let (rejected, _) = bisect(&all, &[], &["n2", "n7"]);
        assert_eq!(rejected, ["n2", "n7"]);
    }

    #[test]
    fn editing_a_rejected_object_clears_it() {
        let mut iso = Isolation::default();
        let current = objects(&["a", "bad"]);
        iso.pushed(objects(&["a"]), &[RDS], 1);
        iso.accepted(RDS, 1);
        let _ = iso.exclusions(&current);
        iso.pushed(current.clone(), &[RDS], 2);
        assert!(iso.rejected(RDS, 2, "Duration out-of-range"));
        let out = iso.exclusions(&current);
        assert_eq!(
            out.get(&id("bad")).map(ToString::to_string).as_deref(),
            Some("rejected by Envoy: Duration out-of-range")
        );
        let mut edited = current.clone();
        edited.insert(id("bad"), "bad-2".into());
        assert!(iso.exclusions(&edited).is_empty());
    }

    #[test]
    fn a_verdict_on_an_older_push_is_ignored() {
        let mut iso = Isolation::default();
        iso.pushed(objects(&["a"]), &[RDS], 1);
        iso.pushed(objects(&["a", "b"]), &[RDS], 2);
        assert!(!iso.rejected(RDS, 1, "old"));
        assert!(iso.exclusions(&objects(&["a", "b"])).is_empty());
    }

    #[test]
    fn a_rejection_that_does_not_reproduce_names_nobody() {
        let mut iso = Isolation::default();
        let current = objects(&["a", "b", "c"]);
        let _ = iso.exclusions(&current);
        iso.pushed(current.clone(), &[RDS], 1);
        assert!(iso.rejected(RDS, 1, "transient"));
        // From now on Envoy accepts whatever it gets.
        for generation in 2..20 {
            let out = iso.exclusions(&current);
            let included = current
                .iter()
                .filter(|(id, _)| !out.contains_key(*id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            iso.pushed(included, &[RDS], generation);
            if !iso.accepted(RDS, generation) && !iso.bisecting() {
                break;
            }
        }
        assert!(iso.rejected_objects().is_empty());
        assert!(iso.exclusions(&current).is_empty());
    }
}
