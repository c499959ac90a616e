//! The sequence without a server: synthetic resources, the client's answers played by hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    config_source, AggregatedConfigSource, ConfigSource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::*;
use crate::xds::delta::Delta;
use crate::xds::sotw::Sotw;
use crate::xds::stream::Wire;

/// Which protocol a test client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Sotw,
    Delta,
}
use crate::xds::cache::{version_of, XdsCache};
use crate::xds::translate::Named;

fn cluster(name: &str) -> (String, Any) {
    let c = Cluster {
        name: name.into(),
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
    (
        name.into(),
        Any {
            type_url: type_url::CLUSTER.into(),
            value: c.encode_to_vec(),
        },
    )
}

fn body(type_url: &str, name: &str, content: &str) -> (String, Any) {
    (
        name.into(),
        Any {
            type_url: type_url.into(),
            value: content.as_bytes().to_vec(),
        },
    )
}

/// A configuration: clusters (each with endpoints `content`), one listener, one route config
/// pointing at `route_to`.
fn config(clusters: &[(&str, &str)], route_to: &str) -> Vec<(&'static str, Named)> {
    vec![
        (
            type_url::CLUSTER,
            clusters.iter().map(|(n, _)| cluster(n)).collect(),
        ),
        (
            type_url::ENDPOINT,
            clusters
                .iter()
                .map(|(n, e)| body(type_url::ENDPOINT, n, e))
                .collect(),
        ),
        (
            type_url::LISTENER,
            vec![body(type_url::LISTENER, "http", "listener")],
        ),
        (
            type_url::ROUTE,
            vec![body(type_url::ROUTE, "http", route_to)],
        ),
    ]
}

fn names<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> Vec<&'a str> {
    resources.into_iter().map(|r| r.name.as_str()).collect()
}

fn only(updates: Vec<Update>, type_url: &str) -> Update {
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let u = updates.into_iter().next().unwrap();
    assert_eq!(u.type_url, type_url);
    u
}

fn ack(seq: &mut Sequence, u: &Update) {
    assert!(
        matches!(
            seq.answer(u.type_url, &u.nonce, false),
            Some(Answer::Ack { .. })
        ),
        "{u:?}"
    );
}

/// The one update due, for `type_url`, ACKed.
fn step_ack(seq: &mut Sequence, type_url: &str) -> Update {
    let u = only(seq.step(), type_url);
    ack(seq, &u);
    u
}

/// A state-of-the-world client that asked for everything and ACKed it.
fn sotw_synced(cache: &XdsCache, eds: &[&str]) -> Sequence {
    let mut seq = Sequence::new(cache.current());
    seq.sotw_request(type_url::CLUSTER, vec![], "", false);
    step_ack(&mut seq, type_url::CLUSTER);
    let eds: Vec<String> = eds.iter().map(|s| s.to_string()).collect();
    seq.sotw_request(type_url::ENDPOINT, eds, "", false);
    step_ack(&mut seq, type_url::ENDPOINT);
    seq.sotw_request(type_url::LISTENER, vec![], "", false);
    step_ack(&mut seq, type_url::LISTENER);
    seq.sotw_request(type_url::ROUTE, vec!["http".into()], "", false);
    step_ack(&mut seq, type_url::ROUTE);
    assert!(seq.step().is_empty());
    seq
}

#[test]
fn sotw_an_endpoint_change_sends_only_that_assignment_versioned_as_the_whole() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1"), ("b", "1")], "a"));
    let mut seq = sotw_synced(&cache, &["a", "b"]);
    cache.set(config(&[("a", "1"), ("b", "2")], "a"));
    seq.retarget(cache.current());
    let u = only(seq.step(), type_url::ENDPOINT);
    assert_eq!(names(&u.upserts), ["b"]);
    assert_eq!(names(u.state.values()), ["a", "b"]);
    assert_eq!(
        u.version,
        version_of(cache.current().resources(type_url::ENDPOINT, &[]).iter())
    );
    ack(&mut seq, &u);
    assert!(seq.step().is_empty(), "nothing else changed");
}

#[test]
fn one_update_in_flight_per_type_and_the_latest_snapshot_wins() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1")], "a"));
    let mut seq = sotw_synced(&cache, &["a"]);
    cache.set(config(&[("a", "2")], "a"));
    seq.retarget(cache.current());
    let first = only(seq.step(), type_url::ENDPOINT);
    for v in ["3", "4", "5"] {
        cache.set(config(&[("a", v)], "a"));
        seq.retarget(cache.current());
        assert!(
            seq.step().is_empty(),
            "nothing while {first:?} is unanswered"
        );
    }
    ack(&mut seq, &first);
    let latest = only(seq.step(), type_url::ENDPOINT);
    assert_eq!(
        latest.upserts[0].hash,
        cache.current().get(type_url::ENDPOINT, "a").unwrap().hash
    );
}

