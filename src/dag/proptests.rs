//! Property tests of the DAG builder over generated snapshots of valid and invalid objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

use super::*;
use crate::store::{ObjectKey, Snapshot};

const NAMESPACES: [&str; 2] = ["a", "b"];
const SERVICES: [&str; 3] = ["s1", "s2", "s3"];
const HOSTS: [&str; 5] = [
    "",
    "x.example.com",
    "y.example.com",
    "*.example.com",
    "Bad_Host",
];
const PATHS: [&str; 5] = ["/", "/api", "/api/v1", "relative", "/x?y"];
const PATH_TYPES: [&str; 4] = ["Prefix", "Exact", "ImplementationSpecific", "Regex"];

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn service(namespace: &str, name: &str, ports: &[(i32, Option<&str>)]) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(port, name)| ServicePort {
                        port: *port,
                        name: name.map(str::to_string),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

prop_compose! {
    fn backend()(service in 0..4usize, by_name in any::<bool>(), port in prop::sample::select(vec![80, 81, 9000])) -> IngressBackend {
        // Service index 3 does not exist; port 81 exists nowhere.
        let name = SERVICES.get(service).copied().unwrap_or("missing");
        IngressBackend {
            service: Some(IngressServiceBackend {
                name: name.into(),
                port: Some(if by_name {
                    ServiceBackendPort { name: Some(if port == 80 { "http".into() } else { "nope".into() }), number: None }
                } else {
                    ServiceBackendPort { number: Some(port), name: None }
                }),
            }),
            resource: None,
        }
    }
}

prop_compose! {
    fn path()(p in prop::sample::select(PATHS.to_vec()), t in prop::sample::select(PATH_TYPES.to_vec()), backend in backend()) -> HTTPIngressPath {
        HTTPIngressPath { path: Some(p.into()), path_type: t.into(), backend }
    }
}

prop_compose! {
    fn ingress()(
        namespace in prop::sample::select(NAMESPACES.to_vec()),
        name in "[a-d]",
        default_backend in prop::option::of(backend()),
        rules in prop::collection::vec((prop::sample::select(HOSTS.to_vec()), prop::collection::vec(path(), 1..4)), 0..3),
    ) -> Ingress {
        Ingress {
            metadata: meta(namespace, &name),
            spec: Some(IngressSpec {
                default_backend,
                rules: Some(rules.into_iter().map(|(host, paths)| IngressRule {
                    host: Some(host.to_string()).filter(|h| !h.is_empty()),
                    http: Some(HTTPIngressRuleValue { paths }),
                }).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn snapshot_with(ingresses: Vec<Ingress>) -> Snapshot {
    let mut s = Snapshot::default();
    for ns in NAMESPACES {
        for (i, name) in SERVICES.iter().enumerate() {
            let svc = if i == 0 {
                service(ns, name, &[(80, Some("http"))])
            } else {
                service(ns, name, &[(80, Some("http")), (9000, None)])
            };
            s.services.insert(ObjectKey::new(ns, *name), svc);
        }
    }
    for i in ingresses {
        let key = ObjectKey::new(
            i.metadata.namespace.clone().unwrap(),
            i.metadata.name.clone().unwrap(),
        );
        s.ingresses.insert(key, i);
    }
    s
}

fn options() -> DagOptions {
    DagOptions::default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn every_ingress_gets_exactly_one_status(ingresses in prop::collection::vec(ingress(), 0..8)) {
        let snapshot = snapshot_with(ingresses);
        let (_, statuses) = build(&snapshot, &options());
        let mut seen: BTreeMap<ObjectKey, usize> = BTreeMap::new();
        for s in &statuses {
            *seen.entry(s.object.clone()).or_default() += 1;
        }
        prop_assert_eq!(seen.len(), snapshot.ingresses.len());
        prop_assert!(seen.values().all(|n| *n == 1));
    }

    #[test]
    fn every_route_points_at_an_existing_cluster_and_secret(ingresses in prop::collection::vec(ingress(), 0..8)) {
        let (dag, _) = build(&snapshot_with(ingresses), &options());
        for vhost in dag.virtual_hosts.values() {
            prop_assert!(!vhost.routes.is_empty());
            for route in &vhost.routes {
                for cluster in &route.clusters {
                    prop_assert!(dag.clusters.contains_key(&cluster.name), "{} has no cluster", cluster.name);
                }
            }
        }
        for vhost in dag.secure_virtual_hosts.values() {
            if let Some(secret) = &vhost.secret {
                prop_assert!(dag.secrets.contains_key(secret));
            }
        }
    }

    #[test]
    fn routes_within_a_host_are_unique_and_most_specific_first(ingresses in prop::collection::vec(ingress(), 0..8)) {
        let (dag, _) = build(&snapshot_with(ingresses), &options());
        for vhost in dag.virtual_hosts.values() {
            let keys: Vec<_> = vhost.routes.iter().map(|r| r.path.precedence()).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(keys, sorted);
        }
    }

    #[test]
    fn the_output_is_deterministic(ingresses in prop::collection::vec(ingress(), 0..8)) {
        let snapshot = snapshot_with(ingresses);
        prop_assert_eq!(build(&snapshot, &options()), build(&snapshot.clone(), &options()));
    }

    #[test]
    fn a_newcomer_never_changes_the_others_and_an_invalid_one_changes_nothing(ingresses in prop::collection::vec(ingress(), 0..8), extra in ingress()) {
        let snapshot = snapshot_with(ingresses.clone());
        let (before, statuses_before) = build(&snapshot, &options());
        let key = ObjectKey::new(extra.metadata.namespace.clone().unwrap(), format!("zz-{}", extra.metadata.name.clone().unwrap()));
        let mut extra = extra;
        extra.metadata.name = Some(key.name.clone());
        // A newcomer is younger than everything already there.
        extra.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2030-01-01T00:00:00Z".parse().unwrap(),
        ));
        let mut with_extra = snapshot.clone();
        with_extra.ingresses.insert(key.clone(), extra);
        let (after, statuses_after) = build(&with_extra, &options());
        let extra_status = statuses_after.iter().find(|s| s.object == key).unwrap();
        if extra_status.validity == Validity::Invalid {
            prop_assert_eq!(&before, &after);
        }
        // Whatever the newcomer is, the objects already there keep their statuses.
        let others: Vec<_> = statuses_after.iter().filter(|s| s.object != key).cloned().collect();
        prop_assert_eq!(statuses_before, others);
    }
}
