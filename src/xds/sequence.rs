//! What one client holds, and what it is sent next: the per-stream state shared by both ADS
//! protocols (state of the world and delta). The protocols differ only in how a [`Update`] is put on
//! the wire and how requests are read; ordering, diffing, ACK/NACK bookkeeping and resumption are here.
//!
//! **Only what changed.** Each type remembers what the client holds (what it ACKed), resource by
//! resource, by content hash. An update carries the resources whose hash differs and the names to
//! remove; nothing is sent for a type whose content did not change.
//!
//! **One update in flight per type.** The next one is computed when the client has answered, from
//! the latest snapshot: a slow client never gets a queue of stale snapshots, only the latest.
//!
//! **Make-before-break** (the xDS protocol's "eventual consistency considerations"), one [`Stage`]
//! after the other: clusters, endpoints and secrets first, with what the client already holds kept
//! alongside (so nothing in use disappears) until the clusters are ACKed and the new ones have
//! their endpoints; then listeners; then routes; and only once the client has ACKed the listeners
//! and routes that stopped using them, the removal of clusters, endpoints and secrets. A newer
//! snapshot restarts the sequence from what the client holds now.
//!
//! **Versions are a function of content only** ([`Version`] over names and content hashes), so
//! two isobar replicas with the same inputs send the same versions, and a client that reconnects
//! holding exactly what would be sent is sent nothing.
//!
//! **Work in proportion to the change.** At 10,000 resources a step must not visit every one: what
//! a type wants of the snapshot is kept (a persistent map, a clone of the snapshot's for a
//! wildcard) and brought up to date from the diff of the snapshot's maps and from subscription
//! changes; what the client holds is kept sharing structure with what was last sent, so the diff
//! between the two skips everything unchanged; and versions follow changes (XOR of per-resource
//! keys) instead of hashing the whole set.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::ordmap::DiffItem;

use super::cache::{CacheSnapshot, Resource, TypeMap, Version};
use super::content_hash::ContentHash;
use super::type_url;

/// Where a stream is in carrying one snapshot to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Clusters, endpoints and secrets go out, as the union of what the client holds and the snapshot.
    Warm,
    /// The clusters are ACKed and warm: listeners go out.
    Listeners,
    /// Listeners are ACKed: routes go out.
    Routes,
    /// Listeners and routes in use are the snapshot's: what they no longer use is removed.
    Done,
}

/// The names a client asked for, for one type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Every resource of the type.
    pub wildcard: bool,
    pub names: BTreeSet<String>,
}

impl Subscription {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// A response on its way to the client, awaiting its answer.
#[derive(Debug)]
struct InFlight {
    nonce: String,
    version: String,
    generation: u64,
    upserts: Vec<Arc<Resource>>,
    removals: Vec<String>,
    /// What the client holds once it applies the response.
    state: TypeMap,
    /// `held` when the response was sent and the subscription then: if neither changed before the
    /// ACK, what the client holds is `state` itself (no copy, and it keeps sharing structure).
    base: TypeMap,
    sub_epoch: u64,
}

#[derive(Debug, Default)]
struct TypeState {
    sub: Subscription,
    /// What the client holds, as far as its answers tell.
    held: TypeMap,
    /// `held` may hold names the subscription no longer wants (an ACK of a response sent before
    /// the client unsubscribed): the next subscription change checks every name, not just its own.
    strays: bool,
    /// What the subscription asks for of `wanted_from`, and its version: brought up to date from
    /// snapshot diffs and subscription changes, not rebuilt.
    wanted: TypeMap,
    wanted_version: Version,
    /// The snapshot's map of this type that `wanted` reflects (empty when the snapshot has none);
    /// `None` when `wanted` must be rebuilt (first use, or the wildcard came or went).
    wanted_from: Option<TypeMap>,
    inflight: Option<InFlight>,
    /// The nonce of the last response sent.
    last_nonce: String,
    /// The version of the last response sent (what the client holds if it accepts it).
    sent_version: Option<String>,
    acked_version: Option<String>,
    /// The version the client last rejected; the same content is not sent again.
    rejected_version: Option<String>,
    /// The client rejected a response built for the current target.
    nacked: bool,
    /// Names to send although the client holds them (it asked for them again).
    resend: BTreeSet<String>,
    resend_all: bool,
    /// State of the world: the version the client said it holds when it connected, adopted as
    /// what it holds if it is what would be sent.
    claimed_version: Option<String>,
    /// Bumped whenever the subscription, what the client holds, or what it asked again changes.
    epoch: u64,
    /// The inputs (snapshot map, phase, epoch) for which there was last nothing to send: the same
    /// inputs again need no diff (every ACK steps every type; at 10,000 resources that adds up).
    /// The map is held (not its address), so it cannot be freed and its address reused.
    quiet: Option<(Option<Arc<TypeMap>>, bool, u64)>,
    /// Delta: what the client holds came from its initial versions and is not reported yet.
    initial: bool,
    /// Bumped whenever the subscription changes; `reported_sub` is the one last reported.
    sub_epoch: u64,
    reported_sub: Option<u64>,
}

impl TypeState {
    /// The client answered the last response and did not reject it.
    fn settled(&self) -> bool {
        self.inflight.is_none() && !self.nacked
    }