#[test]
fn a_route_flip_is_made_before_it_is_broken_in_both_protocols() {
    for protocol in [Protocol::Sotw, Protocol::Delta] {
        let cache = XdsCache::new();
        cache.set(config(&[("a", "1")], "a"));
        let mut seq = Sequence::new(cache.current());
        let request = |seq: &mut Sequence, t: &'static str, names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            match protocol {
                Protocol::Sotw => seq.sotw_request(t, names, "", false),
                Protocol::Delta => seq.delta_request(t, &names, &[], &BTreeMap::new()),
            }
        };
        request(&mut seq, type_url::CLUSTER, &[]);
        step_ack(&mut seq, type_url::CLUSTER);
        request(&mut seq, type_url::ENDPOINT, &["a"]);
        step_ack(&mut seq, type_url::ENDPOINT);
        request(&mut seq, type_url::LISTENER, &[]);
        step_ack(&mut seq, type_url::LISTENER);
        request(&mut seq, type_url::ROUTE, &["http"]);
        step_ack(&mut seq, type_url::ROUTE);

        cache.set(config(&[("b", "1")], "b"));
        seq.retarget(cache.current());
        // 1. The new cluster, the old one kept.
        let cds = only(seq.step(), type_url::CLUSTER);
        assert_eq!(names(&cds.upserts), ["b"], "{protocol:?}");
        assert_eq!(names(cds.state.values()), ["a", "b"], "{protocol:?}");
        assert!(cds.removals.is_empty());
        ack(&mut seq, &cds);
        assert!(
            seq.step().is_empty(),
            "{protocol:?}: no route before b has endpoints"
        );
        // 2. Its endpoints (the client subscribes), then the route.
        match protocol {
            Protocol::Sotw => request(&mut seq, type_url::ENDPOINT, &["a", "b"]),
            Protocol::Delta => request(&mut seq, type_url::ENDPOINT, &["b"]),
        }
        let eds = only(seq.step(), type_url::ENDPOINT);
        assert_eq!(names(&eds.upserts), ["b"]);
        ack(&mut seq, &eds);
        let rds = only(seq.step(), type_url::ROUTE);
        assert_eq!(rds.upserts[0].value, b"b");
        ack(&mut seq, &rds);
        // 3. Only then is a removed.
        let mut rest = seq.step();
        rest.sort_by_key(|u| u.type_url);
        let cds = rest
            .iter()
            .find(|u| u.type_url == type_url::CLUSTER)
            .unwrap();
        assert_eq!(names(cds.state.values()), ["b"], "{protocol:?}");
        assert_eq!(cds.removals, ["a"], "{protocol:?}");
        let eds = rest
            .iter()
            .find(|u| u.type_url == type_url::ENDPOINT)
            .unwrap();
        assert_eq!(eds.removals, ["a"], "{protocol:?}");
        assert_eq!(Delta::encode(eds).removed_resources, ["a"], "delta says so");
        assert!(
            Sotw::encode(eds).resources.is_empty(),
            "SotW can't: the client drops endpoints when it stops asking"
        );
        assert_eq!(
            Sotw::encode(cds).resources.len(),
            1,
            "SotW clusters are sent whole"
        );
    }
}

#[test]
fn sotw_a_client_reconnecting_with_the_current_versions_is_sent_nothing() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1"), ("b", "1")], "a"));
    let snapshot = cache.current();
    let version = |t: &str, names: &[String]| version_of(snapshot.resources(t, names).iter());
    let eds = vec!["a".to_string(), "b".to_string()];
    let mut seq = Sequence::new(cache.current());
    seq.sotw_request(
        type_url::CLUSTER,
        vec![],
        &version(type_url::CLUSTER, &[]),
        false,
    );
    seq.sotw_request(
        type_url::ENDPOINT,
        eds.clone(),
        &version(type_url::ENDPOINT, &eds),
        false,
    );
    seq.sotw_request(
        type_url::LISTENER,
        vec![],
        &version(type_url::LISTENER, &[]),
        false,
    );
    // The route version is stale: only the routes are sent.
    seq.sotw_request(type_url::ROUTE, vec!["http".into()], "stale", false);
    let u = only(seq.step(), type_url::ROUTE);
    assert_eq!(names(&u.upserts), ["http"]);
    let resumed: Vec<&str> = seq.take_resumed().iter().map(|r| r.type_url).collect();
    assert_eq!(
        resumed,
        [type_url::CLUSTER, type_url::ENDPOINT, type_url::LISTENER]
    );
}

