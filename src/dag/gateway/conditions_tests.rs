//! The conditions each decision gives, by type, status and reason.

use super::*;
use crate::store::ObjectKey;

/// `(type, status, reason)` of each condition, for comparing.
fn brief(conditions: &[Condition]) -> Vec<(&'static str, bool, &'static str)> {
    conditions
        .iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect()
}

fn facts<'a>(
    problem: Option<&'a ListenerProblem>,
    kinds: &'a [RouteKind],
    certs: &'a CertificateRefs,
) -> ListenerFacts<'a> {
    ListenerFacts {
        problem,
        invalid_kinds: kinds,
        certificates: certs,
    }
}

#[test]
fn a_good_listener_is_accepted_resolved_and_programmed() {
    let c = listener(&facts(None, &[], &CertificateRefs::Resolved), 4);
    assert_eq!(
        brief(&c),
        [
            ("Accepted", true, "Accepted"),
            ("Conflicted", false, "NoConflicts"),
            ("ResolvedRefs", true, "ResolvedRefs"),
            ("Programmed", true, "Programmed"),
        ]
    );
    assert!(c.iter().all(|c| c.observed_generation == 4));
}

#[test]
fn each_listener_problem_has_its_reason() {
    let holder = (ObjectKey::new("infra", "old"), "http".to_string());
    let conflict = ListenerProblem::HostnameConflict { port: 8080, holder };
    let c = listener(&facts(Some(&conflict), &[], &CertificateRefs::Resolved), 1);
    assert_eq!(brief(&c)[1], ("Conflicted", true, "HostnameConflict"));
    assert_eq!(brief(&c)[3], ("Programmed", false, "Invalid"));
    assert!(c[1].message.contains("infra/old"), "{}", c[1].message);

    let tcp = ListenerProblem::UnsupportedProtocol("TCP".to_string());
    let c = listener(&facts(Some(&tcp), &[], &CertificateRefs::Resolved), 1);
    assert_eq!(brief(&c)[0], ("Accepted", false, "UnsupportedProtocol"));
    assert_eq!(brief(&c)[3], ("Programmed", false, "Invalid"));

    let grpc = [RouteKind {
        group: "gateway.networking.k8s.io".to_string(),
        kind: "GRPCRoute".to_string(),
    }];
    let c = listener(&facts(None, &grpc, &CertificateRefs::Resolved), 1);
    assert_eq!(brief(&c)[2], ("ResolvedRefs", false, "InvalidRouteKinds"));
    assert_eq!(brief(&c)[3], ("Programmed", true, "Programmed"));

    let bad_cert = CertificateRefs::Invalid("Secret infra/c does not exist".to_string());
    let c = listener(&facts(None, &[], &bad_cert), 1);
    assert_eq!(
        brief(&c)[2],
        ("ResolvedRefs", false, "InvalidCertificateRef")
    );
    assert_eq!(brief(&c)[3], ("Programmed", false, "Invalid"));

    let foreign = CertificateRefs::NotPermitted("no ReferenceGrant".to_string());
    assert_eq!(
        brief(&listener(&facts(None, &[], &foreign), 1))[2],
        ("ResolvedRefs", false, "RefNotPermitted")
    );
}

#[test]
fn a_gateway_is_accepted_while_any_listener_serves() {
    let good = listener(&facts(None, &[], &CertificateRefs::Resolved), 2);
    let tcp = ListenerProblem::UnsupportedProtocol("TCP".to_string());
    let bad = listener(&facts(Some(&tcp), &[], &CertificateRefs::Resolved), 2);
    assert_eq!(
        brief(&gateway(&[good.clone(), good.clone()], 2)),
        [
            ("Accepted", true, "Accepted"),
            ("Programmed", true, "Programmed")
        ]
    );
    assert_eq!(
        brief(&gateway(&[good, bad.clone()], 2)),
        [
            ("Accepted", true, "ListenersNotValid"),
            ("Programmed", true, "Programmed")
        ]
    );
    assert_eq!(
        brief(&gateway(&[bad], 2)),
        [
            ("Accepted", false, "ListenersNotValid"),
            ("Programmed", false, "Invalid")
        ]
    );
}

#[test]
fn a_route_parent_reports_attachment_then_references() {
    let attached = Ok(vec![Attached {
        listener: "http".to_string(),
        hostnames: vec!["*".to_string()],
    }]);
    assert_eq!(
        brief(&route_parent(&attached, &[], &[], &[], 3)),
        [
            ("Accepted", true, "Accepted"),
            ("ResolvedRefs", true, "ResolvedRefs")
        ]
    );
    let refused = Err(NotAttached::NotAllowedByListeners("no".to_string()));
    assert_eq!(
        brief(&route_parent(&refused, &[], &[], &[], 3))[0],
        ("Accepted", false, "NotAllowedByListeners")
    );
    let invalid = ["spec.rules[0]: bad".to_string()];
    assert_eq!(
        brief(&route_parent(&attached, &invalid, &[], &[], 3))[0],
        ("Accepted", false, "UnsupportedValue")
    );
    let unserved = [Unserved {
        reason: "IncompatibleFilters",
        message: "spec.rules[0].filters[0]: isobar does not serve URLRewrite filters".to_string(),
    }];
    let c = route_parent(&attached, &[], &unserved, &[], 3);
    assert_eq!(brief(&c)[0], ("Accepted", false, "IncompatibleFilters"));
    assert!(c[0].message.contains("URLRewrite"), "{}", c[0].message);
    let unresolved = [
        Unresolved::RefNotPermitted("Service b/web: no grant".to_string()),
        Unresolved::BackendNotFound("Service a/gone does not exist".to_string()),
    ];
    let c = route_parent(&attached, &[], &[], &unresolved, 3);
    assert_eq!(brief(&c)[1], ("ResolvedRefs", false, "RefNotPermitted"));
    assert!(
        c[1].message.contains("no grant") && c[1].message.contains("gone"),
        "{}",
        c[1].message
    );
}
