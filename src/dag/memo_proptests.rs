//! The incremental build against the full one: after any sequence of adds, edits and deletes, a build
//! that reuses its memo gives exactly what a build from nothing gives: DAG, statuses, and the Envoy
//! resources byte for byte.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use proptest::prelude::*;

use super::proptests::world;
use super::*;
use crate::store::{ObjectKey, Objects, Snapshot};

/// The next snapshot as a store would hold it: per object, chosen by `seed`, the previous one (the
/// same shared object: unchanged), the new world's (an edit, an add, or a delete where the new world
/// has none), or a copy of the previous one's content in a new object (an update that changed
/// nothing isobar reads, e.g. a status write).
fn step(previous: &Snapshot, next: &Snapshot, seed: u64) -> Snapshot {
    fn mix<T: Clone>(old: &Objects<T>, new: &Objects<T>, seed: u64) -> Objects<T> {
        let keys: std::collections::BTreeSet<&ObjectKey> = old.keys().chain(new.keys()).collect();
        // Changed in place from the previous map, as a store does: the maps share what is unchanged.
        let mut out = old.clone();
        for key in keys {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (seed, key).hash(&mut h);
            let chosen = match h.finish() % 4 {
                0 | 1 => old.get(key).cloned(),
                2 => new.get(key).cloned(),
                _ => old.get(key).map(|o| Arc::new((**o).clone())),
            };
            match chosen {
                Some(o) => {
                    out.insert(key.clone(), o);
                }
                None => {
                    out.remove(key);
                }
            }
        }
        out
    }
    Snapshot {
        services: mix(&previous.services, &next.services, seed),
        endpoints: mix(&previous.endpoints, &next.endpoints, seed),
        secrets: mix(&previous.secrets, &next.secrets, seed),
        ingresses: mix(&previous.ingresses, &next.ingresses, seed),
        ingress_classes: mix(&previous.ingress_classes, &next.ingress_classes, seed),
        endpoint_slices: mix(&previous.endpoint_slices, &next.endpoint_slices, seed),
        ingress_routes: mix(&previous.ingress_routes, &next.ingress_routes, seed),
        tls_certificate_delegations: mix(
            &previous.tls_certificate_delegations,
            &next.tls_certificate_delegations,
            seed,
        ),
        gateway_classes: mix(&previous.gateway_classes, &next.gateway_classes, seed),
        gateways: mix(&previous.gateways, &next.gateways, seed),
        http_routes: mix(&previous.http_routes, &next.http_routes, seed),
        reference_grants: mix(&previous.reference_grants, &next.reference_grants, seed),
        namespaces: mix(&previous.namespaces, &next.namespaces, seed),
    }
}

/// `world`'s snapshot with endpoints chosen by `seed` for each Service: none, Endpoints, one or two
/// EndpointSlices, or both kinds, on a few addresses (so two worlds often agree on some).
fn with_endpoints(world: &super::proptests::World, seed: u64) -> Snapshot {
    let mut snapshot = world.snapshot();
    let mut yaml = String::new();
    for key in snapshot.services.keys() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, key).hash(&mut h);
        let h = h.finish();
        let ip = format!("10.0.{}.{}", h % 2, (h >> 8) % 2 + 1);
        let (ns, name) = (&key.namespace, &key.name);
        let endpoints = format!(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             subsets: [{{addresses: [{{ip: {ip}}}], ports: [{{name: http, port: 8080}}, {{port: 9000}}]}}]\n---\n"
        );
        let slice = |suffix: &str| {
            format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata: {{name: {name}-{suffix}, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
                 addressType: IPv4\nendpoints: [{{addresses: [{ip}], conditions: {{ready: true}}}}]\n\
                 ports: [{{name: http, port: 8080}}]\n---\n"
            )
        };
        match (h >> 16) % 5 {
            0 => {}
            1 => yaml += &endpoints,
            2 => yaml += &slice("a"),
            3 => yaml += &(slice("a") + &slice("b")),
            _ => yaml += &(endpoints + &slice("b")),
        }
    }
    for o in crate::source::file::parse_manifests("endpoints.yaml", &yaml).expect("parses") {
        snapshot.insert(o);
    }
    snapshot
}

