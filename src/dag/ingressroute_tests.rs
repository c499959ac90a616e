//! IngressRoute rules, one table row per rule, on synthetic objects.

use rstest::rstest;

use super::*;
use crate::source::file::parse_manifests;
use crate::store::Snapshot;

const BACKENDS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {ports: [{name: http, port: 80}]}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: t}\nspec: {ports: [{port: 9000}]}\n---\n";

fn ir(namespace: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n")
}

fn build_yaml(yaml: &str, options: &DagOptions) -> (Dag, Vec<ObjectStatus>) {
    let mut s = Snapshot::default();
    for o in parse_manifests("t.yaml", &format!("{BACKENDS}{yaml}")).unwrap() {
        s.insert(o);
    }
    build(&s, options)
}

fn status<'a>(statuses: &'a [ObjectStatus], name: &str) -> &'a ObjectStatus {
    statuses
        .iter()
        .find(|s| &*s.object.name == name)
        .expect("a status")
}

const ROOT: &str =
    "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}]}";

#[rstest]
#[case::a_root_with_a_service_is_valid(
    ir("t", "subject", ROOT),
    Validity::Valid,
    "valid IngressRoute"
)]
#[case::a_second_root_for_an_fqdn_is_refused_and_the_first_keeps_it(format!("{}{}", ir("t", "other", ROOT), ir("t", "subject", ROOT)), Validity::Invalid, "fqdn \"a.example.com\" is used in multiple IngressRoutes: t/other, t/subject")]
#[case::an_ingressroute_no_root_reaches_is_orphaned(
    ir(
        "t",
        "subject",
        "{routes: [{match: /, services: [{name: web, port: 80}]}]}"
    ),
    Validity::Orphaned,
    "not part of a delegation chain from a root IngressRoute"
)]
#[case::missing_service(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: nope, port: 80}]}]}"), Validity::Invalid, "Service [nope:80] is invalid or missing")]
#[case::a_delegated_child_is_valid(
    format!("{}{}", ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /api, delegate: {name: subject}}]}"), ir("t", "subject", "{routes: [{match: /api/v1, services: [{name: api, port: 9000}]}]}")),
    Validity::Valid, "valid IngressRoute")]
#[case::a_child_prefix_must_extend_the_parent(
    format!("{}{}", ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /api, delegate: {name: subject}}]}"), ir("t", "subject", "{routes: [{match: /other, services: [{name: api, port: 9000}]}]}")),
    Validity::Invalid, "the path prefix \"/other\" does not match the parent's path prefix \"/api\"")]
#[case::a_delegation_cycle_is_reported(
    format!("{}{}{}", ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, delegate: {name: a}}]}"), ir("t", "a", "{routes: [{match: /, delegate: {name: subject}}]}"), ir("t", "subject", "{routes: [{match: /, delegate: {name: a}}]}")),
    Validity::Invalid, "route creates a delegation cycle: t/root -> t/a -> t/subject -> t/a")]
#[case::a_root_cannot_delegate_to_a_root(
    format!("{}{}", ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, delegate: {name: other}}]}"), ir("t", "other", "{virtualhost: {fqdn: b.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}]}")),
    Validity::Invalid, "cannot delegate to another root")]
#[case::a_missing_delegate_is_noted_and_the_rest_served(
    ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}, {match: /x, delegate: {name: later}}]}"),
    Validity::Valid, "valid IngressRoute; route \"/x\": delegate \"t/later\" not found")]
#[case::a_wildcard_fqdn_is_refused(ir("t", "subject", "{virtualhost: {fqdn: '*.example.com'}, routes: [{match: /, services: [{name: web, port: 80}]}]}"), Validity::Invalid, "wildcard")]
#[case::a_secret_in_another_namespace_needs_a_delegation(ir("t", "subject", "{virtualhost: {fqdn: a.example.com, tls: {secretName: certs/wild}}, routes: [{match: /, services: [{name: web, port: 80}]}]}"), Validity::Invalid, "is not delegated to namespace \"t\"")]
#[case::an_out_of_range_timeout_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}], timeoutPolicy: {request: 100000000000h}}]}"), Validity::Invalid, "timeoutPolicy.request: \"100000000000h\": 360000000000000s is longer than the longest duration Envoy accepts")]
#[case::an_out_of_range_per_try_timeout_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}], retryPolicy: {count: 2, perTryTimeout: 9999999999s}}]}"), Validity::Invalid, "retryPolicy.perTryTimeout")]
#[case::a_prefix_rewrite_with_crlf_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}], prefixRewrite: \"/a\\r\\nx: y\"}]}"), Validity::Invalid, "prefixRewrite: \"/a\\r\\nx: y\" contains the character '\\r'")]
#[case::a_match_with_a_nul_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: \"/a\\0\", services: [{name: web, port: 80}]}]}"), Validity::Invalid, "route match \"/a\\0\" contains the character '\\0'")]
#[case::weights_beyond_32_bits_are_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, weight: 4294967295}, {name: api, port: 9000, weight: 1}]}]}"), Validity::Invalid, "the weights add up to 4294967296")]
#[case::a_negative_health_check_interval_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, healthCheck: {path: /hz, intervalSeconds: -5}}]}]}"), Validity::Invalid, "healthCheck.intervalSeconds -5 is negative")]
#[case::a_huge_health_check_timeout_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, healthCheck: {path: /hz, timeoutSeconds: 9223372036854775807}}]}]}"), Validity::Invalid, "healthCheck.timeoutSeconds")]
#[case::a_health_check_host_with_lf_is_refused(ir("t", "subject", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, healthCheck: {path: /hz, host: \"a\\nb\"}}]}]}"), Validity::Invalid, "healthCheck.host")]
#[case::an_idn_fqdn_needs_its_punycode_form(ir("t", "subject", "{virtualhost: {fqdn: b\u{fc}cher.example}, routes: [{match: /, services: [{name: web, port: 80}]}]}"), Validity::Invalid, "IDNA (punycode)")]
#[case::an_upper_case_fqdn_is_refused(ir("t", "subject", "{virtualhost: {fqdn: A.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}]}"), Validity::Invalid, "not a valid DNS name")]
fn ingressroute_rule(#[case] yaml: String, #[case] validity: Validity, #[case] description: &str) {
    let (_, statuses) = build_yaml(&yaml, &DagOptions::default());
    let s = status(&statuses, "subject");
    assert_eq!(s.validity, validity, "{s}");
    assert!(s.description.contains(description), "{s}");
}