    /// The client holds what was last sent.
    fn in_sync(&self) -> bool {
        self.inflight.is_none() && self.acked_version == self.sent_version
    }

    /// Brings `wanted` up to `snapshot` (the target's map of this type): through the diff from the
    /// map it reflects, which skips what the two share, so a change of one resource costs one.
    fn refresh_wanted(&mut self, snapshot: &TypeMap) {
        match &self.wanted_from {
            Some(from) if from.ptr_eq(snapshot) => return,
            Some(from) => {
                for item in from.diff(snapshot) {
                    match item {
                        DiffItem::Add(name, r) | DiffItem::Update { new: (name, r), .. } => {
                            if self.sub.wants(name) {
                                if let Some(old) = self.wanted.insert(name.clone(), Arc::clone(r)) {
                                    self.wanted_version.toggle(&old);
                                }
                                self.wanted_version.toggle(r);
                            }
                        }
                        DiffItem::Remove(name, _) => {
                            if let Some(old) = self.wanted.remove(name) {
                                self.wanted_version.toggle(&old);
                            }
                        }
                    }
                }
                if self.sub.wildcard {
                    // The same content; the snapshot's own map shares structure with the next one.
                    self.wanted = snapshot.clone();
                }
            }
            None => {
                self.wanted = if self.sub.wildcard {
                    snapshot.clone()
                } else {
                    self.sub
                        .names
                        .iter()
                        .filter_map(|n| snapshot.get(n).map(|r| (n.clone(), Arc::clone(r))))
                        .collect()
                };
                self.wanted_version = Version::of(self.wanted.values());
            }
        }
        self.wanted_from = Some(snapshot.clone());
    }

    /// The subscription changed from one whose wildcard was `was_wildcard`, by `added` and
    /// `removed` names: `wanted` follows (rebuilt if the wildcard came or went).
    fn rewant(&mut self, was_wildcard: bool, added: &[String], removed: &[String]) {
        if was_wildcard != self.sub.wildcard {
            self.wanted_from = None;
            return;
        }
        let Some(from) = &self.wanted_from else {
            return;
        };
        if self.sub.wildcard {
            return;
        }
        for n in removed {
            if let Some(old) = self.wanted.remove(n) {
                self.wanted_version.toggle(&old);
            }
        }
        for n in added {
            if let Some(r) = from.get(n) {
                if let Some(old) = self.wanted.insert(n.clone(), Arc::clone(r)) {
                    self.wanted_version.toggle(&old);
                }
                self.wanted_version.toggle(r);
            }
        }
    }

