//! The DAG builder's rules, one table row per rule, on synthetic objects (no servers).

use rstest::rstest;

use super::*;
use crate::source::file::parse_manifests;
use crate::store::Snapshot;

const BACKENDS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: t}
spec: {ports: [{port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: t}
spec: {type: ExternalName, externalName: example.org, ports: [{port: 80}]}
"#;

fn snapshot(yaml: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for o in parse_manifests("test.yaml", &format!("{BACKENDS}\n---\n{yaml}")).unwrap() {
        s.insert(o);
    }
    s
}

fn ingress(name: &str, spec: &str) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: t}}\nspec: {spec}\n---\n")
}

fn rule(host: &str, path: &str, path_type: &str, backend: &str) -> String {
    format!("{{rules: [{{host: {host:?}, http: {{paths: [{{path: {path:?}, pathType: {path_type}, backend: {{service: {backend}}}}}]}}}}]}}")
}

const WEB: &str = "{name: web, port: {number: 80}}";

fn build_yaml(yaml: &str) -> (Dag, Vec<ObjectStatus>) {
    build(&snapshot(yaml), &DagOptions::default())
}

fn status_of<'a>(statuses: &'a [ObjectStatus], name: &str) -> Option<&'a ObjectStatus> {
    statuses.iter().find(|s| &*s.object.name == name)
}

fn tls_secret_yaml(name: &str, host: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: t}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(&cert.pem()),
        indent(&key.serialize_pem())
    )
}

/// One row per rule: the objects, then the subject's expected validity and a piece of its description.
#[rstest]
#[case::host_and_path_route_to_the_service(ingress("subject", &rule("a.example.com", "/", "Prefix", WEB)), Validity::Valid, "valid Ingress")]
#[case::port_by_name(ingress("subject", &rule("a.example.com", "/", "Prefix", "{name: web, port: {name: http}}")), Validity::Valid, "valid")]
#[case::missing_service(ingress("subject", &rule("a.example.com", "/", "Prefix", "{name: nope, port: {number: 80}}")), Validity::Invalid, "service \"t/nope\" not found")]
#[case::unknown_port_number(ingress("subject", &rule("a.example.com", "/", "Prefix", "{name: web, port: {number: 81}}")), Validity::Invalid, "has no port 81")]
#[case::unknown_port_name(ingress("subject", &rule("a.example.com", "/", "Prefix", "{name: web, port: {name: grpc}}")), Validity::Invalid, "has no port named \"grpc\"")]
#[case::relative_path(ingress("subject", &rule("a.example.com", "foo", "Prefix", WEB)), Validity::Invalid, "must start with \"/\"")]
#[case::bad_host(ingress("subject", &rule("A.example.com", "/", "Prefix", WEB)), Validity::Invalid, "not a valid DNS name")]
#[case::external_name_service(ingress("subject", &rule("a.example.com", "/", "Prefix", "{name: ext, port: {number: 80}}")), Validity::Invalid, "ExternalName")]
#[case::resource_backend(ingress("subject", "{rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {resource: {kind: Bucket, name: b}}}]}}]}"), Validity::Invalid, "resource backends are not supported")]
#[case::missing_tls_secret(ingress("subject", &format!("{{tls: [{{hosts: [a.example.com], secretName: nope}}], {}", &rule("a.example.com", "/", "Prefix", WEB)[1..])), Validity::Invalid, "TLS secret \"t/nope\" not found")]
#[case::tls_secret_in_another_namespace(ingress("subject", &format!("{{tls: [{{hosts: [a.example.com], secretName: other/tls}}], {}", &rule("a.example.com", "/", "Prefix", WEB)[1..])), Validity::Invalid, "TLSCertificateDelegation")]
#[case::route_already_owned_by_an_older_ingress(
    format!("{}{}", ingress("aaa-older", &rule("a.example.com", "/", "Prefix", "{name: api, port: {number: 9000}}")), ingress("subject", &rule("a.example.com", "/", "Prefix", WEB))),
    Validity::Invalid, "already routed by \"t/aaa-older\"")]
#[case::same_host_other_path_merges(
    format!("{}{}", ingress("aaa-older", &rule("a.example.com", "/api", "Prefix", "{name: api, port: {number: 9000}}")), ingress("subject", &rule("a.example.com", "/", "Prefix", WEB))),
    Validity::Valid, "valid")]
fn ingress_rule(#[case] yaml: String, #[case] validity: Validity, #[case] description: &str) {
    let (_, statuses) = build_yaml(&yaml);
    let status = status_of(&statuses, "subject").expect("the subject gets a status");
    assert_eq!(status.validity, validity, "{status}");
    assert!(status.description.contains(description), "{status}");
}

