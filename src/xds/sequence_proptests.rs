//! The incremental sequence against the straightforward one it replaced ([`super::reference`]):
//! after any run of snapshots, subscription changes and answers, both send the same updates,
//! answer the same way and report the same resumptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    config_source, AggregatedConfigSource, ConfigSource,
};
use envoy_types::pb::google::protobuf::Any;
use proptest::prelude::*;
use prost::Message;

use super::reference;
use super::{Sequence, Update};
use crate::xds::cache::{version_of, Resource, XdsCache};
use crate::xds::translate::Named;
use crate::xds::type_url;

/// Names every type draws from; index `NAMES.len()` stands for the wildcard `*`.
const NAMES: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];

/// One thing that happens to a stream.
#[derive(Debug, Clone)]
enum Op {
    /// A new configuration: per type, per name, absent or one of a few contents.
    Config(Vec<Vec<Option<u8>>>),
    /// A request: for state of the world, `names` (none: wildcard), the version it claims
    /// (0 none, 1 the current one, 2 a stale one) and whether it asks again; for delta, `names`
    /// subscribed, `unsub` unsubscribed, and initial versions (current or not).
    Request {
        t: usize,
        names: Vec<usize>,
        unsub: Vec<usize>,
        claim: u8,
        again: bool,
        initial: Vec<(usize, bool)>,
    },
    /// The client answers the response in flight (or, `stale`, the one before it).
    Answer {
        t: usize,
        nack: bool,
        stale: bool,
    },
    Step,
}

fn op() -> impl Strategy<Value = Op> {
    let contents = prop::collection::vec(
        prop::collection::vec(prop::option::of(0u8..3), NAMES.len()),
        type_url::ALL.len(),
    );
    let names = || prop::collection::vec(0..=NAMES.len(), 0..4);
    prop_oneof![
        2 => contents.prop_map(Op::Config),
        3 => (
            0..type_url::ALL.len(),
            names(),
            names(),
            0u8..3,
            any::<bool>(),
            prop::collection::vec((0..NAMES.len(), any::<bool>()), 0..3),
        )
            .prop_map(|(t, names, unsub, claim, again, initial)| Op::Request {
                t,
                names,
                unsub,
                claim,
                again,
                initial
            }),
        4 => (0..type_url::ALL.len(), prop::bool::weighted(0.2), prop::bool::weighted(0.1))
            .prop_map(|(t, nack, stale)| Op::Answer { t, nack, stale }),
        3 => Just(Op::Step),
    ]
}

/// A cluster reading its endpoints over EDS under its own name; `content` varies the body.
fn cluster(name: &str, content: u8) -> Any {
    let c = Cluster {
        name: name.into(),
        alt_stat_name: content.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: name.into(),
        }),
        ..Default::default()
    };
    Any {
        type_url: type_url::CLUSTER.into(),
        value: c.encode_to_vec(),
    }
}

fn config(contents: &[Vec<Option<u8>>]) -> Vec<(&'static str, Named)> {
    type_url::ALL
        .iter()
        .zip(contents)
        .map(|(&t, per_name)| {
            let named = NAMES
                .iter()
                .zip(per_name)
                .filter_map(|(n, c)| c.map(|c| (n, c)))
                .map(|(n, c)| {
                    let body = if t == type_url::CLUSTER {
                        cluster(n, c)
                    } else {
                        Any {
                            type_url: t.into(),
                            value: vec![c],
                        }
                    };
                    (n.to_string(), body)
                })
                .collect();
            (t, named)
        })
        .collect()
}

/// What an update says, bodies included.
type Seen = (
    &'static str,
    String,
    String,
    u64,
    Vec<(String, String, Vec<u8>)>,
    Vec<String>,
    Vec<(String, String, Vec<u8>)>,
);

fn seen<'a>(
    resources: impl IntoIterator<Item = &'a Arc<Resource>>,
) -> Vec<(String, String, Vec<u8>)> {
    resources
        .into_iter()
        .map(|r| (r.name.clone(), r.hash.to_string(), r.value.clone()))
        .collect()
}

fn incremental(u: &Update) -> Seen {
    (
        u.type_url,
        u.nonce.clone(),
        u.version.clone(),
        u.generation,
        seen(&u.upserts),
        u.removals.clone(),
        seen(u.state.values()),
    )
}

