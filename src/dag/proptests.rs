//! Property tests of the DAG builder over generated snapshots of valid and invalid objects: Ingresses
//! (rules, TLS, Contour annotations, a class by annotation or `ingressClassName`), IngressRoutes,
//! TLS Secrets (usable or not), a TLSCertificateDelegation, annotated Services, IngressClass objects,
//! and creation timestamps (so age, not only names, decides who keeps a contested route).
//!
//! The generators know which of their values are valid, so several properties check the builder
//! against that knowledge (an oracle written here, not taken from the code under test).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Secret, ServicePort};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressRule, IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::ByteString;
use proptest::prelude::*;

use crate::crd::{
    CertificateDelegation, Delegate, IngressRoute, IngressRouteSpec, Route as IrRoute,
    RouteService, TLSCertificateDelegation, TLSCertificateDelegationSpec, Tls,
    VirtualHost as IrVirtualHost,
};

use super::*;
use crate::store::{ObjectKey, Service, ServiceSpec, Snapshot};

const NAMESPACES: [&str; 2] = ["a", "b"];
const SERVICES: [&str; 3] = ["s1", "s2", "s3"];
/// Rule hosts (`""`: none, every host) and one that is not a host name.
const HOSTS: [&str; 4] = ["", "x.example.com", "y.example.com", "*.example.com"];
const BAD_HOSTS: [&str; 1] = ["Bad_Host"];
const PATHS: [&str; 3] = ["/", "/api", "/api/v1"];
const BAD_PATHS: [&str; 2] = ["relative", "/x?y"];
const PATH_TYPES: [&str; 3] = ["Prefix", "Exact", "ImplementationSpecific"];
const BAD_PATH_TYPES: [&str; 1] = ["Regex"];
/// The class isobar answers to in these tests (the default), and one that belongs to someone else.
const CLASSES: [&str; 2] = [DEFAULT_INGRESS_CLASS, "nginx"];
const CLASS_ANNOTATIONS: [&str; 3] = [
    "projectcontour.io/ingress.class",
    "contour.heptio.com/ingress.class",
    "kubernetes.io/ingress.class",
];

/// Mostly one of `valid`, sometimes one of `invalid`: with invalid values as likely as valid ones,
/// almost every generated object would be invalid somewhere, and what only valid objects do (TLS
/// hosts, conflicts between them, age deciding who wins) would hardly ever be exercised.
fn mostly<T: Clone + std::fmt::Debug + 'static>(valid: &[T], invalid: &[T]) -> BoxedStrategy<T> {
    prop_oneof![
        12 => prop::sample::select(valid.to_vec()),
        1 => prop::sample::select(invalid.to_vec()),
    ]
    .boxed()
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Creation timestamps: minutes after a fixed instant, so generated objects are distinct in age
/// (and sometimes equal, or without one, where names break the tie). Newcomers in the properties
/// below are created in 2030, later than all of these.
fn timestamp(minute: Option<u8>) -> Option<Time> {
    minute.map(|m| {
        Time(
            format!("2020-01-01T{:02}:{:02}:00Z", m / 60, m % 60)
                .parse()
                .expect("a valid timestamp"),
        )
    })
}

fn creation() -> impl Strategy<Value = Option<u8>> {
    prop::option::weighted(0.9, 0..40u8)
}

// ---------------------------------------------------------------------------------------------
// Secrets.

const SECRET_NAMES: [&str; 2] = ["cert", "other"];

/// What a generated Secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretKind {
    /// A certificate and its key.
    Valid,
    /// `type: Opaque`.
    WrongType,
    /// No `tls.key`.
    NoKey,
    /// `tls.crt` is not PEM.
    Garbage,
    /// A certificate with another certificate's key.
    Mismatch,
}

fn secret_kind() -> impl Strategy<Value = SecretKind> {
    prop_oneof![
        8 => Just(SecretKind::Valid),
        1 => Just(SecretKind::WrongType),
        1 => Just(SecretKind::NoKey),
        1 => Just(SecretKind::Garbage),
        1 => Just(SecretKind::Mismatch),
    ]
}

/// Two certificates with their keys (generated once: key generation is slow).
fn pems() -> &'static [(String, String); 2] {
    use std::sync::OnceLock;
    static PEMS: OnceLock<[(String, String); 2]> = OnceLock::new();
    PEMS.get_or_init(|| {
        let pair = |host: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![host.to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        [pair("x.example.com"), pair("y.example.com")]
    })
}