#[test]
fn exact_routes_come_first_then_longer_prefixes() {
    let yaml = ingress(
        "i",
        "{rules: [{host: a.example.com, http: {paths: [\
         {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}},\
         {path: /api/v1, pathType: Prefix, backend: {service: {name: api, port: {number: 9000}}}},\
         {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 9000}}}},\
         {path: /api/, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}",
    );
    let (dag, _) = build_yaml(&yaml);
    let paths: Vec<PathMatch> = dag.virtual_hosts["a.example.com"]
        .routes
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            PathMatch::Exact("/api".into()),
            PathMatch::SegmentPrefix("/api/v1".into()),
            PathMatch::SegmentPrefix("/api".into()),
            PathMatch::SegmentPrefix("/".into()),
        ]
    );
}

#[test]
fn default_backend_serves_the_star_host() {
    let (dag, statuses) = build_yaml(&ingress(
        "i",
        "{defaultBackend: {service: {name: web, port: {number: 80}}}}",
    ));
    assert_eq!(statuses[0].validity, Validity::Valid);
    let star = &dag.virtual_hosts["*"];
    assert_eq!(star.routes.len(), 1);
    assert_eq!(star.routes[0].clusters[0].name, "t/web/80");
    assert_eq!(dag.clusters["t/web/80"].eds_name, "t/web/http");
}

/// A plain cluster reads its port's EDS name (the port's name if it has one); a cluster with other
/// settings reads its own name, so it never waits on another cluster's endpoints.
#[test]
fn a_cluster_s_eds_name_is_its_port_s_or_its_own() {
    let grpc = "apiVersion: v1\nkind: Service\nmetadata: {name: grpc, namespace: t, annotations: {projectcontour.io/upstream-protocol.h2: \"http\"}}\nspec: {ports: [{name: http, port: 80}]}\n---\n";
    let (dag, statuses) = build_yaml(&format!(
        "{grpc}{}{}",
        ingress(
            "a",
            &rule(
                "a.example.com",
                "/",
                "Prefix",
                "{name: api, port: {number: 9000}}"
            )
        ),
        ingress(
            "g",
            &rule(
                "g.example.com",
                "/",
                "Prefix",
                "{name: grpc, port: {name: http}}"
            )
        ),
    ));
    assert!(
        statuses.iter().all(|s| s.validity == Validity::Valid),
        "{statuses:?}"
    );
    assert_eq!(dag.clusters["t/api/9000"].eds_name, "t/api/9000");
    let (name, h2) = dag
        .clusters
        .iter()
        .find(|(name, _)| name.starts_with("t/grpc/80/"))
        .expect("the h2 cluster");
    assert_eq!(name.len(), "t/grpc/80/".len() + 10, "{name}");
    assert_eq!(h2.eds_name, *name);
}

/// Routes to one Service port (by number and by name) share one cluster, which the contribution (kept
/// between builds) holds once.
#[test]
fn a_contribution_holds_each_cluster_once() {
    let paths = "[{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}, {path: /a, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}, {path: /b, pathType: Prefix, backend: {service: {name: api, port: {number: 9000}}}}]";
    let snap = snapshot(&ingress(
        "i",
        &format!("{{rules: [{{host: a.example.com, http: {{paths: {paths}}}}}]}}"),
    ));
    let key = crate::store::ObjectKey::new("t", "i");
    let object = snap.ingresses.get(&key).expect("the Ingress");
    let candidate = ingress::candidate(&snap, &DagOptions::default(), &key, object).expect("ours");
    let (contribution, _) = candidate.contribution.expect("valid");
    assert_eq!(contribution.routes.len(), 3);
    let names: Vec<&str> = contribution
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["t/api/9000", "t/web/80"]);
}

#[test]
fn an_invalid_ingress_leaves_the_others_untouched() {
    let valid = ingress("good", &rule("a.example.com", "/", "Prefix", WEB));
    let invalid = ingress(
        "bad",
        &rule(
            "a.example.com",
            "/x",
            "Prefix",
            "{name: nope, port: {number: 1}}",
        ),
    );
    let (alone, _) = build_yaml(&valid);
    let (together, statuses) = build_yaml(&format!("{valid}{invalid}"));
    assert_eq!(alone, together);
    assert_eq!(
        status_of(&statuses, "bad").unwrap().validity,
        Validity::Invalid
    );
}

