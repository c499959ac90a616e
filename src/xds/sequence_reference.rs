//! The sequence as it was before it was made incremental: every step rebuilds what each type wants
//! from the whole snapshot and compares it with everything the client holds. Kept for the tests
//! only, as the reference the incremental [`super::Sequence`] must agree with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::super::cache::{self, version_of, CacheSnapshot, Resource};
use super::super::content_hash::ContentHash;
use super::super::type_url;
use super::{Answer, Resumed, Stage, Subscription};

/// What a type holds, as a plain map.
type TypeMap = BTreeMap<String, Arc<Resource>>;

/// A response on its way to the client, awaiting its answer.
#[derive(Debug)]
struct InFlight {
    nonce: String,
    version: String,
    generation: u64,
    upserts: Vec<Arc<Resource>>,
    removals: Vec<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    sub: Subscription,
    /// What the client holds, as far as its answers tell.
    held: TypeMap,
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
    quiet: Option<(Option<Arc<cache::TypeMap>>, bool, u64)>,
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
    /// Everything of this type the client holds after applying the update.
    pub state: Vec<Arc<Resource>>,
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
        if sub != t.sub {
            t.held.retain(|n, _| sub.wants(n));
            t.sub = sub;
            t.sub_epoch += 1;
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
        if first {
            // An empty first subscription is the legacy wildcard.
            t.sub.wildcard = subscribe.is_empty();
            for (name, version) in initial_versions {
                t.held.insert(name.clone(), placeholder(name, version));
            }
            if !initial_versions.is_empty() {
                let v = version_of(t.held.values());
                t.sent_version = Some(v.clone());
                t.acked_version = Some(v);
                t.initial = true;
            }
        }
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
        if first || !unsubscribe.is_empty() {
            let TypeState {
                sub, held, resend, ..
            } = t;
            held.retain(|n, _| sub.wants(n));
            resend.retain(|n| sub.wants(n));
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
        for n in &f.removals {
            if let Some(old) = t.held.remove(n) {
                if clusters {
                    forget(&mut self.acked_eds_names, old.eds_name.as_ref());
                }
            }
        }
        for r in &f.upserts {
            if let Some(old) = t.held.insert(r.name.clone(), Arc::clone(r)) {
                if clusters {
                    forget(&mut self.acked_eds_names, old.eds_name.as_ref());
                }
            }
            if let (true, Some(n)) = (clusters, r.eds_name.as_ref()) {
                *self.acked_eds_names.entry(n.clone()).or_default() += 1;
            }
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
        Some(Answer::Ack {
            version: f.version,
            generation: f.generation,
        })
    }

    /// Types resumed without sending since the last call.
    pub fn take_resumed(&mut self) -> Vec<Resumed> {
        std::mem::take(&mut self.resumed)
    }

    /// Whether the stage may move on.
    fn gate_open(&self) -> bool {
        let settled = |t: &str| self.types.get(t).is_none_or(TypeState::settled);
        let in_sync = |t: &str| self.types.get(t).is_none_or(TypeState::in_sync);
        match self.stage {
            Stage::Warm => {
                // Envoy ACKs clusters before their endpoints arrive; a route to a cluster still
                // warming answers 503, so every EDS cluster the client holds must have its endpoints.
                let endpoints = self.types.get(type_url::ENDPOINT).is_none_or(|t| {
                    t.settled() && self.acked_eds_names.keys().all(|n| t.sub.wants(n))
                });
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
        if let Some(claimed) = t.claimed_version.take() {
            let current: TypeMap = wanted(&target, type_url, &t.sub);
            if version_of(current.values()) == claimed {
                t.held = current;
                t.sent_version = Some(claimed.clone());
                t.acked_version = Some(claimed.clone());
                self.resumed.push(Resumed {
                    type_url,
                    version: claimed,
                    generation: target.generation,
                });
                if type_url == type_url::CLUSTER {
                    self.acked_eds_names = eds_names(&t.held);
                }
            }
        }
        let inputs = (
            target.shared(type_url).cloned(),
            phase(type_url, stage),
            t.epoch,
        );
        let same_map = |q: &Option<Arc<cache::TypeMap>>| match (q, &inputs.0) {
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
        let desired = desired(type_url, t, &target, stage)?;
        let mut upserts = Vec::new();
        for (name, r) in &desired {
            match t.held.get(name) {
                Some(h) if h.hash == r.hash => {
                    if !Arc::ptr_eq(h, r) {
                        // Known by hash only (a delta client's initial versions): keep the body.
                        t.held.insert(name.clone(), Arc::clone(r));
                    }
                    if t.resend_all || t.resend.contains(name) {
                        upserts.push(Arc::clone(r));
                    }
                }
                _ => upserts.push(Arc::clone(r)),
            }
        }
        // State of the world can't name removals of routes, endpoints or secrets (the client drops
        // them when it stops asking); they still leave what the client is taken to hold, so the
        // version is the one of what is wanted and exists.
        let removals: Vec<String> = t
            .held
            .keys()
            .filter(|n| !desired.contains_key(*n))
            .cloned()
            .collect();
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
        let mut state = t.held.clone();
        for n in &removals {
            state.remove(n);
        }
        for r in &upserts {
            state.insert(r.name.clone(), Arc::clone(r));
        }
        let version = version_of(state.values());
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
        });
        Some(Update {
            type_url,
            nonce,
            version,
            generation: target.generation,
            upserts,
            removals,
            state: state.into_values().collect(),
        })
    }
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

/// One cluster reading `name` is gone.
fn forget(names: &mut BTreeMap<String, usize>, name: Option<&String>) {
    let Some(name) = name else { return };
    if let Some(count) = names.get_mut(name) {
        *count -= 1;
        if *count == 0 {
            names.remove(name);
        }
    }
}

/// The snapshot's resources of `type_url` that `sub` asks for.
fn wanted(snapshot: &CacheSnapshot, type_url: &str, sub: &Subscription) -> TypeMap {
    let Some(all) = snapshot.all(type_url) else {
        return TypeMap::new();
    };
    if sub.wildcard {
        return all
            .iter()
            .map(|(n, r)| (n.clone(), Arc::clone(r)))
            .collect();
    }
    sub.names
        .iter()
        .filter_map(|n| all.get(n).map(|r| (n.clone(), Arc::clone(r))))
        .collect()
}

/// The resources `type_url` should hold at `stage`, or `None` while the type waits for an earlier stage.
fn desired(
    type_url: &'static str,
    t: &TypeState,
    snapshot: &CacheSnapshot,
    stage: Stage,
) -> Option<TypeMap> {
    match type_url {
        type_url::LISTENER if stage < Stage::Listeners => return None,
        type_url::ROUTE if stage < Stage::Routes => return None,
        _ => {}
    }
    let mut resources = wanted(snapshot, type_url, &t.sub);
    let keeps = matches!(
        type_url,
        type_url::CLUSTER | type_url::ENDPOINT | type_url::SECRET
    );
    if keeps && stage < Stage::Done {
        // Make before break: what the client holds stays until nothing uses it.
        for (name, r) in &t.held {
            resources
                .entry(name.clone())
                .or_insert_with(|| Arc::clone(r));
        }
    }
    Some(resources)
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