fn straightforward(u: &reference::Update) -> Seen {
    (
        u.type_url,
        u.nonce.clone(),
        u.version.clone(),
        u.generation,
        seen(&u.upserts),
        u.removals.clone(),
        seen(&u.state),
    )
}

fn name(i: usize) -> String {
    NAMES.get(i).map_or("*".to_string(), |n| n.to_string())
}

/// Plays `ops` to both sequences, comparing everything they say.
fn agree(delta: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let cache = XdsCache::new();
    let mut new = Sequence::new(cache.current());
    let mut old = reference::Sequence::new(cache.current());
    // The nonces of the last two responses of each type.
    let mut nonces: BTreeMap<&str, (Option<String>, Option<String>)> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Config(contents) => {
                cache.set(config(contents));
                new.retarget(cache.current());
                old.retarget(cache.current());
            }
            Op::Request {
                t,
                names,
                unsub,
                claim,
                again,
                initial,
            } => {
                let t = type_url::ALL[*t];
                if delta {
                    let subscribe: Vec<String> = names.iter().map(|&i| name(i)).collect();
                    let unsubscribe: Vec<String> = unsub.iter().map(|&i| name(i)).collect();
                    let current = cache.current();
                    let initial: BTreeMap<String, String> = initial
                        .iter()
                        .map(|&(i, fresh)| {
                            let hash = current
                                .get(t, NAMES[i])
                                .filter(|_| fresh)
                                .map_or("outdated".to_string(), |r| r.hash.to_string());
                            (name(i), hash)
                        })
                        .collect();
                    new.delta_request(t, &subscribe, &unsubscribe, &initial);
                    old.delta_request(t, &subscribe, &unsubscribe, &initial);
                } else {
                    let mut names: Vec<String> = names
                        .iter()
                        .filter(|&&i| i < NAMES.len())
                        .map(|&i| name(i))
                        .collect();
                    names.sort();
                    names.dedup();
                    let version = match claim {
                        0 => String::new(),
                        1 => version_of(cache.current().resources(t, &names).iter()),
                        _ => "stale".to_string(),
                    };
                    new.sotw_request(t, names.clone(), &version, *again);
                    old.sotw_request(t, names, &version, *again);
                }
                prop_assert_eq!(new.names_if_changed(t), old.names_if_changed(t), "op {}", i);
            }
            Op::Answer { t, nack, stale } => {
                let t = type_url::ALL[*t];
                let (last, before) = nonces.get(t).cloned().unwrap_or_default();
                let Some(nonce) = (if *stale { before } else { last }) else {
                    continue;
                };
                let a = new.answer(t, &nonce, *nack);
                let b = old.answer(t, &nonce, *nack);
                prop_assert_eq!(a, b, "op {}", i);
            }
            Op::Step => {
                let a: Vec<Seen> = new.step().iter().map(incremental).collect();
                let b: Vec<Seen> = old.step().iter().map(straightforward).collect();
                prop_assert_eq!(&a, &b, "op {}", i);
                for u in a {
                    let entry = nonces.entry(u.0).or_default();
                    entry.1 = entry.0.replace(u.1);
                }
            }
        }
        prop_assert_eq!(new.take_resumed(), old.take_resumed(), "op {}", i);
        for t in type_url::ALL {
            prop_assert_eq!(new.last_nonce(t), old.last_nonce(t), "op {} {}", i, t);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::proptest_cases::or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_incremental_sequence_sends_what_the_straightforward_one_does(
        delta in any::<bool>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        agree(delta, &ops)?;
    }
}

#[test]
fn a_version_follows_changes_as_it_would_be_computed_afresh() {
    use crate::xds::cache::Version;
    let r = |n: &str, c: u8| {
        Arc::new(Resource::new(
            n.into(),
            Any {
                type_url: type_url::ROUTE.into(),
                value: vec![c],
            },
        ))
    };
    let (a1, a2, b) = (r("a", 1), r("a", 2), r("b", 1));
    let mut v = Version::of([&a1, &b]);
    v.toggle(&a1);
    v.toggle(&a2);
    assert_eq!(v, Version::of([&a2, &b]), "a replaced");
    v.toggle(&b);
    assert_eq!(v, Version::of([&a2]), "b removed");
    assert_ne!(Version::of([&a1]), Version::of([&a2]), "content counts");
    assert_ne!(Version::of([&a1]), Version::of([&r("c", 1)]), "names count");
    assert_eq!(
        Version::of([&a1, &b]),
        Version::of([&b, &a1]),
        "order does not"
    );
}
