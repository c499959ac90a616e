//! Property tests of the DAG builder over generated snapshots of valid and invalid objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

use crate::crd::{
    CertificateDelegation, Delegate, IngressRoute, IngressRouteSpec, Route as IrRoute,
    RouteService, TLSCertificateDelegation, TLSCertificateDelegationSpec, Tls,
    VirtualHost as IrVirtualHost,
};

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

const FQDNS: [&str; 3] = ["x.example.com", "r.example.com", "*.example.com"];
const IR_NAMES: [&str; 4] = ["r1", "r2", "c1", "c2"];
const MATCHES: [&str; 4] = ["/", "/api", "/api/v1", "bad"];
const SECRETS: [&str; 3] = ["cert", "nope", "a/cert"];

prop_compose! {
    fn ir_route()(
        m in prop::sample::select(MATCHES.to_vec()),
        delegate in prop::option::of((prop::sample::select(IR_NAMES.to_vec()), prop::option::of(prop::sample::select(NAMESPACES.to_vec())))),
        services in prop::collection::vec((0..4usize, prop::sample::select(vec![80, 81, 9000]), prop::option::of(0..100u32)), 1..3),
    ) -> IrRoute {
        match delegate {
            Some((name, namespace)) => IrRoute {
                match_: m.into(),
                delegate: Some(Delegate { name: name.into(), namespace: namespace.map(str::to_string) }),
                ..Default::default()
            },
            None => IrRoute {
                match_: m.into(),
                services: services
                    .into_iter()
                    .map(|(i, port, weight)| RouteService {
                        name: SERVICES.get(i).copied().unwrap_or("missing").into(),
                        port,
                        weight,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }
}

prop_compose! {
    fn ingress_route()(
        namespace in prop::sample::select(NAMESPACES.to_vec()),
        name in prop::sample::select(IR_NAMES.to_vec()),
        root in prop::option::of((prop::sample::select(FQDNS.to_vec()), prop::option::of(prop::sample::select(SECRETS.to_vec())))),
        routes in prop::collection::vec(ir_route(), 0..3),
    ) -> IngressRoute {
        IngressRoute {
            metadata: meta(namespace, name),
            spec: IngressRouteSpec {
                virtualhost: root.map(|(fqdn, secret)| IrVirtualHost {
                    fqdn: fqdn.into(),
                    tls: secret.map(|s| Tls { secret_name: Some(s.into()), ..Default::default() }),
                }),
                routes,
                tcpproxy: None,
            },
            status: None,
        }
    }
}

/// A certificate and key for the generated Secrets (generated once: key generation is slow).
fn tls_secret(namespace: &str) -> k8s_openapi::api::core::v1::Secret {
    use std::sync::OnceLock;
    static PEM: OnceLock<(String, String)> = OnceLock::new();
    let (cert, key) = PEM.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.example.com".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    });
    k8s_openapi::api::core::v1::Secret {
        metadata: meta(namespace, "cert"),
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(
            [
                ("tls.crt".to_string(), cert.clone()),
                ("tls.key".to_string(), key.clone()),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

fn full_snapshot(
    ingresses: Vec<Ingress>,
    routes: Vec<IngressRoute>,
    delegate_cert: bool,
) -> Snapshot {
    let mut s = snapshot_with(ingresses);
    s.secrets
        .insert(ObjectKey::new("a", "cert"), tls_secret("a"));
    if delegate_cert {
        s.tls_certificate_delegations.insert(
            ObjectKey::new("a", "d"),
            TLSCertificateDelegation {
                metadata: meta("a", "d"),
                spec: TLSCertificateDelegationSpec {
                    delegations: vec![CertificateDelegation {
                        secret_name: "cert".into(),
                        target_namespaces: vec!["*".into()],
                    }],
                },
            },
        );
    }
    for r in routes {
        let key = ObjectKey::new(
            r.metadata.namespace.clone().unwrap(),
            r.metadata.name.clone().unwrap(),
        );
        s.ingress_routes.insert(key, r);
    }
    s
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
    fn with_ingressroutes_every_object_gets_one_status_and_routes_are_sound(
        ingresses in prop::collection::vec(ingress(), 0..4),
        routes in prop::collection::vec(ingress_route(), 0..8),
        delegate_cert in any::<bool>(),
    ) {
        let snapshot = full_snapshot(ingresses, routes, delegate_cert);
        let (dag, statuses) = build(&snapshot, &options());
        prop_assert_eq!(statuses.len(), snapshot.ingresses.len() + snapshot.ingress_routes.len());
        let mut keys: Vec<_> = statuses.iter().map(|s| (s.kind, s.object.clone())).collect();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), statuses.len());
        for vhost in dag.virtual_hosts.values().map(|v| &v.routes).chain(dag.secure_virtual_hosts.values().map(|v| &v.routes)) {
            for route in vhost {
                prop_assert!(!route.clusters.is_empty());
                for c in &route.clusters {
                    prop_assert!(dag.clusters.contains_key(&c.name));
                }
            }
        }
        for vhost in dag.secure_virtual_hosts.values() {
            if let Some(secret) = &vhost.secret {
                prop_assert!(dag.secrets.contains_key(secret));
            }
        }
        prop_assert_eq!(build(&snapshot, &options()), build(&snapshot.clone(), &options()));
    }

    #[test]
    fn a_newcomer_ingressroute_never_takes_anything_from_the_others(
        routes in prop::collection::vec(ingress_route(), 0..8),
        extra in ingress_route(),
    ) {
        let snapshot = full_snapshot(Vec::new(), routes, true);
        let (before, _) = build(&snapshot, &options());
        let mut extra = extra;
        let key = ObjectKey::new(extra.metadata.namespace.clone().unwrap(), format!("zz-{}", extra.metadata.name.clone().unwrap()));
        extra.metadata.name = Some(key.name.clone());
        extra.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2030-01-01T00:00:00Z".parse().unwrap(),
        ));
        let mut with_extra = snapshot.clone();
        with_extra.ingress_routes.insert(key.clone(), extra);
        let (after, statuses) = build(&with_extra, &options());
        let extra_status = statuses.iter().find(|s| s.object == key).unwrap();
        if extra_status.validity != Validity::Valid {
            prop_assert_eq!(&before, &after);
        }
        // Every route that was served is still served, to the same clusters.
        for (host, vhost) in &before.virtual_hosts {
            for route in &vhost.routes {
                let still = after.virtual_hosts.get(host).and_then(|v| v.routes.iter().find(|r| r.path == route.path));
                prop_assert_eq!(still.map(|r| &r.clusters), Some(&route.clusters), "route {:?} on {} was lost", route.path, host);
            }
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