#[test]
fn tls_makes_a_secure_virtual_host_with_the_same_routes() {
    let yaml = format!(
        "{}{}",
        tls_secret_yaml("cert", "a.example.com"),
        ingress(
            "i",
            &format!(
                "{{tls: [{{hosts: [a.example.com], secretName: cert}}], {}",
                &rule("a.example.com", "/", "Prefix", WEB)[1..]
            )
        )
    );
    let (dag, statuses) = build_yaml(&yaml);
    assert_eq!(statuses[0].validity, Validity::Valid, "{}", statuses[0]);
    let secure = &dag.secure_virtual_hosts["a.example.com"];
    assert_eq!(secure.secret.as_deref(), Some("t/cert"));
    assert_eq!(secure.routes, dag.virtual_hosts["a.example.com"].routes);
    assert!(dag.secrets.contains_key("t/cert"));
}

#[test]
fn a_secret_whose_key_does_not_match_its_certificate_is_reported() {
    let good = tls_secret_yaml("cert", "a.example.com");
    let other = tls_secret_yaml("other", "a.example.com");
    // Swap in the other secret's key.
    let key_start = |s: &str| s.find("  tls.key: |").unwrap();
    let mixed = format!(
        "{}{}",
        &good[..key_start(&good)],
        &other[key_start(&other)..]
    );
    let yaml = format!(
        "{mixed}{}",
        ingress(
            "i",
            &format!(
                "{{tls: [{{hosts: [a.example.com], secretName: cert}}], {}",
                &rule("a.example.com", "/", "Prefix", WEB)[1..]
            )
        )
    );
    let (dag, statuses) = build_yaml(&yaml);
    assert_eq!(statuses[0].validity, Validity::Invalid);
    assert!(
        statuses[0]
            .description
            .contains("does not belong to the certificate"),
        "{}",
        statuses[0]
    );
    assert!(dag.secure_virtual_hosts.is_empty());
}

#[test]
fn ingresses_of_another_class_are_ignored() {
    let yaml = ingress(
        "i",
        &format!(
            "{{ingressClassName: nginx, {}",
            &rule("a.example.com", "/", "Prefix", WEB)[1..]
        ),
    );
    let (dag, statuses) = build_yaml(&yaml);
    assert!(statuses.is_empty());
    assert!(dag.virtual_hosts.is_empty());
    let (dag, statuses) = build(
        &snapshot(&yaml),
        &DagOptions {
            ingress_class_name: "nginx".into(),
            ..DagOptions::default()
        },
    );
    assert_eq!(statuses.len(), 1);
    assert!(dag.virtual_hosts.contains_key("a.example.com"));
}

/// The route limit counts each host's routes apart: an object with two hosts at the limit each is
/// valid, and one more route on either host is refused, naming that host.
#[test]
fn the_route_limit_counts_each_host_apart() {
    let host = |host: &str, paths: &[&str]| {
        let paths: Vec<String> = paths
            .iter()
            .map(|p| format!("{{path: {p:?}, pathType: Prefix, backend: {{service: {WEB}}}}}"))
            .collect();
        format!(
            "{{host: {host:?}, http: {{paths: [{}]}}}}",
            paths.join(", ")
        )
    };
    let yaml = ingress(
        "a-both",
        &format!(
            "{{rules: [{}, {}]}}",
            host("a.example.com", &["/x", "/y"]),
            host("b.example.com", &["/x", "/y"])
        ),
    ) + &ingress("b-more", &rule("b.example.com", "/z", "Prefix", WEB));
    let options = DagOptions::with_route_limit(2);
    let (dag, statuses) = build(&snapshot(&yaml), &options);
    let of = |name| status_of(&statuses, name).expect("a status");
    assert_eq!(of("a-both").validity, Validity::Valid, "{}", of("a-both"));
    assert_eq!(of("b-more").validity, Validity::Invalid);
    assert!(
        of("b-more")
            .description
            .contains("host \"b.example.com\" would have 3 routes"),
        "{}",
        of("b-more")
    );
    assert_eq!(dag.virtual_hosts["a.example.com"].routes.len(), 2);
    assert_eq!(dag.virtual_hosts["b.example.com"].routes.len(), 2);
}

#[test]
fn input_order_does_not_change_the_output() {
    let a = ingress("a", &rule("a.example.com", "/", "Prefix", WEB));
    let b = ingress(
        "b",
        &rule(
            "a.example.com",
            "/",
            "Prefix",
            "{name: api, port: {number: 9000}}",
        ),
    );
    assert_eq!(
        build_yaml(&format!("{a}{b}")),
        build_yaml(&format!("{b}{a}"))
    );
}