/// A snapshot per world, each after the first a mix of the one before and its world (see [`step`]).
fn mixed_steps(worlds: &[super::proptests::World], seeds: &[u64]) -> Vec<Snapshot> {
    let mut snapshots = vec![with_endpoints(&worlds[0], seeds[0])];
    for (i, world) in worlds.iter().enumerate().skip(1) {
        let next = step(
            &snapshots[i - 1],
            &with_endpoints(world, seeds[i]),
            seeds[i],
        );
        snapshots.push(next);
    }
    snapshots
}

/// Builds each snapshot in turn with one memo and checks it against a build from nothing: the DAG,
/// the statuses, the Gateway API statuses, and the Envoy resources byte for byte.
fn memoised_builds_equal_full_builds(snapshots: &[Snapshot]) -> Result<(), TestCaseError> {
    memoised_builds_equal_full_builds_with(snapshots, &DagOptions::default())
}

/// [`memoised_builds_equal_full_builds`] with `options`.
fn memoised_builds_equal_full_builds_with(
    snapshots: &[Snapshot],
    options: &DagOptions,
) -> Result<(), TestCaseError> {
    let config = crate::xds::translate::ListenerConfig::default();
    let mut memo = Memo::default();
    let mut translation = crate::xds::translate::TranslationMemo::default();
    let cache = crate::xds::cache::XdsCache::new();
    for (i, snapshot) in snapshots.iter().enumerate() {
        let (dag, statuses, _) = build_memoised(snapshot, options, &mut memo);
        let (full_dag, full_statuses) = build(snapshot, options);
        prop_assert_eq!(&dag, &full_dag, "step {}", i);
        prop_assert_eq!(
            &statuses,
            &crate::dag::status_map(full_statuses),
            "step {}",
            i
        );
        prop_assert_eq!(
            memo.gateway_status(),
            &crate::dag::gateway::status::gateway_api_status(snapshot, &options.gateway),
            "step {}",
            i
        );
        let diff = crate::xds::translate::translate_changes(
            &dag,
            snapshot,
            &config,
            &mut translation,
            &cache.current(),
        );
        cache.apply(diff);
        let full = crate::xds::cache::XdsCache::new();
        full.set(crate::xds::translate::translate(&full_dag, snapshot, &config).by_type());
        for t in crate::xds::type_url::ALL {
            let held =
                |c: &crate::xds::cache::XdsCache| c.current().all(t).cloned().unwrap_or_default();
            prop_assert_eq!(held(&cache), held(&full), "step {} type {}", i, t);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::proptest_cases::or(200), ..ProptestConfig::default() })]

    #[test]
    fn incremental_builds_equal_full_builds(
        worlds in prop::collection::vec(world(), 2..6),
        seeds in prop::collection::vec(any::<u64>(), 6),
    ) {
        let snapshots = mixed_steps(&worlds, &seeds);
        memoised_builds_equal_full_builds(&snapshots)?;
    }

    /// The same with roots allowed in one namespace only and delegation cut at depth 2: roots
    /// refused without a walk, and walks that stop early, as IngressRoutes come and go.
    #[test]
    fn incremental_builds_equal_full_builds_with_root_namespaces_and_a_depth_limit(
        worlds in prop::collection::vec(world(), 2..6),
        seeds in prop::collection::vec(any::<u64>(), 6),
    ) {
        let snapshots = mixed_steps(&worlds, &seeds);
        let options = DagOptions {
            root_namespaces: vec!["a".to_string()],
            limits: crate::dag::DagLimits {
                max_delegation_depth: 2,
                ..crate::dag::DagLimits::default()
            },
            ..DagOptions::default()
        };
        memoised_builds_equal_full_builds_with(&snapshots, &options)?;
    }

    /// Steps that change only HTTPRoutes and Services (the Gateways, classes, grants, namespaces
    /// and Secrets stay): the route-by-route path, which the steps above mostly skip because their
    /// Gateways change too.
    #[test]
    fn route_by_route_gateway_builds_equal_full_builds(
        worlds in prop::collection::vec(world(), 2..6),
        seeds in prop::collection::vec(any::<u64>(), 6),
    ) {
        let mut snapshots = vec![worlds[0].snapshot()];
        for (i, world) in worlds.iter().enumerate().skip(1) {
            let previous = &snapshots[i - 1];
            let mixed = step(previous, &world.snapshot(), seeds[i]);
            snapshots.push(Snapshot {
                http_routes: mixed.http_routes,
                services: mixed.services,
                ..previous.clone()
            });
        }
        memoised_builds_equal_full_builds(&snapshots)?;
    }
}