#[test]
fn delegated_routes_land_on_the_root_host_and_the_root_stays_valid_when_a_child_is_not() {
    let yaml = format!(
        "{}{}{}",
        ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}, {match: /api, delegate: {name: good}}, {match: /bad, delegate: {name: bad}}]}"),
        ir("t", "good", "{routes: [{match: /api, services: [{name: api, port: 9000}]}]}"),
        ir("t", "bad", "{routes: [{match: /bad, services: [{name: nope, port: 1}]}]}"),
    );
    let (dag, statuses) = build_yaml(&yaml, &DagOptions::default());
    assert_eq!(status(&statuses, "root").validity, Validity::Valid);
    assert_eq!(status(&statuses, "good").validity, Validity::Valid);
    assert_eq!(status(&statuses, "bad").validity, Validity::Invalid);
    let paths: Vec<&str> = dag.virtual_hosts["a.example.com"]
        .routes
        .iter()
        .map(|r| r.path.path())
        .collect();
    assert_eq!(paths, ["/api", "/"]);
}

#[test]
fn weights_split_traffic_and_no_weights_split_it_equally() {
    let yaml = ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, weight: 90}, {name: api, port: 9000, weight: 10}]}, {match: /even, services: [{name: web, port: 80}, {name: api, port: 9000}]}]}");
    let (dag, _) = build_yaml(&yaml, &DagOptions::default());
    let routes = &dag.virtual_hosts["a.example.com"].routes;
    let weights = |i: usize| {
        routes[i]
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect::<Vec<_>>()
    };
    assert_eq!(weights(0), [("t/web/80", 1), ("t/api/9000", 1)]);
    assert_eq!(weights(1), [("t/web/80", 90), ("t/api/9000", 10)]);
}

/// A route's clusters say which balance on the affinity cookie, so its translation needs no lookup
/// of the DAG's clusters.
#[test]
fn a_cookie_strategy_marks_its_cluster_for_session_affinity() {
    let yaml = ir("t", "root", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80, strategy: Cookie}, {name: api, port: 9000}]}, {match: /plain, services: [{name: web, port: 80}]}]}");
    let (dag, _) = build_yaml(&yaml, &DagOptions::default());
    let routes = &dag.virtual_hosts["a.example.com"].routes;
    let affinity = |path: &str| {
        let route = routes.iter().find(|r| r.path.path() == path).unwrap();
        route
            .clusters
            .iter()
            .map(|c| c.session_affinity)
            .collect::<Vec<_>>()
    };
    assert_eq!(affinity("/"), [true, false]);
    assert_eq!(affinity("/plain"), [false]);
}

#[test]
fn roots_outside_the_root_namespaces_are_refused() {
    let options = DagOptions {
        root_namespaces: vec!["edge".into()],
        ..DagOptions::default()
    };
    let (dag, statuses) = build_yaml(&ir("t", "root", ROOT), &options);
    assert_eq!(status(&statuses, "root").validity, Validity::Invalid);
    assert!(dag.virtual_hosts.is_empty());
}

#[test]
fn the_first_root_keeps_a_contested_fqdn() {
    let (dag, statuses) = build_yaml(
        &format!("{}{}", ir("t", "first", ROOT), ir("t", "second", ROOT)),
        &DagOptions::default(),
    );
    assert_eq!(status(&statuses, "first").validity, Validity::Valid);
    assert_eq!(status(&statuses, "second").validity, Validity::Invalid);
    assert_eq!(
        &*dag.virtual_hosts["a.example.com"].routes[0].source.name,
        "first"
    );
}

#[test]
fn a_passthrough_root_with_only_a_tcpproxy_is_a_secure_host_without_routes() {
    let (dag, statuses) = build_yaml(
        &ir(
            "t",
            "subject",
            "{virtualhost: {fqdn: a.example.com, tls: {passthrough: true}}, tcpproxy: {services: [{name: web, port: 80}]}}",
        ),
        &DagOptions::default(),
    );
    assert_eq!(status(&statuses, "subject").validity, Validity::Valid);
    let secure = &dag.secure_virtual_hosts["a.example.com"];
    assert!(secure.routes.is_empty() && secure.secret.is_none());
    let proxy = secure.tcp_proxy.as_ref().expect("the host proxies TCP");
    assert_eq!(proxy.len(), 1);
    assert!(dag.clusters.contains_key(&proxy[0].name));
    assert!(
        !dag.virtual_hosts.contains_key("a.example.com"),
        "nothing over plain HTTP"
    );
}