    /// What the client holds and the subscription no longer wants leaves `held`: only the
    /// `removed` names, unless the wildcard went or `held` may have strays.
    fn forget_unwanted(&mut self, was_wildcard: bool, removed: &[String]) {
        if self.strays || (was_wildcard && !self.sub.wildcard) {
            let sub = &self.sub;
            let gone: Vec<String> = self
                .held
                .keys()
                .filter(|n| !sub.wants(n))
                .cloned()
                .collect();
            for n in gone {
                self.held.remove(&n);
            }
            self.strays = false;
        } else if !self.sub.wildcard {
            for n in removed {
                self.held.remove(n);
            }
        }
    }
}

/// One response to send: the changes for one type, and the state the client holds once it applies them.
#[derive(Debug, Clone)]
pub struct Update {
    pub type_url: &'static str,
    pub nonce: String,
    /// The version of `state`.
    pub version: String,
    /// The cache generation the update was built from.
    pub generation: u64,
    /// Resources new to the client or changed.
    pub upserts: Vec<Arc<Resource>>,
    /// Names the client holds that are gone.
    pub removals: Vec<String>,
    /// Everything of this type the client holds after applying the update (a persistent map: a
    /// clone, not a copy).
    pub state: TypeMap,
}

/// The client's answer to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ack {
        version: String,
        generation: u64,
    },
    Nack {
        rejected_version: String,
        /// What the client keeps using.
        version_in_use: String,
        generation: u64,
        /// The resources the rejected response carried.
        names: Vec<String>,
    },
}

/// A type in sync without sending: the client already holds exactly what would be sent (on
/// reconnecting, or after it rejected something that is no longer wanted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub type_url: &'static str,
    pub version: String,
    pub generation: u64,
}

/// The per-stream state of both protocols.
#[derive(Debug)]
pub struct Sequence {
    types: BTreeMap<&'static str, TypeState>,
    nonce: u64,
    /// The snapshot being carried to the client (the latest one).
    target: Arc<CacheSnapshot>,
    stage: Stage,
    /// The endpoint names the clusters the client holds read (EDS service names).
    /// (How many held clusters read each name: a multiset, kept as ACKs add and remove clusters.)
    acked_eds_names: BTreeMap<String, usize>,
    /// The endpoint names of the clusters the last ACKed cluster update added or changed: a client
    /// that asks for endpoints again wants these (a changed cluster warms until it has them).
    recent_eds_names: BTreeSet<String>,
    /// The names in `acked_eds_names` the endpoint subscription does not ask for: the warm gate
    /// waits while there are any. Kept as clusters are ACKed and the subscription changes, since
    /// checking every held cluster's name on every step is O(clusters).
    uncovered_eds_names: BTreeSet<String>,
    /// `acked_eds_names` was replaced whole (a resumed client): `uncovered_eds_names` is recounted.
    recount_uncovered: bool,
    resumed: Vec<Resumed>,
}

impl Sequence {
    pub fn new(target: Arc<CacheSnapshot>) -> Self {
        Sequence {
            types: BTreeMap::new(),
            nonce: 0,
            target,
            stage: Stage::Warm,
            acked_eds_names: BTreeMap::new(),
            recent_eds_names: BTreeSet::new(),
            uncovered_eds_names: BTreeSet::new(),
            recount_uncovered: false,
            resumed: Vec::new(),
        }
    }

    /// A newer snapshot: start over from what the client holds now.
    pub fn retarget(&mut self, target: Arc<CacheSnapshot>) {
        self.target = target;
        self.stage = Stage::Warm;
        for t in self.types.values_mut() {
            // A rejection of an older snapshot's content does not hold this one up; content equal to
            // the rejected is not sent again (`rejected_version`).
            t.nacked = false;
        }
    }