#[test]
fn an_unchanged_snapshot_recomputes_nothing_and_an_edit_each_ingress_it_touches_once() {
    let yaml = (0..3)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: n}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
                 apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: n}}\nspec: {{rules: [{{host: h{i}.example.com, http: {{paths: [\
                 {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
            )
        })
        .collect::<String>();
    let mut snapshot = Snapshot::default();
    for o in crate::source::file::parse_manifests("memo.yaml", &yaml).expect("parses") {
        snapshot.insert(o);
    }
    let options = DagOptions::default();
    let mut memo = Memo::default();
    build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 3);
    build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 0);
    // The same content in a new object (a status write, a resync) is no change.
    let key = ObjectKey::new("n", "s1");
    let copy = Arc::new((*snapshot.services[&key]).clone());
    snapshot.services.insert(key.clone(), copy);
    build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 0);
    let mut edited = (*snapshot.services[&key]).clone();
    // An annotation routing does not read: the object differs, the routes do not.
    edited
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("example.test/note".to_string(), "edited".to_string());
    snapshot.services.insert(key, Arc::new(edited));
    let (dag, _, _) = build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 1);
    assert_eq!(dag, build(&snapshot, &options).0);
    // An Ingress edited along with the Service it reads is computed once.
    let note = |annotations: &mut Option<std::collections::BTreeMap<String, String>>| {
        annotations
            .get_or_insert_with(Default::default)
            .insert("example.test/note".to_string(), "both".to_string());
    };
    let (ingress_key, service_key) = (ObjectKey::new("n", "i2"), ObjectKey::new("n", "s2"));
    let mut ingress = (*snapshot.ingresses[&ingress_key]).clone();
    note(&mut ingress.metadata.annotations);
    snapshot.ingresses.insert(ingress_key, Arc::new(ingress));
    let mut service = (*snapshot.services[&service_key]).clone();
    note(&mut service.metadata.annotations);
    snapshot.services.insert(service_key, Arc::new(service));
    let (dag, _, _) = build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 1);
    assert_eq!(dag, build(&snapshot, &options).0);
}

#[test]
fn an_edited_http_route_or_its_service_recomputes_that_route_only() {
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: isobar}\nspec: {controllerName: isobar.dev/gateway-controller}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: n}\n\
         spec: {gatewayClassName: isobar, listeners: [{name: web, protocol: HTTP, port: 8081}]}\n---\n",
    );
    for i in 0..3 {
        yaml += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: n}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}, namespace: n}}\n\
             spec: {{parentRefs: [{{name: gw}}], hostnames: [shared.example.com], rules: [\
             {{matches: [{{path: {{type: PathPrefix, value: /r{i}}}}}], backendRefs: [{{name: s{i}, port: 80}}]}}]}}\n---\n"
        );
    }
    let mut snapshot = Snapshot::default();
    for o in crate::source::file::parse_manifests("gateway.yaml", &yaml).expect("parses") {
        snapshot.insert(o);
    }
    let options = DagOptions::default();
    let mut memo = Memo::default();
    let (dag, _, _) = build_memoised(&snapshot, &options, &mut memo);
    // The frame and the three routes.
    assert_eq!(memo.recomputed, 4);
    assert_eq!(
        dag.gateway_listeners["http-8081"].hosts["shared.example.com"].len(),
        3
    );
    build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 0);
    let key = ObjectKey::new("n", "r1");
    let mut route = (*snapshot.http_routes[&key]).clone();
    route.spec.hostnames = Some(vec!["other.example.com".to_string()]);
    snapshot.http_routes.insert(key, Arc::new(route));
    let (dag, _, _) = build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 1);
    assert_eq!(dag, build(&snapshot, &options).0);
    assert_eq!(dag.gateway_listeners["http-8081"].hosts.len(), 2);
    // A Service a route sends to: that route again, and its cluster with the new port gone.
    let key = ObjectKey::new("n", "s2");
    let mut service = (*snapshot.services[&key]).clone();
    service
        .spec
        .as_mut()
        .expect("a spec")
        .ports
        .as_mut()
        .expect("ports")[0]
        .port = 81;
    snapshot.services.insert(key, Arc::new(service));
    let (dag, _, _) = build_memoised(&snapshot, &options, &mut memo);
    assert_eq!(memo.recomputed, 1);
    assert_eq!(dag, build(&snapshot, &options).0);
    assert_eq!(
        memo.gateway_status(),
        &crate::dag::gateway::status::gateway_api_status(&snapshot, &options.gateway)
    );
}