#[test]
fn delta_initial_versions_that_match_are_not_sent_and_unknown_names_are_removed() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1"), ("b", "1")], "a"));
    let snapshot = cache.current();
    let hash = |t: &str, n: &str| snapshot.get(t, n).unwrap().hash.to_string();
    let mut seq = Sequence::new(cache.current());
    let initial: BTreeMap<String, String> = [
        ("a".to_string(), hash(type_url::CLUSTER, "a")),
        ("b".to_string(), "outdated".to_string()),
        ("gone".to_string(), "whatever".to_string()),
    ]
    .into();
    seq.delta_request(type_url::CLUSTER, &[], &[], &initial);
    let u = only(seq.step(), type_url::CLUSTER);
    assert_eq!(names(&u.upserts), ["b"], "a is held as it is");
    // Removals of what the client holds and isobar doesn't come once routes are settled (Done).
    assert!(u.removals.is_empty());
    ack(&mut seq, &u);
    let endpoints: BTreeMap<String, String> = [
        ("a".to_string(), hash(type_url::ENDPOINT, "a")),
        ("b".to_string(), hash(type_url::ENDPOINT, "b")),
    ]
    .into();
    seq.delta_request(
        type_url::ENDPOINT,
        &["a".into(), "b".into()],
        &[],
        &endpoints,
    );
    let rest = seq.step();
    let cds = only(rest, type_url::CLUSTER);
    assert!(cds.upserts.is_empty());
    assert_eq!(cds.removals, ["gone"]);
    // The endpoints were all current: nothing sent, and that counts as accepted.
    let resumed: Vec<&str> = seq.take_resumed().iter().map(|r| r.type_url).collect();
    assert_eq!(resumed, [type_url::ENDPOINT]);
}

#[test]
fn delta_unsubscribing_forgets_and_subscribing_again_sends_again() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1")], "a"));
    let mut seq = Sequence::new(cache.current());
    let none = BTreeMap::new();
    seq.delta_request(type_url::ENDPOINT, &["a".into()], &[], &none);
    step_ack(&mut seq, type_url::ENDPOINT);
    seq.delta_request(type_url::ENDPOINT, &[], &["a".into()], &none);
    assert!(
        seq.step().is_empty(),
        "an unsubscribed name is not removed by the server"
    );
    seq.delta_request(type_url::ENDPOINT, &["a".into()], &[], &none);
    let u = only(seq.step(), type_url::ENDPOINT);
    assert_eq!(names(&u.upserts), ["a"]);
    ack(&mut seq, &u);
    // Asked for again while held: sent again.
    seq.delta_request(type_url::ENDPOINT, &["a".into()], &[], &none);
    assert_eq!(names(&only(seq.step(), type_url::ENDPOINT).upserts), ["a"]);
}

#[test]
fn a_rejected_update_is_not_resent_until_the_content_changes() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1")], "a"));
    let mut seq = sotw_synced(&cache, &["a"]);
    cache.set(config(&[("a", "bad")], "a"));
    seq.retarget(cache.current());
    let bad = only(seq.step(), type_url::ENDPOINT);
    let answer = seq.answer(type_url::ENDPOINT, &bad.nonce, true).unwrap();
    assert!(matches!(answer, Answer::Nack { ref names, .. } if names == &["a".to_string()]));
    assert!(seq.step().is_empty(), "the same content is not sent again");
    seq.retarget(cache.current());
    assert!(seq.step().is_empty());
    cache.set(config(&[("a", "good")], "a"));
    seq.retarget(cache.current());
    assert_eq!(names(&only(seq.step(), type_url::ENDPOINT).upserts), ["a"]);
}

#[test]
fn listeners_wait_while_a_held_cluster_has_no_endpoint_watch() {
    let cache = XdsCache::new();
    cache.set(config(&[("a", "1"), ("b", "1")], "a"));
    let mut seq = sotw_synced(&cache, &["a", "b"]);
    // The client stops asking for b's endpoints while it still holds cluster b.
    seq.sotw_request(type_url::ENDPOINT, vec!["a".into()], "", false);
    assert!(seq.step().is_empty());
    cache.set([(
        type_url::LISTENER,
        vec![body(type_url::LISTENER, "http", "listener 2")],
    )]);
    seq.retarget(cache.current());
    assert!(
        seq.step().is_empty(),
        "no listener while cluster b would warm without endpoints"
    );
    seq.sotw_request(type_url::ENDPOINT, vec!["a".into(), "b".into()], "", false);
    let eds = only(seq.step(), type_url::ENDPOINT);
    assert_eq!(names(&eds.upserts), ["b"]);
    ack(&mut seq, &eds);
    let lds = only(seq.step(), type_url::LISTENER);
    assert_eq!(lds.upserts[0].value, b"listener 2");
}
