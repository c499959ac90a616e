//! Per-stream cost of one configuration change: what `Sequence` (the state every ADS stream keeps)
//! does to carry one changed cluster, its endpoints and the route to a client that holds N clusters
//! and N ClusterLoadAssignments. Times `retarget`, every `step` and the ACK of every update until
//! the client is in sync again (Warm → Listeners → Routes → Done), in both ADS variants. Writes a
//! Markdown table.
//!
//! The cache update itself is not timed (the rebuild bench covers it); this is the work each
//! connected Envoy costs on every change.
//!
//! `cargo bench --bench sequence` (release build; `-- --quick` for CI's small run, `--sizes
//! 1000,10000` for others). Figures go in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    config_source, AggregatedConfigSource, ConfigSource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use isobar::xds::cache::{CacheDiff, XdsCache};
use isobar::xds::sequence::Sequence;
use isobar::xds::type_url;

#[path = "common/allocator.rs"]
mod allocator;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/pure.rs"]
mod pure;
use pure::median;

/// An EDS cluster named `name`; `round` varies its content.
fn cluster(name: &str, round: usize) -> Any {
    let c = Cluster {
        name: name.into(),
        alt_stat_name: format!("{name}-{round}"),
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

/// A resource whose body is `content` (the sequence never decodes anything but clusters).
fn opaque(type_url: &str, content: String) -> Any {
    Any {
        type_url: type_url.into(),
        value: content.into_bytes(),
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// N clusters and assignments, one listener, one route configuration.
fn populate(cache: &XdsCache, n: usize) {
    let mut diff = CacheDiff::default();
    for name in names(n) {
        diff.upsert(type_url::CLUSTER, name.clone(), cluster(&name, 0));
        let cla = opaque(type_url::ENDPOINT, format!("{name}-0"));
        diff.upsert(type_url::ENDPOINT, name, cla);
    }
    let listener = opaque(type_url::LISTENER, "http".into());
    diff.upsert(type_url::LISTENER, "http".into(), listener);
    diff.upsert(
        type_url::ROUTE,
        "http".into(),
        opaque(type_url::ROUTE, "0".into()),
    );
    assert!(cache.apply(diff));
}

/// One changed cluster, its assignment and the route.
fn change(cache: &XdsCache, n: usize, round: usize) {
    let name = format!("c{}", round % n);
    let mut diff = CacheDiff::default();
    diff.upsert(type_url::CLUSTER, name.clone(), cluster(&name, round));
    let cla = opaque(type_url::ENDPOINT, format!("{name}-{round}"));
    diff.upsert(type_url::ENDPOINT, name, cla);
    let route = opaque(type_url::ROUTE, round.to_string());
    diff.upsert(type_url::ROUTE, "http".into(), route);
    assert!(cache.apply(diff));
}

/// Steps and ACKs everything until nothing is due; returns how many updates went out.
fn settle(seq: &mut Sequence) -> usize {
    let mut sent = 0;
    loop {
        let updates = seq.step();
        if updates.is_empty() {
            return sent;
        }
        for u in &updates {
            assert!(seq.answer(u.type_url, &u.nonce, false).is_some());
        }
        sent += updates.len();
    }
}

/// A client of `n` clusters and assignments, in sync.
fn client(cache: &XdsCache, n: usize, delta: bool) -> Sequence {
    let mut seq = Sequence::new(cache.current());
    let eds = names(n);
    let none = BTreeMap::new();
    let requests: [(&'static str, Vec<String>); 4] = [
        (type_url::CLUSTER, vec![]),
        (type_url::ENDPOINT, eds),
        (type_url::LISTENER, vec![]),
        (type_url::ROUTE, vec!["http".into()]),
    ];
    for (t, names) in requests {
        if delta {
            seq.delta_request(t, &names, &[], &none);
        } else {
            seq.sotw_request(t, names, "", false);
        }
    }
    settle(&mut seq);
    seq
}

fn main() {
    let sizes = cli::sizes_only(
        "One change carried to one connected client, the per-stream sequence's work (default 1000,10000 clusters): a Markdown table.",
    );
    let quick = sizes.common.quick;
    let sizes = sizes.or(&[1_000, 10_000], &[100]);
    let rounds = if quick { 5 } else { 101 };
    println!("| clusters + assignments | ADS | updates per change | per change (median) | per step (median) |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        for delta in [false, true] {
            let cache = XdsCache::new();
            populate(&cache, n);
            let mut seq = client(&cache, n, delta);
            let (mut per_change, mut per_step) = (Vec::new(), Vec::new());
            let mut sent = 0;
            for round in 1..=rounds {
                change(&cache, n, round);
                let snapshot = cache.current();
                let t0 = Instant::now();
                seq.retarget(snapshot);
                let mut steps = 0u32;
                sent = 0;
                loop {
                    steps += 1;
                    let updates = seq.step();
                    if updates.is_empty() {
                        break;
                    }
                    for u in &updates {
                        assert!(seq.answer(u.type_url, &u.nonce, false).is_some());
                    }
                    sent += updates.len();
                }
                let took = t0.elapsed();
                per_change.push(took);
                per_step.push(took / steps);
            }
            assert_eq!(sent, 3, "cluster, assignment and route");
            let variant = if delta { "delta" } else { "state of the world" };
            println!(
                "| {n} | {variant} | {sent} | {:.1} µs | {:.1} µs |",
                median(per_change).as_secs_f64() * 1e6,
                median(per_step).as_secs_f64() * 1e6,
            );
        }
    }
}