fn tls_secret(namespace: &str, name: &str, kind: SecretKind) -> Secret {
    let [(cert, key), (_, other_key)] = pems();
    let (type_, cert, key) = match kind {
        SecretKind::Valid => ("kubernetes.io/tls", cert.clone(), Some(key.clone())),
        SecretKind::WrongType => ("Opaque", cert.clone(), Some(key.clone())),
        SecretKind::NoKey => ("kubernetes.io/tls", cert.clone(), None),
        SecretKind::Garbage => ("kubernetes.io/tls", "not a PEM".into(), Some(key.clone())),
        SecretKind::Mismatch => ("kubernetes.io/tls", cert.clone(), Some(other_key.clone())),
    };
    let mut data = BTreeMap::from([("tls.crt".to_string(), ByteString(cert.into_bytes()))]);
    if let Some(key) = key {
        data.insert("tls.key".to_string(), ByteString(key.into_bytes()));
    }
    Secret {
        metadata: meta(namespace, name),
        type_: Some(type_.into()),
        data: Some(data),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Services, with or without Contour's upstream annotations.

/// Annotations on Service `s2` (in both namespaces): none, valid ones, or a bad count.
const SERVICE_ANNOTATIONS: [&[(&str, &str)]; 4] = [
    &[],
    &[("projectcontour.io/upstream-protocol.h2c", "http")],
    &[("contour.heptio.com/max-connections", "7")],
    &[("projectcontour.io/max-connections", "lots")],
];

/// Whether Service `s2` carries an annotation value that does not parse.
fn service_annotations_invalid(choice: usize) -> bool {
    choice == 3
}

fn service(namespace: &str, name: &str, ports: &[(i32, Option<&str>)]) -> Service {
    Service {
        metadata: meta(namespace, name).into(),
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

// ---------------------------------------------------------------------------------------------
// Ingresses.

/// A Service index (3 does not exist).
fn service_index() -> BoxedStrategy<usize> {
    mostly(&[0, 1, 2], &[3])
}

/// A Service port: 80 (named `http`) exists on every Service, 9000 on `s2` and `s3`, 81 nowhere.
fn service_port() -> BoxedStrategy<i32> {
    mostly(&[80, 80, 80, 9000], &[81])
}

prop_compose! {
    fn backend()(service in service_index(), by_name in any::<bool>(), port in service_port()) -> IngressBackend {
        let name = SERVICES.get(service).copied().unwrap_or("missing");
        IngressBackend {
            service: Some(IngressServiceBackend {
                name: name.into(),
                // Only port 80 has a name; 81 is asked for as `nope`, which no port is called.
                port: Some(if by_name && port != 9000 {
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
    fn path()(p in mostly(&PATHS, &BAD_PATHS), t in mostly(&PATH_TYPES, &BAD_PATH_TYPES), backend in backend()) -> HTTPIngressPath {
        HTTPIngressPath { path: Some(p.into()), path_type: t.into(), backend }
    }
}

/// Contour's Ingress annotations, each with a value and whether that value is valid on its own.
const INGRESS_ANNOTATIONS: [(&str, &str, bool); 16] = [
    ("projectcontour.io/request-timeout", "1s", true),
    ("contour.heptio.com/request-timeout", "infinity", true),
    ("projectcontour.io/request-timeout", "forever", false),
    ("projectcontour.io/retry-on", "5xx", true),
    ("contour.heptio.com/retry-on", "5xx,sometimes", false),
    ("projectcontour.io/num-retries", "2", true),
    ("contour.heptio.com/num-retries", "many", false),
    ("projectcontour.io/per-try-timeout", "500ms", true),
    ("projectcontour.io/websocket-routes", "/api", true),
    (
        "projectcontour.io/tls-minimum-protocol-version",
        "1.3",
        true,
    ),
    (
        "contour.heptio.com/tls-minimum-protocol-version",
        "1.0",
        false,
    ),
    ("kubernetes.io/ingress.allow-http", "false", true),
    ("kubernetes.io/ingress.allow-http", "no", false),
    ("ingress.kubernetes.io/force-ssl-redirect", "true", true),
    ("ingress.kubernetes.io/force-ssl-redirect", "yes", false),
    ("contour.heptio.com/request-timeout", "soon", false),
];

/// Whether an Ingress's annotations ask for something that can't be honoured, as Contour reads
/// them: per annotation name, `projectcontour.io/` wins over `contour.heptio.com/`; a bad value
/// is an error, and `num-retries` or `per-try-timeout` need `retry-on`.
fn annotations_invalid(annotations: &BTreeMap<String, String>) -> bool {
    let valid_value = |key: &str, value: &str| {
        INGRESS_ANNOTATIONS
            .iter()
            .find(|(k, v, _)| *k == key && *v == value)
            .is_none_or(|(_, _, ok)| *ok)
    };
    let effective = |name: &str| {
        ["projectcontour.io/", "contour.heptio.com/"]
            .iter()
            .map(|p| format!("{p}{name}"))
            .find_map(|k| annotations.get(&k).map(|v| (k.clone(), v.clone())))
    };
    let contour_names = [
        "request-timeout",
        "retry-on",
        "num-retries",
        "per-try-timeout",
        "tls-minimum-protocol-version",
    ];
    let bad_contour = contour_names
        .iter()
        .filter_map(|n| effective(n))
        .any(|(k, v)| !valid_value(&k, &v));
    let bad_exact = [
        "kubernetes.io/ingress.allow-http",
        "ingress.kubernetes.io/force-ssl-redirect",
    ]
    .iter()
    .filter_map(|k| annotations.get(*k).map(|v| (k, v)))
    .any(|(k, v)| !valid_value(k, v));
    let retry_options_alone = effective("retry-on").is_none()
        && (effective("num-retries").is_some() || effective("per-try-timeout").is_some());
    bad_contour || bad_exact || retry_options_alone
}

/// The class an object asks for, as Contour reads it: the class annotations, most specific first,
/// then `spec.ingressClassName`; no class at all means any controller's, so ours.
fn requested_class(meta: &ObjectMeta, class_name_field: Option<&str>) -> Option<String> {
    let annotations = meta.annotations.as_ref();
    CLASS_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.and_then(|a| a.get(*k)).cloned())
        .or(class_name_field.map(str::to_string))
}

fn is_ours(meta: &ObjectMeta, class_name_field: Option<&str>) -> bool {
    requested_class(meta, class_name_field).is_none_or(|c| c == DEFAULT_INGRESS_CLASS)
}

fn ingress_is_ours(i: &Ingress) -> bool {
    is_ours(
        &i.metadata,
        i.spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref()),
    )
}

/// Annotations that go together: each valid value on its own, except the retry options, which
/// come with `retry-on` (alone they are an error); or each invalid value, or a retry option alone.
fn annotation_sets(valid: bool) -> Vec<Vec<(&'static str, &'static str)>> {
    let needs_retry_on = |k: &str| k.ends_with("/num-retries") || k.ends_with("/per-try-timeout");
    let mut sets: Vec<Vec<(&'static str, &'static str)>> = INGRESS_ANNOTATIONS
        .iter()
        .filter(|(_, _, ok)| *ok == valid)
        .map(|(k, v, _)| {
            if valid && needs_retry_on(k) {
                vec![("projectcontour.io/retry-on", "5xx"), (*k, *v)]
            } else {
                vec![(*k, *v)]
            }
        })
        .collect();
    if !valid {
        sets.push(vec![("projectcontour.io/per-try-timeout", "500ms")]);
    }
    sets
}

fn annotations() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    (
        prop::collection::vec(
            mostly(&annotation_sets(true), &annotation_sets(false)),
            0..3,
        ),
        prop::option::weighted(
            0.25,
            (
                prop::sample::select(CLASS_ANNOTATIONS.to_vec()),
                prop::sample::select(CLASSES.to_vec()),
            ),
        ),
    )
        .prop_map(|(contour, class)| {
            let map: BTreeMap<String, String> = contour
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(class.map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            Some(map).filter(|m| !m.is_empty())
        })
}

/// TLS secret references: the two generated names and a delegated one (each usable or not,
/// depending on the generated Secrets), one that never exists, and an empty one.
const TLS_REFERENCES: [&str; 3] = ["cert", "other", "a/cert"];
const BAD_TLS_REFERENCES: [&str; 2] = ["missing", ""];

prop_compose! {
    fn ingress_tls()(
        hosts in prop::collection::vec(mostly(&HOSTS[1..], &BAD_HOSTS), 1..3),
        secret in mostly(&TLS_REFERENCES, &BAD_TLS_REFERENCES),
    ) -> IngressTLS {
        IngressTLS {
            hosts: Some(hosts.into_iter().map(str::to_string).collect()),
            secret_name: Some(secret.to_string()),
        }
    }
}

prop_compose! {
    fn ingress()(
        namespace in prop::sample::select(NAMESPACES.to_vec()),
        name in "[a-d]",
        default_backend in prop::option::of(backend()),
        rules in prop::collection::vec((mostly(&HOSTS, &BAD_HOSTS), prop::collection::vec(path(), 1..3)), 0..3),
        tls in prop::collection::vec(ingress_tls(), 0..2),
        // Most TLS worth testing is for the hosts the rules route: a secure virtual host.
        tls_for_rules in prop::option::weighted(0.5, mostly(&TLS_REFERENCES, &BAD_TLS_REFERENCES)),
        annotations in annotations(),
        class_name in prop::option::weighted(0.2, prop::sample::select(CLASSES.to_vec())),
        created in creation(),
    ) -> Ingress {
        let rule_hosts: Vec<String> = rules.iter().map(|(h, _)| h.to_string()).filter(|h| !h.is_empty()).collect();
        let tls: Vec<IngressTLS> = tls
            .into_iter()
            .chain(tls_for_rules.filter(|_| !rule_hosts.is_empty()).map(|secret| IngressTLS {
                hosts: Some(rule_hosts.clone()),
                secret_name: Some(secret.to_string()),
            }))
            .collect();
        Ingress {
            metadata: ObjectMeta {
                annotations,
                creation_timestamp: timestamp(created),
                ..meta(namespace, &name)
            },
            spec: Some(IngressSpec {
                default_backend,
                ingress_class_name: class_name.map(str::to_string),
                rules: Some(rules.into_iter().map(|(host, paths)| IngressRule {
                    host: Some(host.to_string()).filter(|h| !h.is_empty()),
                    http: Some(HTTPIngressRuleValue { paths }),
                }).collect()),
                tls: Some(tls).filter(|t| !t.is_empty()),
            }),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IngressRoutes.

const FQDNS: [&str; 3] = ["x.example.com", "r.example.com", "*.example.com"];
const IR_NAMES: [&str; 4] = ["r1", "r2", "c1", "c2"];
const MATCHES: [&str; 3] = ["/", "/api", "/api/v1"];
const BAD_MATCHES: [&str; 1] = ["bad"];
const SECRETS: [&str; 3] = ["cert", "a/cert", "other"];
const BAD_SECRETS: [&str; 1] = ["nope"];

prop_compose! {
    fn ir_route()(
        m in mostly(&MATCHES, &BAD_MATCHES),
        delegate in prop::option::of((prop::sample::select(IR_NAMES.to_vec()), prop::option::of(prop::sample::select(NAMESPACES.to_vec())))),
        services in prop::collection::vec((service_index(), service_port(), prop::option::of(0..100u32)), 1..3),
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
        root in prop::option::of((prop::sample::select(FQDNS.to_vec()), prop::option::of(mostly(&SECRETS, &BAD_SECRETS)))),
        routes in prop::collection::vec(ir_route(), 0..3),
        class in prop::option::weighted(0.2, (prop::sample::select(CLASS_ANNOTATIONS.to_vec()), prop::sample::select(CLASSES.to_vec()))),
        created in creation(),
    ) -> IngressRoute {
        IngressRoute {
            metadata: ObjectMeta {
                annotations: class.map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())])),
                creation_timestamp: timestamp(created),
                ..meta(namespace, name)
            },
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

fn ingress_route_is_ours(r: &IngressRoute) -> bool {
    is_ours(&r.metadata, None)
}

// ---------------------------------------------------------------------------------------------
// A whole world of objects.

/// Everything a snapshot is made of, kept as generated so a property can reason about it.
#[derive(Debug, Clone)]
pub(super) struct World {
    ingresses: Vec<Ingress>,
    routes: Vec<IngressRoute>,
    /// Secrets `cert` and `other` per namespace: absent, or of some kind.
    secrets: BTreeMap<(&'static str, &'static str), SecretKind>,
    /// Whether namespace `a` delegates its Secret `cert` to every namespace.
    delegate_cert: bool,
    /// Index into [`SERVICE_ANNOTATIONS`] for Service `s2`.
    service_annotations: usize,
    /// IngressClass objects: `(name, marked as the cluster's default class?)`. The builder reads
    /// classes from the objects that name them, not from these; they are in the snapshot so every
    /// property holds with them present.
    classes: Vec<(&'static str, bool)>,
    /// GatewayClasses, Gateways, HTTPRoutes and ReferenceGrants.
    gateway_api: Vec<serde_json::Value>,
}

fn secrets() -> impl Strategy<Value = BTreeMap<(&'static str, &'static str), SecretKind>> {
    let slots: Vec<(&'static str, &'static str)> = NAMESPACES
        .iter()
        .flat_map(|ns| SECRET_NAMES.iter().map(move |n| (*ns, *n)))
        .collect();
    prop::collection::vec(prop::option::weighted(0.9, secret_kind()), slots.len()).prop_map(
        move |kinds| {
            slots
                .iter()
                .zip(kinds)
                .filter_map(|(slot, kind)| kind.map(|k| (*slot, k)))
                .collect()
        },
    )
}

fn classes() -> impl Strategy<Value = Vec<(&'static str, bool)>> {
    prop::collection::vec(
        (prop::sample::select(CLASSES.to_vec()), any::<bool>()),
        0..3,
    )
}

prop_compose! {
    fn world_with(max_ingresses: usize, max_routes: usize)(
        ingresses in prop::collection::vec(ingress(), 0..=max_ingresses),
        routes in prop::collection::vec(ingress_route(), 0..=max_routes),
        secrets in secrets(),
        delegate_cert in any::<bool>(),
        service_annotations in mostly(&[0, 0, 1, 2], &[3]),
        classes in classes(),
        gateway_api in super::gateway_world::gateway_objects(),
    ) -> World {
        // One object per key, the last generated one, as the snapshot keeps it.
        let ingresses = last_per_key(ingresses, |i| key_of(&i.metadata));
        let routes = last_per_key(routes, |r| key_of(&r.metadata));
        World { ingresses, routes, secrets, delegate_cert, service_annotations, classes, gateway_api }
    }
}

fn last_per_key<T>(objects: Vec<T>, key: impl Fn(&T) -> ObjectKey) -> Vec<T> {
    let mut by_key = BTreeMap::new();
    for o in objects {
        by_key.insert(key(&o), o);
    }
    by_key.into_values().collect()
}

pub(super) fn world() -> impl Strategy<Value = World> {
    world_with(6, 6)
}

impl World {
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for ns in NAMESPACES {
            for (i, name) in SERVICES.iter().enumerate() {
                let mut svc = if i == 0 {
                    service(ns, name, &[(80, Some("http"))])
                } else {
                    service(ns, name, &[(80, Some("http")), (9000, None)])
                };
                if *name == "s2" {
                    let annotations = SERVICE_ANNOTATIONS[self.service_annotations];
                    svc.metadata.annotations =
                        Some(annotations).filter(|a| !a.is_empty()).map(|a| {
                            a.iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect()
                        });
                }
                s.services
                    .insert(ObjectKey::new(ns, *name), std::sync::Arc::new(svc));
            }
        }
        for ((ns, name), kind) in &self.secrets {
            s.secrets.insert(
                ObjectKey::new(*ns, *name),
                std::sync::Arc::new(tls_secret(ns, name, *kind).into()),
            );
        }
        if self.delegate_cert {
            s.tls_certificate_delegations.insert(
                ObjectKey::new("a", "d"),
                std::sync::Arc::new(TLSCertificateDelegation {
                    metadata: meta("a", "d"),
                    spec: TLSCertificateDelegationSpec {
                        delegations: vec![CertificateDelegation {
                            secret_name: "cert".into(),
                            target_namespaces: vec!["*".into()],
                        }],
                    },
                }),
            );
        }
        for (name, default) in &self.classes {
            s.ingress_classes.insert(
                ObjectKey::new("", *name),
                std::sync::Arc::new(IngressClass {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        annotations: default.then(|| {
                            BTreeMap::from([(
                                "ingressclass.kubernetes.io/is-default-class".to_string(),
                                "true".to_string(),
                            )])
                        }),
                        ..Default::default()
                    },
                    spec: Some(IngressClassSpec {
                        controller: Some(format!("example.com/{name}")),
                        parameters: None,
                    }),
                }),
            );
        }
        for i in &self.ingresses {
            s.ingresses
                .insert(key_of(&i.metadata), std::sync::Arc::new(i.clone()));
        }
        for r in &self.routes {
            s.ingress_routes
                .insert(key_of(&r.metadata), std::sync::Arc::new(r.clone()));
        }
        for o in &self.gateway_api {
            s.insert(
                crate::store::KubeObject::from_value(o.clone())
                    .unwrap_or_else(|e| panic!("{e:?}: {o}")),
            );
        }
        s
    }

    /// Whether `reference`, named by an object in `namespace`, leads to a usable certificate.
    fn secret_usable(&self, namespace: &str, reference: &str) -> bool {
        let (ns, name) = match reference.split_once('/') {
            None => (namespace, reference),
            Some((other, name)) if other == namespace => (namespace, name),
            Some((other, name)) => {
                if !(self.delegate_cert && other == "a" && name == "cert") {
                    return false;
                }
                (other, name)
            }
        };
        self.secrets
            .iter()
            .any(|((n, s), kind)| *n == ns && *s == name && *kind == SecretKind::Valid)
    }

    /// Names of the Secrets that hold a usable certificate, as `namespace/name`.
    fn valid_secrets(&self) -> BTreeSet<String> {
        self.secrets
            .iter()
            .filter(|(_, k)| **k == SecretKind::Valid)
            .map(|((ns, name), _)| format!("{ns}/{name}"))
            .collect()
    }
}

fn key_of(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn options() -> DagOptions {
    DagOptions::default()
}

fn status_of<'a>(
    statuses: &'a [ObjectStatus],
    kind: ObjectKind,
    key: &ObjectKey,
) -> Option<&'a ObjectStatus> {
    statuses.iter().find(|s| s.kind == kind && &s.object == key)
}

/// An object's rank by age: oldest first (no timestamp counting as oldest), then by
/// namespace/name to break ties.
fn by_age_key(meta: &ObjectMeta) -> (Option<Time>, ObjectKey) {
    (meta.creation_timestamp.clone(), key_of(meta))
}

/// A newcomer: named `zz-NAME` and created in 2030, after everything a [`World`] holds.
fn newcomer_meta(meta: &mut ObjectMeta) -> ObjectKey {
    meta.name = Some(format!("zz-{}", meta.name.clone().unwrap_or_default()));
    meta.creation_timestamp = Some(Time("2030-01-01T00:00:00Z".parse().unwrap()));
    key_of(meta)
}

/// The requests a path match selects, as Envoy sees it: a prefix `/` matches every path, whether
/// it is taken element-wise or as a string.
fn effective_match(path: &PathMatch) -> (&'static str, &str) {
    match path {
        PathMatch::Exact(p) => ("exact", p),
        PathMatch::SegmentPrefix(p) if p == "/" => ("prefix", p),
        PathMatch::SegmentPrefix(p) => ("segments", p),
        PathMatch::StringPrefix(p) => ("prefix", p),
    }
}

/// Every route served before (HTTP and HTTPS) is still served after, to the same clusters.
fn routes_kept(before: &Dag, after: &Dag) -> Result<(), TestCaseError> {
    let plain = before
        .virtual_hosts
        .iter()
        .map(|(h, v)| (h, &v.routes, after.virtual_hosts.get(h).map(|v| &v.routes)));
    let secure = before.secure_virtual_hosts.iter().map(|(h, v)| {
        (
            h,
            &v.routes,
            after.secure_virtual_hosts.get(h).map(|v| &v.routes),
        )
    });
    for (host, routes, after_routes) in plain.chain(secure) {
        for route in routes {
            let still = after_routes.and_then(|rs| rs.iter().find(|r| r.path == route.path));
            prop_assert_eq!(
                still.map(|r| &r.clusters),
                Some(&route.clusters),
                "route {:?} on {} was lost",
                route.path,
                host
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::proptest_cases::or(256), ..ProptestConfig::default() })]

    #[test]
    fn every_object_of_our_class_gets_exactly_one_status_and_no_other_does(world in world()) {
        let snapshot = world.snapshot();
        let (_, statuses) = build(&snapshot, &options());
        let mut seen: BTreeMap<(ObjectKind, ObjectKey), usize> = BTreeMap::new();
        for s in &statuses {
            *seen.entry((s.kind, s.object.clone())).or_default() += 1;
        }
        let expected: BTreeSet<(ObjectKind, ObjectKey)> = snapshot
            .ingresses
            .iter()
            .filter(|(_, i)| ingress_is_ours(i))
            .map(|(k, _)| (ObjectKind::Ingress, k.clone()))
            .chain(
                snapshot
                    .ingress_routes
                    .iter()
                    .filter(|(_, r)| ingress_route_is_ours(r))
                    .map(|(k, _)| (ObjectKind::IngressRoute, k.clone())),
            )
            .collect();
        prop_assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected);
        prop_assert!(seen.values().all(|n| *n == 1), "{:?}", seen);
    }

    #[test]
    fn objects_of_another_class_change_nothing(world in world()) {
        let (dag, statuses) = build(&world.snapshot(), &options());
        let mut ours = world.clone();
        ours.ingresses.retain(ingress_is_ours);
        ours.routes.retain(ingress_route_is_ours);
        prop_assert_eq!((dag, statuses), build(&ours.snapshot(), &options()));
    }

    #[test]
    fn every_route_points_at_an_existing_cluster_and_only_usable_secrets_are_served(world in world()) {
        let (dag, statuses) = build(&world.snapshot(), &options());
        for (host, routes) in dag
            .virtual_hosts
            .values()
            .map(|v| (&v.host, &v.routes))
            .chain(dag.secure_virtual_hosts.values().map(|v| (&v.host, &v.routes)))
        {
            for route in routes {
                prop_assert!(!route.clusters.is_empty());
                for c in &route.clusters {
                    prop_assert!(dag.clusters.contains_key(&c.name), "{} has no cluster", c.name);
                }
                // An Ingress's route is served only if its status says it is valid. (For
                // IngressRoutes, see the ignored property below.)
                if world.ingresses.iter().any(|i| key_of(&i.metadata) == route.source) {
                    let status = status_of(&statuses, ObjectKind::Ingress, &route.source);
                    prop_assert_eq!(status.map(|s| s.validity), Some(Validity::Valid),
                        "route {:?} on {} comes from {} whose status is {:?}", route.path, host, route.source, status);
                }
            }
        }
        for vhost in dag.secure_virtual_hosts.values() {
            if let Some(secret) = &vhost.secret {
                prop_assert!(dag.secrets.contains_key(secret));
            }
        }
        let valid = world.valid_secrets();
        for name in dag.secrets.keys() {
            prop_assert!(valid.contains(name), "secret {} is served but not usable ({:?})", name, world.secrets);
        }
    }

    // Found by this property: a child reached twice kept the status of its first visit, so one
    // invalid under one parent prefix but valid under another was reported invalid while its routes
    // were served. A child served anywhere is valid now, its status naming where it is not.
    #[test]

    fn a_served_ingressroute_route_comes_from_an_object_reported_valid(world in world()) {
        let (dag, statuses) = build(&world.snapshot(), &options());
        for (host, routes) in dag.virtual_hosts.iter().map(|(h, v)| (h, &v.routes)).chain(dag.secure_virtual_hosts.iter().map(|(h, v)| (h, &v.routes))) {
            for route in routes.iter().filter(|r| world.routes.iter().any(|ir| key_of(&ir.metadata) == r.source)) {
                let status = status_of(&statuses, ObjectKind::IngressRoute, &route.source);
                prop_assert_eq!(status.map(|s| s.validity), Some(Validity::Valid),
                    "route {:?} on {} comes from {} whose status is {:?}", route.path, host, route.source, status);
            }
        }
    }

    #[test]
    fn an_ingress_with_an_unusable_secret_or_a_bad_annotation_is_invalid(world in world()) {
        let (_, statuses) = build(&world.snapshot(), &options());
        for ingress in world.ingresses.iter().filter(|i| ingress_is_ours(i)) {
            let key = key_of(&ingress.metadata);
            let namespace = key.namespace.clone();
            let bad_secret = ingress
                .spec
                .iter()
                .flat_map(|s| s.tls.iter().flatten())
                .filter_map(|t| t.secret_name.as_deref())
                .find(|name| !world.secret_usable(&namespace, name));
            let bad_annotation = ingress.metadata.annotations.as_ref().is_some_and(annotations_invalid);
            // A Service whose own annotations don't parse can't be routed to.
            let bad_service = service_annotations_invalid(world.service_annotations)
                && ingress.spec.iter().any(|s| {
                    s.default_backend
                        .iter()
                        .chain(s.rules.iter().flatten().flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter().map(|p| &p.backend))))
                        .any(|b| b.service.as_ref().is_some_and(|s| s.name == "s2"))
                });
            if bad_secret.is_some() || bad_annotation || bad_service {
                let status = status_of(&statuses, ObjectKind::Ingress, &key);
                prop_assert_eq!(status.map(|s| s.validity), Some(Validity::Invalid),
                    "Ingress {} (secret {:?}, annotations {:?}, routes to a badly annotated Service: {}): {:?}",
                    key, bad_secret, ingress.metadata.annotations, bad_service, status);
            }
        }
    }

    #[test]
    fn the_oldest_ingress_keeps_what_it_would_have_alone(world in world()) {
        let (_, statuses) = build(&world.snapshot(), &options());
        let Some(oldest) = world
            .ingresses
            .iter()
            .filter(|i| ingress_is_ours(i))
            .min_by_key(|i| by_age_key(&i.metadata))
        else {
            return Ok(());
        };
        let key = key_of(&oldest.metadata);
        // The same world with only this Ingress and what is older than it: the roots created before
        // it (contributions apply oldest first across kinds) and the delegates any root may reach,
        // roots among them: an older root that delegates to a younger one is invalid, while one
        // whose delegate is missing stays valid and keeps its TLS host.
        let mut delegated = BTreeSet::new();
        for r in &world.routes {
            delegated.extend(ingressroute::delegates(&key_of(&r.metadata), r));
        }
        let older_or_delegate = |r: &&IngressRoute| {
            r.spec.virtualhost.is_none()
                || r.metadata.creation_timestamp < oldest.metadata.creation_timestamp
                || delegated.contains(&key_of(&r.metadata))
        };
        let routes = world.routes.iter().filter(older_or_delegate).cloned().collect();
        let alone = World { ingresses: vec![oldest.clone()], routes, ..world.clone() };
        let (_, alone_statuses) = build(&alone.snapshot(), &options());
        let alone_status = status_of(&alone_statuses, ObjectKind::Ingress, &key).map(|s| s.validity);
        let status = status_of(&statuses, ObjectKind::Ingress, &key).map(|s| s.validity);
        prop_assert_eq!(status, alone_status,
            "the oldest Ingress {} ({:?}) is judged by the others", key, oldest.metadata.creation_timestamp);
    }

    #[test]
    fn the_oldest_root_keeps_its_fqdn(world in world()) {
        let (_, statuses) = build(&world.snapshot(), &options());
        let mut claims: BTreeMap<&str, Vec<&IngressRoute>> = BTreeMap::new();
        for r in world.routes.iter().filter(|r| ingress_route_is_ours(r)) {
            if let Some(vh) = &r.spec.virtualhost {
                claims.entry(vh.fqdn.as_str()).or_default().push(r);
            }
        }
        for (fqdn, mut roots) in claims {
            roots.sort_by_key(|r| by_age_key(&r.metadata));
            for younger in roots.iter().skip(1) {
                let key = key_of(&younger.metadata);
                let status = status_of(&statuses, ObjectKind::IngressRoute, &key);
                prop_assert_eq!(status.map(|s| s.validity), Some(Validity::Invalid),
                    "{} claims {} after {}: {:?}", key, fqdn, key_of(&roots[0].metadata), status);
            }
        }
    }

    #[test]
    fn routes_within_a_host_are_unique_and_most_specific_first(world in world()) {
        let (dag, _) = build(&world.snapshot(), &options());
        for routes in dag.virtual_hosts.values().map(|v| &v.routes).chain(dag.secure_virtual_hosts.values().map(|v| &v.routes)) {
            let keys: Vec<_> = routes.iter().map(|r| r.path.precedence()).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(keys, sorted);
        }
    }

    // Found by this property: routes conflicted only when their `PathMatch` values were equal, but
    // Envoy matches an element-wise prefix `/` (Ingress `Prefix`) and a string prefix `/`
    // (ImplementationSpecific, a default backend, an IngressRoute `match: /`) the same way, so across
    // objects one of them silently got nothing. The conflict check now knows the two spellings.
    #[test]

    fn no_route_is_shadowed_by_another_that_matches_the_same_requests(world in world()) {
        let (dag, _) = build(&world.snapshot(), &options());
        for (host, routes) in dag.virtual_hosts.iter().map(|(h, v)| (h, &v.routes)).chain(dag.secure_virtual_hosts.iter().map(|(h, v)| (h, &v.routes))) {
            let mut seen: BTreeMap<(&str, &str), &Route> = BTreeMap::new();
            for route in routes {
                // Within one object, a rule for `/` beside its default backend is what Kubernetes
                // means (rules first); across objects, one of them would be served for nothing.
                if let Some(first) = seen.insert(effective_match(&route.path), route).filter(|f| f.source != route.source) {
                    prop_assert!(false, "on {}, {:?} from {} is shadowed by {:?} from {}", host, route.path, route.source, first.path, first.source);
                }
            }
        }
    }

    #[test]
    fn the_output_is_deterministic(world in world()) {
        let snapshot = world.snapshot();
        prop_assert_eq!(build(&snapshot, &options()), build(&snapshot.clone(), &options()));
    }

    #[test]
    fn a_newcomer_ingressroute_never_takes_anything_from_the_others(world in world_with(3, 6), extra in ingress_route()) {
        let snapshot = world.snapshot();
        let (before, statuses_before) = build(&snapshot, &options());
        let mut extra = extra;
        let key = newcomer_meta(&mut extra.metadata);
        let mut with_extra = snapshot.clone();
        with_extra.ingress_routes.insert(key.clone(), std::sync::Arc::new(extra));
        let (after, statuses) = build(&with_extra, &options());
        match status_of(&statuses, ObjectKind::IngressRoute, &key) {
            Some(s) if s.validity == Validity::Valid => {}
            // Invalid, orphaned or of another class: it changes nothing at all.
            _ => prop_assert_eq!(&before, &after),
        }
        routes_kept(&before, &after)?;
        // Every object that was valid stays valid. (An orphan may become valid: a newcomer root can
        // adopt it by delegating to it.)
        for s in statuses_before.iter().filter(|s| s.validity == Validity::Valid) {
            let now = status_of(&statuses, s.kind, &s.object);
            prop_assert_eq!(now.map(|n| n.validity), Some(Validity::Valid), "{} was valid: {:?}", s.object, now);
        }
    }

    #[test]
    fn a_newcomer_never_changes_the_others_and_an_invalid_one_changes_nothing(world in world_with(6, 0), extra in ingress()) {
        let snapshot = world.snapshot();
        let (before, statuses_before) = build(&snapshot, &options());
        let mut extra = extra;
        let key = newcomer_meta(&mut extra.metadata);
        let mut with_extra = snapshot.clone();
        with_extra.ingresses.insert(key.clone(), std::sync::Arc::new(extra));
        let (after, statuses_after) = build(&with_extra, &options());
        match status_of(&statuses_after, ObjectKind::Ingress, &key) {
            Some(s) if s.validity == Validity::Valid => {}
            _ => prop_assert_eq!(&before, &after),
        }
        routes_kept(&before, &after)?;
        // Whatever the newcomer is, the objects already there keep their statuses.
        let others: Vec<_> = statuses_after.iter().filter(|s| s.object != key).cloned().collect();
        prop_assert_eq!(statuses_before, others);
    }

    // Found by this property: `build` applied every Ingress before every IngressRoute whatever their
    // age, so a new Ingress with TLS for an older root's fqdn took the host. Contributions of both
    // kinds are now applied oldest first.
    #[test]

    fn a_newcomer_ingress_never_takes_anything_from_an_ingressroute(world in world_with(0, 6), extra in ingress()) {
        let snapshot = world.snapshot();
        let (before, statuses_before) = build(&snapshot, &options());
        let mut extra = extra;
        let key = newcomer_meta(&mut extra.metadata);
        let mut with_extra = snapshot.clone();
        with_extra.ingresses.insert(key.clone(), std::sync::Arc::new(extra));
        let (after, statuses_after) = build(&with_extra, &options());
        routes_kept(&before, &after)?;
        for s in statuses_before.iter().filter(|s| s.validity == Validity::Valid) {
            let now = status_of(&statuses_after, s.kind, &s.object);
            prop_assert_eq!(now.map(|n| n.validity), Some(Validity::Valid), "{} was valid: {:?}", s.object, now);
        }
    }
}