/// `n` Ingresses on fewer hosts (some hosts shared, some routes conflicting), some naming a Service
/// that isn't there, on Services with Endpoints or EndpointSlices at address `ip_last`.
fn large_snapshot(n: usize, services: usize, ip_last: u8, path: &str) -> Snapshot {
    let mut yaml = String::new();
    for i in 0..services {
        let ns = i % 5;
        yaml += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: n{ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n"
        );
        yaml += &if i % 2 == 0 {
            format!(
                "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: n{ns}}}\n\
                 subsets: [{{addresses: [{{ip: 10.1.{}.{ip_last}}}], ports: [{{name: http, port: 8080}}]}}]\n---\n",
                i % 250
            )
        } else {
            format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata: {{name: s{i}-a, namespace: n{ns}, labels: {{kubernetes.io/service-name: s{i}}}}}\n\
                 addressType: IPv4\nendpoints: [{{addresses: [10.2.{}.{ip_last}], conditions: {{ready: true}}}}]\n\
                 ports: [{{name: http, port: 8080}}]\n---\n",
                i % 250
            )
        };
    }
    for i in 0..n {
        let (ns, host) = (i % 5, i % (n * 6 / 7));
        // Every 37th names a Service that doesn't exist; the rest alternate port number and name.
        let service = if i % 37 == 0 {
            services + i
        } else {
            (i / 5) * 5 % services + ns
        };
        let port = if i % 2 == 0 {
            "{number: 80}"
        } else {
            "{name: http}"
        };
        yaml += &format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: n{ns}}}\n\
             spec: {{rules: [{{host: h{host}.example.com, http: {{paths: [\
             {{path: {path}, pathType: Prefix, backend: {{service: {{name: s{service}, port: {port}}}}}}}]}}}}]}}\n---\n"
        );
    }
    let mut snapshot = Snapshot::default();
    for o in crate::source::file::parse_manifests("large.yaml", &yaml).expect("parses") {
        snapshot.insert(o);
    }
    snapshot
}

/// Batches large enough for the build threads (`crate::parallel`): a first build of 700 Ingresses,
/// then every Ingress's path and every Service's addresses changed while 300 Ingresses go, then
/// everything gone. Each build equals a build from nothing, resources byte for byte (the full build
/// spreads its Ingresses' candidates and its translation over the build threads too, each its own way).
#[test]
fn builds_of_batches_on_the_build_threads_equal_full_builds() {
    let first = large_snapshot(700, 400, 1, "/");
    let mut second = large_snapshot(700, 400, 2, "/v2");
    for i in (0..700).step_by(7).chain((1..700).step_by(3)).take(300) {
        second.remove(
            crate::store::StoreKind::Ingress,
            &ObjectKey::new(format!("n{}", i % 5), format!("i{i}")),
        );
    }
    assert!(first.ingresses.len() >= 2 * crate::parallel::MIN_BATCH);
    assert!(second.ingresses.len() >= crate::parallel::MIN_BATCH);
    assert!(first.services.len() >= crate::parallel::MIN_BATCH);
    let snapshots = [first, second, Snapshot::default()];
    memoised_builds_equal_full_builds(&snapshots).expect("memoised builds equal full builds");
}
