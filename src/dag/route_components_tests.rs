//! Components walked again only when they change, and the memoised build equal to the full one
//! after each change.

use crate::dag::{build, build_memoised, status_map, DagOptions, Memo};
use crate::store::Snapshot;

fn ir(name: &str, spec: &str) -> String {
    format!("apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: {name}, namespace: n}}\nspec: {spec}\n---\n")
}

const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: n}\nspec: {ports: [{port: 80}]}\n---\n\
    apiVersion: v1\nkind: Service\nmetadata: {name: tcp, namespace: n}\nspec: {ports: [{port: 8443}]}\n---\n";

/// Builds `objects` (IngressRoutes by name) with `memo`, checks the result against a full build,
/// and returns how many IngressRoutes and Ingresses were computed again.
fn step(memo: &mut Memo, objects: &[(&str, String)]) -> usize {
    let yaml: String = objects.iter().map(|(_, y)| y.as_str()).collect();
    let mut snapshot = Snapshot::default();
    let parsed = crate::source::file::parse_manifests("t.yaml", &format!("{SERVICES}{yaml}"))
        .expect("parses");
    for o in parsed {
        snapshot.insert(o);
    }
    let options = DagOptions::default();
    let (dag, statuses, _) = build_memoised(&snapshot, &options, memo);
    let (full_dag, full_statuses) = build(&snapshot, &options);
    assert_eq!(dag, full_dag);
    assert_eq!(statuses, status_map(full_statuses));
    memo.recomputed
}

#[test]
fn a_change_walks_again_only_the_roots_that_reach_it() {
    let mut world = vec![
        ("r1", ir("r1", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}, {match: /api, delegate: {name: c1}}]}")),
        ("c1", ir("c1", "{routes: [{match: /api, services: [{name: web, port: 80}]}]}")),
        ("r2", ir("r2", "{virtualhost: {fqdn: b.example.com, tls: {passthrough: true}}, tcpproxy: {delegate: {name: t}}}")),
        ("t", ir("t", "{tcpproxy: {services: [{name: tcp, port: 8443}]}}")),
        ("r3", ir("r3", "{virtualhost: {fqdn: c.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}, {match: /x, delegate: {name: later}}]}")),
    ];
    let mut memo = Memo::default();
    // r3's component has a member that does not exist yet: `later`.
    assert_eq!(step(&mut memo, &world), 6);
    assert_eq!(step(&mut memo, &world), 0);
    let set = |world: &mut Vec<(&str, String)>, name: &'static str, yaml: String| {
        world.retain(|(n, _)| *n != name);
        world.push((name, yaml));
    };
    // A delegated child: it and its root.
    set(
        &mut world,
        "c1",
        ir(
            "c1",
            "{routes: [{match: /api/v1, services: [{name: web, port: 80}]}]}",
        ),
    );
    assert_eq!(step(&mut memo, &world), 2);
    // A TCP proxy's delegate: it and its root.
    set(
        &mut world,
        "t",
        ir("t", "{tcpproxy: {services: [{name: web, port: 80}]}}"),
    );
    assert_eq!(step(&mut memo, &world), 2);
    // An IngressRoute no root reaches: orphaned, nothing walked.
    set(
        &mut world,
        "lost",
        ir(
            "lost",
            "{routes: [{match: /, services: [{name: web, port: 80}]}]}",
        ),
    );
    assert_eq!(step(&mut memo, &world), 0);
    // The delegate r3 waited for: r3's component (r3, later), not the others.
    set(
        &mut world,
        "later",
        ir(
            "later",
            "{routes: [{match: /x, services: [{name: web, port: 80}]}]}",
        ),
    );
    assert_eq!(step(&mut memo, &world), 2);
    // A root taking an older root's fqdn is refused without a walk; the older one is not walked
    // again either.
    set(&mut world, "r4", ir("r4", "{virtualhost: {fqdn: a.example.com}, routes: [{match: /, services: [{name: web, port: 80}]}]}"));
    assert_eq!(step(&mut memo, &world), 0);
}
