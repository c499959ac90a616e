//! Work and output stay linear in the input for adversarial delegation shapes, and the limits show up
//! in statuses. Work is counted by the builder (states entered, routes examined and collected), not
//! timed, so these tests are exact and fast.

use proptest::prelude::*;

use super::*;
use crate::crd::{Delegate, IngressRoute, IngressRouteSpec, Route as CrdRoute, RouteService};
use crate::store::{KubeObject as Object, Snapshot};

const NS: &str = "t";

fn service() -> Object {
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {NS}}}\nspec: {{ports: [{{port: 80}}]}}\n"
    );
    crate::source::file::parse_manifests("svc.yaml", &yaml)
        .expect("service parses")
        .remove(0)
}

fn delegating(prefix: &str, to: &str) -> CrdRoute {
    CrdRoute {
        match_: prefix.to_string(),
        delegate: Some(Delegate {
            name: to.to_string(),
            namespace: None,
        }),
        ..CrdRoute::default()
    }
}

fn serving(prefix: &str) -> CrdRoute {
    CrdRoute {
        match_: prefix.to_string(),
        services: vec![RouteService {
            name: "web".to_string(),
            port: 80,
            ..RouteService::default()
        }],
        ..CrdRoute::default()
    }
}

fn ingress_route(name: &str, fqdn: Option<&str>, routes: Vec<CrdRoute>) -> Object {
    let mut ir = IngressRoute::new(
        name,
        IngressRouteSpec {
            virtualhost: fqdn.map(|f| crate::crd::VirtualHost {
                fqdn: f.to_string(),
                tls: None,
            }),
            routes,
            tcpproxy: None,
        },
    );
    ir.metadata.namespace = Some(NS.to_string());
    Object::IngressRoute(std::sync::Arc::new(ir))
}

fn snapshot(objects: Vec<Object>) -> Snapshot {
    let mut s = Snapshot::default();
    s.insert(service());
    for o in objects {
        s.insert(o);
    }
    s
}

/// The shapes that made the recursive walk explode, and the wide ones.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `n` IngressRoutes in a chain, each with `k` routes all delegating `/` to the next one: a
    /// recursive walk visits the last one k^n times.
    FanOutChain { n: usize, k: usize },
    /// A root delegating to `n` parents that all delegate to the same child.
    WideFanIn { n: usize },
    /// `roots` roots (each its own host) delegating `/` to one shared chain of `chain` IngressRoutes.
    SharedByManyRoots { roots: usize, chain: usize },
}

fn objects(shape: Shape) -> (Vec<Object>, usize) {
    let mut out = Vec::new();
    let mut routes = 0;
    match shape {
        Shape::FanOutChain { n, k } => {
            for i in 0..n {
                let name = format!("c{i}");
                let rs = if i + 1 == n {
                    vec![serving("/")]
                } else {
                    (0..k)
                        .map(|_| delegating("/", &format!("c{}", i + 1)))
                        .collect()
                };
                routes += rs.len();
                out.push(ingress_route(
                    &name,
                    (i == 0).then_some("a.example.com"),
                    rs,
                ));
            }
        }
        Shape::WideFanIn { n } => {
            out.push(ingress_route(
                "root",
                Some("a.example.com"),
                (0..n).map(|i| delegating("/", &format!("p{i}"))).collect(),
            ));
            for i in 0..n {
                out.push(ingress_route(
                    &format!("p{i}"),
                    None,
                    vec![delegating("/", "child")],
                ));
            }
            out.push(ingress_route("child", None, vec![serving("/")]));
            routes += 2 * n + 1;
        }
        Shape::SharedByManyRoots { roots, chain } => {
            for r in 0..roots {
                let host = if r == 0 {
                    "a.example.com".to_string()
                } else {
                    format!("r{r}.example.com")
                };
                out.push(ingress_route(
                    &format!("root{r}"),
                    Some(&host),
                    vec![delegating("/", "c0")],
                ));
            }
            for i in 0..chain {
                let rs = if i + 1 == chain {
                    vec![serving("/")]
                } else {
                    vec![delegating("/", &format!("c{}", i + 1))]
                };
                out.push(ingress_route(&format!("c{i}"), None, rs));
            }
            routes += roots + chain;
        }
    }
    (out, routes)
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (2usize..40, 1usize..5).prop_map(|(n, k)| Shape::FanOutChain { n, k }),
        (1usize..300).prop_map(|n| Shape::WideFanIn { n }),
        (1usize..100, 1usize..30)
            .prop_map(|(roots, chain)| Shape::SharedByManyRoots { roots, chain }),
    ]
}