    /// The nonce of the last response of `type_url`, and whether it awaits an answer.
    pub fn last_nonce(&self, type_url: &str) -> Option<(&str, bool)> {
        let t = self.types.get(type_url)?;
        Some((t.last_nonce.as_str(), t.inflight.is_some()))
    }

    /// The names asked for (empty for a wildcard), if they changed since the last call: reports
    /// copy them only then (an Envoy with 10,000 clusters asks for 10,000 endpoint names).
    pub fn names_if_changed(&mut self, type_url: &str) -> Option<Vec<String>> {
        let t = self.types.get_mut(type_url)?;
        if t.reported_sub == Some(t.sub_epoch) {
            return None;
        }
        t.reported_sub = Some(t.sub_epoch);
        Some(t.sub.names.iter().cloned().collect())
    }

    /// State of the world: the client asks for `names` of `type_url` (all of them when empty).
    /// `asks_again`: it repeats a request for a response already answered, which it does when it
    /// adds a watch on resources it holds (an updated cluster's endpoints).
    pub fn sotw_request(
        &mut self,
        type_url: &'static str,
        names: Vec<String>,
        version_info: &str,
        asks_again: bool,
    ) {
        let first = !self.types.contains_key(type_url);
        let recent = &self.recent_eds_names;
        let t = self.types.entry(type_url).or_default();
        t.epoch += 1;
        let sub = Subscription {
            wildcard: names.is_empty(),
            names: names.into_iter().collect(),
        };
        let mut resubscribed = None;
        if sub != t.sub {
            let was = std::mem::replace(&mut t.sub, sub);
            let added: Vec<String> = t.sub.names.difference(&was.names).cloned().collect();
            let removed: Vec<String> = was.names.difference(&t.sub.names).cloned().collect();
            t.forget_unwanted(was.wildcard, &removed);
            t.rewant(was.wildcard, &added, &removed);
            t.sub_epoch += 1;
            resubscribed = Some((was.wildcard, added, removed));
        }
        if first && !version_info.is_empty() {
            t.claimed_version = Some(version_info.to_string());
        }
        if asks_again {
            let wanted: BTreeSet<String> = if type_url == type_url::ENDPOINT {
                recent.iter().filter(|n| t.sub.wants(n)).cloned().collect()
            } else {
                BTreeSet::new()
            };
            if wanted.is_empty() {
                t.resend_all = true;
            } else {
                t.resend.extend(wanted);
            }
        }
        if let (type_url::ENDPOINT, Some((was_wildcard, added, removed))) = (type_url, resubscribed)
        {
            self.endpoints_resubscribed(was_wildcard, &added, &removed);
        }
    }