fn unbounded() -> DagOptions {
    DagOptions {
        limits: DagLimits {
            max_delegation_depth: usize::MAX,
            max_routes_per_virtual_host: usize::MAX,
        },
        ..DagOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::proptest_cases::or(64), ..ProptestConfig::default() })]

    /// Work grows with objects + routes, whatever the shape: at most 4 units per route and object
    /// (the old recursive walk needed k^n for a fan-out chain).
    #[test]
    fn work_is_linear_in_objects_and_routes(shape in shape()) {
        let (objects, routes) = objects(shape);
        let n_objects = objects.len();
        let (_, statuses, work) = build_counting_work(&snapshot(objects), &unbounded());
        let bound = 4 * (n_objects + routes) as u64 + 8;
        prop_assert!(work <= bound, "{shape:?}: work {work} > {bound}");
        prop_assert_eq!(statuses.len(), n_objects);
    }

    /// Every object of these shapes is reachable and valid; the served routes are the distinct ones.
    #[test]
    fn adversarial_shapes_are_served_once_each(shape in shape()) {
        let (objects, _) = objects(shape);
        let (dag, statuses, _) = build_counting_work(&snapshot(objects), &unbounded());
        for s in &statuses {
            prop_assert_eq!(s.validity, Validity::Valid, "{}", s);
        }
        let vhost = &dag.virtual_hosts["a.example.com"];
        prop_assert_eq!(vhost.routes.len(), 1);
        if let Shape::SharedByManyRoots { roots, .. } = shape {
            prop_assert_eq!(dag.virtual_hosts.len(), roots);
        }
    }
}

#[test]
fn the_field_report_shape_of_31_routes_with_two_delegations_each_is_cheap() {
    let (objects, routes) = objects(Shape::FanOutChain { n: 31, k: 2 });
    let (dag, statuses, work) = build_counting_work(&snapshot(objects), &DagOptions::default());
    assert!(work < 4 * (31 + routes) as u64, "work {work}");
    assert!(statuses.iter().all(|s| s.validity == Validity::Valid));
    assert_eq!(dag.virtual_hosts["a.example.com"].routes.len(), 1);
}

#[test]
fn a_linear_chain_of_5000_is_walked_in_linear_work_without_deep_recursion() {
    let n = 5_000;
    let (objects, routes) = objects(Shape::FanOutChain { n, k: 1 });
    // The walk keeps its own stack: with the default 2 MiB test thread stack a recursive walk of
    // 5,000 levels would overflow it.
    let (dag, statuses, work) = build_counting_work(&snapshot(objects), &unbounded());
    assert!(work <= 4 * (n + routes) as u64, "work {work}");
    assert!(statuses.iter().all(|s| s.validity == Validity::Valid));
    assert_eq!(dag.virtual_hosts["a.example.com"].routes.len(), 1);
}

#[test]
fn a_delegate_beyond_the_depth_limit_is_invalid_naming_the_limit_and_the_rest_orphaned() {
    let (objects, _) = objects(Shape::FanOutChain { n: 40, k: 1 });
    let options = DagOptions::default();
    let limit = options.limits.max_delegation_depth;
    let (dag, statuses, _) = build_counting_work(&snapshot(objects), &options);
    let of = |i: usize| {
        statuses
            .iter()
            .find(|s| *s.object.name == format!("c{i}"))
            .expect("a status")
    };
    for i in 0..limit {
        assert_eq!(of(i).validity, Validity::Valid, "{}", of(i));
    }
    let beyond = of(limit);
    assert_eq!(beyond.validity, Validity::Invalid);
    assert!(
        beyond
            .description
            .contains(&format!("delegation depth limit of {limit}")),
        "{beyond}"
    );
    assert_eq!(of(limit + 1).validity, Validity::Orphaned);
    // The service route sits at the end of the chain, beyond the limit: nothing is served, and the
    // root stays valid.
    assert!(!dag.virtual_hosts.contains_key("a.example.com"));
}

#[test]
fn a_root_with_more_routes_than_the_limit_is_invalid_and_others_are_untouched() {
    let objects = vec![
        ingress_route(
            "root",
            Some("a.example.com"),
            (0..50).map(|i| serving(&format!("/p{i}"))).collect(),
        ),
        ingress_route("other", Some("b.example.com"), vec![serving("/")]),
    ];
    let options = DagOptions::with_route_limit(20);
    let (dag, statuses, _) = build_counting_work(&snapshot(objects), &options);
    let root = statuses
        .iter()
        .find(|s| &*s.object.name == "root")
        .expect("root");
    assert_eq!(root.validity, Validity::Invalid);
    assert!(
        root.description
            .contains("limit of 20 routes per virtual host"),
        "{root}"
    );
    assert!(!dag.virtual_hosts.contains_key("a.example.com"));
    assert_eq!(dag.virtual_hosts["b.example.com"].routes.len(), 1);
}