    /// Delta: the client subscribes to and unsubscribes from names of `type_url` (`*` is the
    /// wildcard). On its first request it says which versions it already holds (later requests'
    /// `initial_versions` are ignored).
    pub fn delta_request(
        &mut self,
        type_url: &'static str,
        subscribe: &[String],
        unsubscribe: &[String],
        initial_versions: &BTreeMap<String, String>,
    ) {
        let first = !self.types.contains_key(type_url);
        let t = self.types.entry(type_url).or_default();
        t.epoch += 1;
        let was_wildcard = t.sub.wildcard;
        if first {
            // An empty first subscription is the legacy wildcard.
            t.sub.wildcard = subscribe.is_empty();
            for (name, version) in initial_versions {
                t.held.insert(name.clone(), placeholder(name, version));
            }
            if !initial_versions.is_empty() {
                let v = Version::of(t.held.values()).text();
                t.sent_version = Some(v.clone());
                t.acked_version = Some(v);
                t.initial = true;
            }
        }
        // Whether each name this request touches was subscribed before it: what it added and
        // removed is the difference, whatever order it named them in.
        let touched: BTreeMap<&String, bool> = subscribe
            .iter()
            .chain(unsubscribe)
            .filter(|n| *n != "*")
            .map(|n| (n, t.sub.names.contains(n)))
            .collect();
        for name in subscribe {
            if name == "*" {
                t.sub.wildcard = true;
            } else if !t.sub.names.insert(name.clone()) && !first {
                // Asked for again: the client wants it sent although it held it.
                t.resend.insert(name.clone());
            }
        }
        for name in unsubscribe {
            if name == "*" {
                t.sub.wildcard = false;
            } else {
                t.sub.names.remove(name);
            }
        }
        if !subscribe.is_empty() || !unsubscribe.is_empty() {
            t.sub_epoch += 1;
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (name, before) in touched {
            match (before, t.sub.names.contains(name)) {
                (false, true) => added.push(name.clone()),
                (true, false) => removed.push(name.clone()),
                _ => {}
            }
        }
        if first {
            let sub = &t.sub;
            let gone: Vec<String> = t.held.keys().filter(|n| !sub.wants(n)).cloned().collect();
            for n in gone {
                t.held.remove(&n);
            }
        } else if !unsubscribe.is_empty() {
            t.forget_unwanted(was_wildcard, &removed);
        }
        if first || !unsubscribe.is_empty() {
            let TypeState { sub, resend, .. } = t;
            resend.retain(|n| sub.wants(n));
        }
        t.rewant(was_wildcard, &added, &removed);
        if type_url == type_url::ENDPOINT {
            self.endpoints_resubscribed(was_wildcard, &added, &removed);
        }
    }

    /// The client answered the response with `nonce` of `type_url`; `None` if that response is not
    /// the one awaiting an answer (a reply to a superseded response).
    pub fn answer(&mut self, type_url: &str, nonce: &str, rejected: bool) -> Option<Answer> {
        let t = self.types.get_mut(type_url)?;
        if t.inflight.as_ref().is_none_or(|f| f.nonce != nonce) {
            return None;
        }
        let f = t.inflight.take()?;
        t.epoch += 1;
        if rejected {
            t.nacked = true;
            t.rejected_version = Some(f.version.clone());
            return Some(Answer::Nack {
                rejected_version: f.version,
                version_in_use: t.acked_version.clone().unwrap_or_default(),
                generation: f.generation,
                names: f.upserts.iter().map(|r| r.name.clone()).collect(),
            });
        }
        let clusters = type_url == type_url::CLUSTER;
        // Endpoint names no held cluster read before: the gate waits for them unless asked for.
        let mut fresh = Vec::new();
        if clusters {
            // Removals and upserts name different resources: each one's predecessor is in `held`.
            let (acked, uncovered) = (&mut self.acked_eds_names, &mut self.uncovered_eds_names);
            for n in &f.removals {
                if let Some(old) = t.held.get(n) {
                    forget(acked, uncovered, old.eds_name.as_ref());
                }
            }
            for r in &f.upserts {
                if let Some(old) = t.held.get(&r.name) {
                    forget(acked, uncovered, old.eds_name.as_ref());
                }
                if let Some(n) = r.eds_name.as_ref() {
                    let count = acked.entry(n.clone()).or_default();
                    *count += 1;
                    if *count == 1 {
                        fresh.push(n.clone());
                    }
                }
            }
        }
        if t.sub_epoch == f.sub_epoch && t.held.ptr_eq(&f.base) {
            t.held = f.state;
        } else {
            // The subscription changed while the response was out: apply it to what is held now.
            for n in &f.removals {
                t.held.remove(n);
            }
            for r in &f.upserts {
                t.held.insert(r.name.clone(), Arc::clone(r));
            }
            let sub = &t.sub;
            t.strays |= f.upserts.iter().any(|r| !sub.wants(&r.name));
        }
        t.nacked = false;
        t.acked_version = Some(f.version.clone());
        if clusters {
            self.recent_eds_names = f
                .upserts
                .iter()
                .filter_map(|r| r.eds_name.clone())
                .collect();
        }
        let endpoints = endpoints_sub(&self.types);
        let unasked: Vec<String> = fresh
            .into_iter()
            .filter(|n| !endpoints.is_some_and(|s| s.wants(n)))
            .collect();
        self.uncovered_eds_names.extend(unasked);
        Some(Answer::Ack {
            version: f.version,
            generation: f.generation,
        })
    }

    /// Types resumed without sending since the last call.
    pub fn take_resumed(&mut self) -> Vec<Resumed> {
        std::mem::take(&mut self.resumed)
    }

    /// The endpoint subscription changed (from one whose wildcard was `was_wildcard`, by `added`
    /// and `removed` names): which held clusters' endpoint names it leaves out follows.
    fn endpoints_resubscribed(&mut self, was_wildcard: bool, added: &[String], removed: &[String]) {
        let Some(sub) = endpoints_sub(&self.types) else {
            return;
        };
        if sub.wildcard {
            self.uncovered_eds_names.clear();
        } else if was_wildcard {
            self.uncovered_eds_names = uncovered(&self.acked_eds_names, Some(sub));
        } else {
            for n in added {
                self.uncovered_eds_names.remove(n);
            }
            for n in removed {
                if self.acked_eds_names.contains_key(n) {
                    self.uncovered_eds_names.insert(n.clone());
                }
            }
        }
    }

    /// Whether the stage may move on.
    fn gate_open(&self) -> bool {
        let settled = |t: &str| self.types.get(t).is_none_or(TypeState::settled);
        let in_sync = |t: &str| self.types.get(t).is_none_or(TypeState::in_sync);
        match self.stage {
            Stage::Warm => {
                // Envoy ACKs clusters before their endpoints arrive; a route to a cluster still
                // warming answers 503, so every EDS cluster the client holds must have its endpoints.
                let endpoints = self
                    .types
                    .get(type_url::ENDPOINT)
                    .is_none_or(|t| t.settled() && self.uncovered_eds_names.is_empty());
                settled(type_url::CLUSTER) && settled(type_url::SECRET) && endpoints
            }
            Stage::Listeners => settled(type_url::LISTENER),
            Stage::Routes => in_sync(type_url::LISTENER) && in_sync(type_url::ROUTE),
            Stage::Done => false,
        }
    }

    /// Every update due now, moving through the stages as far as the client's answers allow.
    pub fn step(&mut self) -> Vec<Update> {
        let mut out = Vec::new();
        if self.target.generation == 0 {
            // Nothing built yet (the source is still syncing): an empty answer would make Envoy drop
            // the configuration it has. It gets the first complete one instead.
            return out;
        }
        loop {
            for type_url in type_url::ALL {
                if let Some(u) = self.next_update(type_url) {
                    out.push(u);
                }
            }
            if std::mem::take(&mut self.recount_uncovered) {
                self.uncovered_eds_names =
                    uncovered(&self.acked_eds_names, endpoints_sub(&self.types));
            }
            if !self.gate_open() {
                break;
            }
            self.stage = match self.stage {
                Stage::Warm => Stage::Listeners,
                Stage::Listeners => Stage::Routes,
                Stage::Routes | Stage::Done => Stage::Done,
            };
        }
        out
    }

    fn next_update(&mut self, type_url: &'static str) -> Option<Update> {
        let stage = self.stage;
        let target = Arc::clone(&self.target);
        let t = self.types.get_mut(type_url)?;
        if t.inflight.is_some() {
            return None;
        }
        let snapshot = target.all(type_url).cloned().unwrap_or_default();
        if let Some(claimed) = t.claimed_version.take() {
            t.refresh_wanted(&snapshot);
            if t.wanted_version.text() == claimed {
                t.held = t.wanted.clone();
                t.sent_version = Some(claimed.clone());
                t.acked_version = Some(claimed.clone());
                self.resumed.push(Resumed {
                    type_url,
                    version: claimed,
                    generation: target.generation,
                });
                if type_url == type_url::CLUSTER {
                    self.acked_eds_names = eds_names(&t.held);
                    self.recount_uncovered = true;
                }
            }
        }
        let inputs = (
            target.shared(type_url).cloned(),
            phase(type_url, stage),
            t.epoch,
        );
        let same_map = |q: &Option<Arc<TypeMap>>| match (q, &inputs.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if t.quiet
            .as_ref()
            .is_some_and(|q| same_map(&q.0) && q.1 == inputs.1 && q.2 == inputs.2)
        {
            return None;
        }
        match type_url {
            type_url::LISTENER if stage < Stage::Listeners => return None,
            type_url::ROUTE if stage < Stage::Routes => return None,
            _ => {}
        }
        t.refresh_wanted(&snapshot);
        let Desired {
            state,
            version,
            mut upserts,
            removals,
        } = desired(t, keeps(type_url) && stage < Stage::Done);
        if t.resend_all {
            upserts = state.values().cloned().collect();
        } else if !t.resend.is_empty() {
            let again = t
                .resend
                .iter()
                .filter_map(|n| state.get(n))
                .filter(|r| upserts.iter().all(|u| u.name != r.name));
            upserts.extend(again.cloned().collect::<Vec<_>>());
            upserts.sort_by(|a, b| a.name.cmp(&b.name));
        }
        // What the client holds, unchanged, but as `state`'s entries where they are equal (a delta
        // client's initial versions are known by hash only: this keeps the bodies) and sharing
        // `state`'s structure, so the next diff between the two skips it.
        t.held = rebase(&state, &t.held, &upserts, &removals);
        let forced = t.resend_all || !t.resend.is_empty();
        t.resend.clear();
        t.resend_all = false;
        let first = t.sent_version.is_none();
        if upserts.is_empty() && removals.is_empty() && !first && !forced {
            t.quiet = Some(inputs);
            let resumed = std::mem::take(&mut t.initial);
            if resumed || t.sent_version != t.acked_version {
                // Nothing to send and the client holds what is wanted: a reconnecting delta client
                // whose initial versions are current, or one that rejected the last response and
                // holds what is wanted now. In sync, which is as good as an ACK of this generation
                // (a NACK bisection waits for one); the rejected content is no longer the last
                // word, so if it is wanted again later it is sent again.
                t.sent_version.clone_from(&t.acked_version);
                t.rejected_version = None;
                if let Some(version) = t.acked_version.clone() {
                    self.resumed.push(Resumed {
                        type_url,
                        version,
                        generation: target.generation,
                    });
                }
            }
            return None;
        }
        let version = version.text();
        if !forced && t.rejected_version.as_deref() == Some(version.as_str()) {
            return None;
        }
        t.initial = false;
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        t.last_nonce = nonce.clone();
        t.sent_version = Some(version.clone());
        t.rejected_version = None;
        t.nacked = false;
        t.inflight = Some(InFlight {
            nonce: nonce.clone(),
            version: version.clone(),
            generation: target.generation,
            upserts: upserts.clone(),
            removals: removals.clone(),
            state: state.clone(),
            base: t.held.clone(),
            sub_epoch: t.sub_epoch,
        });
        Some(Update {
            type_url,
            nonce,
            version,
            generation: target.generation,
            upserts,
            removals,
            state,
        })
    }
}

/// What a type should hold now, and how the client gets there from what it holds.
struct Desired {
    /// The snapshot's resources the subscription asks for, and (make before break) what the client
    /// holds besides while that is kept.
    state: TypeMap,
    version: Version,
    /// New to the client or changed, in name order.
    upserts: Vec<Arc<Resource>>,
    /// Held, and not in `state`.
    removals: Vec<String>,
}

/// From the diff of what `t` holds and what it wants, which skips what the two share: `keep`, what
/// the client holds and is not wanted stays (make before break) rather than being removed.
fn desired(t: &TypeState, keep: bool) -> Desired {
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    let mut kept = Vec::new();
    for item in t.held.diff(&t.wanted) {
        match item {
            // Resources compare by name and content hash: an update is a changed resource.
            DiffItem::Add(_, r) | DiffItem::Update { new: (_, r), .. } => {
                upserts.push(Arc::clone(r));
            }
            DiffItem::Remove(name, r) if keep => kept.push((name.clone(), Arc::clone(r))),
            DiffItem::Remove(name, _) => removals.push(name.clone()),
        }
    }
    let mut state = t.wanted.clone();
    let mut version = t.wanted_version;
    for (name, r) in kept {
        version.toggle(&r);
        state.insert(name, r);
    }
    Desired {
        state,
        version,
        upserts,
        removals,
    }
}

/// `held`'s content on `state`'s structure: `state` with the upserts undone and the removals put
/// back. O(changes), where copying `held` entry by entry would be O(resources).
fn rebase(
    state: &TypeMap,
    held: &TypeMap,
    upserts: &[Arc<Resource>],
    removals: &[String],
) -> TypeMap {
    let mut out = state.clone();
    for r in upserts {
        match held.get(&r.name) {
            // Sent again although held: held as it is in `state`.
            Some(h) if h.hash == r.hash => {}
            Some(h) => {
                out.insert(r.name.clone(), Arc::clone(h));
            }
            None => {
                out.remove(&r.name);
            }
        }
    }
    for n in removals {
        if let Some(h) = held.get(n) {
            out.insert(n.clone(), Arc::clone(h));
        }
    }
    out
}

/// Whether what the client holds of the type stays until the stage is Done (make before break).
fn keeps(type_url: &str) -> bool {
    matches!(
        type_url,
        type_url::CLUSTER | type_url::ENDPOINT | type_url::SECRET
    )
}

/// What of the stage decides a type's desired content: whether listeners or routes may go out yet,
/// and for clusters, endpoints and secrets whether what the client holds is still kept.
fn phase(type_url: &str, stage: Stage) -> bool {
    match type_url {
        type_url::LISTENER => stage >= Stage::Listeners,
        type_url::ROUTE => stage >= Stage::Routes,
        _ => stage == Stage::Done,
    }
}

/// How many of `held`'s clusters read each EDS name.
fn eds_names(held: &TypeMap) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for n in held.values().filter_map(|r| r.eds_name.as_ref()) {
        *names.entry(n.clone()).or_default() += 1;
    }
    names
}

/// One cluster reading `name` is gone; with the last one, the name is no longer `uncovered` either.
fn forget(
    names: &mut BTreeMap<String, usize>,
    uncovered: &mut BTreeSet<String>,
    name: Option<&String>,
) {
    let Some(name) = name else { return };
    if let Some(count) = names.get_mut(name) {
        *count -= 1;
        if *count == 0 {
            names.remove(name);
            uncovered.remove(name);
        }
    }
}

/// The endpoint subscription, if the client asked for endpoints.
fn endpoints_sub<'a>(types: &'a BTreeMap<&'static str, TypeState>) -> Option<&'a Subscription> {
    types.get(type_url::ENDPOINT).map(|t| &t.sub)
}

/// The names in `acked` that `endpoints` does not ask for (all of them without a subscription).
fn uncovered(
    acked: &BTreeMap<String, usize>,
    endpoints: Option<&Subscription>,
) -> BTreeSet<String> {
    acked
        .keys()
        .filter(|n| !endpoints.is_some_and(|s| s.wants(n)))
        .cloned()
        .collect()
}

/// A resource the client holds, known only by name and version (a delta client's initial versions).
fn placeholder(name: &str, version: &str) -> Arc<Resource> {
    Arc::new(Resource::hashed(
        name.to_string(),
        Vec::new(),
        ContentHash::of_version(version),
        None,
    ))
}

#[cfg(test)]
#[path = "sequence_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sequence_reference.rs"]
mod reference;

#[cfg(test)]
#[path = "sequence_proptests.rs"]
mod proptests;
