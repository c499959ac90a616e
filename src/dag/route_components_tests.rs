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
    step_with(memo, objects, &DagOptions::default())
}

/// [`step`] with `options`.
fn step_with(memo: &mut Memo, objects: &[(&str, String)], options: &DagOptions) -> usize {
    let yaml: String = objects.iter().map(|(_, y)| y.as_str()).collect();
    let mut snapshot = Snapshot::default();
    let parsed = crate::source::file::parse_manifests("t.yaml", &format!("{SERVICES}{yaml}"))
        .expect("parses");
    for o in parsed {
        snapshot.insert(o);
    }
    let (dag, statuses, _) = build_memoised(&snapshot, options, memo);
    let (full_dag, full_statuses) = build(&snapshot, options);
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

/// Replaces (or adds) IngressRoute `name` in `world`.
fn set(world: &mut Vec<(&'static str, String)>, name: &'static str, spec: &str) {
    world.retain(|(n, _)| *n != name);
    world.push((name, ir(name, spec)));
}

const SERVE: &str = "{match: /, services: [{name: web, port: 80}]}";

#[test]
fn components_merge_split_and_hand_over_an_fqdn() {
    let mut world = Vec::new();
    set(&mut world, "r1", &format!("{{virtualhost: {{fqdn: a.example.com}}, routes: [{SERVE}, {{match: /x, delegate: {{name: x}}}}]}}"));
    set(
        &mut world,
        "x",
        "{routes: [{match: /x, services: [{name: web, port: 80}]}]}",
    );
    set(
        &mut world,
        "r2",
        &format!("{{virtualhost: {{fqdn: b.example.com}}, routes: [{SERVE}]}}"),
    );
    let mut memo = Memo::default();
    assert_eq!(step(&mut memo, &world), 3);
    // r2 delegates to r1's child too: the two components become one, walked again.
    set(&mut world, "r2", &format!("{{virtualhost: {{fqdn: b.example.com}}, routes: [{SERVE}, {{match: /x, delegate: {{name: x}}}}]}}"));
    assert_eq!(step(&mut memo, &world), 3);
    // And stops: two again.
    set(
        &mut world,
        "r2",
        &format!("{{virtualhost: {{fqdn: b.example.com}}, routes: [{SERVE}]}}"),
    );
    assert_eq!(step(&mut memo, &world), 3);
    // An orphan joins when a root starts delegating to it, and its own delegate with it.
    set(
        &mut world,
        "o1",
        "{routes: [{match: /o, delegate: {name: o2}}]}",
    );
    set(
        &mut world,
        "o2",
        "{routes: [{match: /o, services: [{name: web, port: 80}]}]}",
    );
    assert_eq!(step(&mut memo, &world), 0);
    set(&mut world, "r2", &format!("{{virtualhost: {{fqdn: b.example.com}}, routes: [{SERVE}, {{match: /o, delegate: {{name: o1}}}}]}}"));
    assert_eq!(step(&mut memo, &world), 3);
    // A child deleted: its root is walked again, its delegate orphaned.
    world.retain(|(n, _)| *n != "o1");
    assert_eq!(step(&mut memo, &world), 2);
    // A newer root claiming r1's fqdn is refused; when r1 goes, it gets the fqdn and is walked.
    set(
        &mut world,
        "r3",
        &format!("{{virtualhost: {{fqdn: a.example.com}}, routes: [{SERVE}]}}"),
    );
    assert_eq!(step(&mut memo, &world), 0);
    world.retain(|(n, _)| *n != "r1");
    assert_eq!(step(&mut memo, &world), 1);
}

#[test]
fn a_class_change_takes_an_ingress_route_out_and_back() {
    let other = |spec: &str| {
        ir("c", spec).replace(
            "metadata: {name: c, namespace: n}",
            "metadata: {name: c, namespace: n, annotations: {kubernetes.io/ingress.class: other}}",
        )
    };
    let child = "{routes: [{match: /api, services: [{name: web, port: 80}]}]}";
    let mut world = Vec::new();
    set(&mut world, "r", &format!("{{virtualhost: {{fqdn: a.example.com}}, routes: [{SERVE}, {{match: /api, delegate: {{name: c}}}}]}}"));
    set(&mut world, "c", child);
    let mut memo = Memo::default();
    assert_eq!(step(&mut memo, &world), 2);
    world.retain(|(n, _)| *n != "c");
    world.push(("c", other(child)));
    assert_eq!(step(&mut memo, &world), 2);
    set(&mut world, "c", child);
    assert_eq!(step(&mut memo, &world), 2);
}

#[test]
fn roots_outside_the_root_namespaces_are_refused_without_a_walk() {
    let options = DagOptions {
        root_namespaces: vec!["elsewhere".into()],
        ..DagOptions::default()
    };
    let mut world = Vec::new();
    set(
        &mut world,
        "r",
        &format!("{{virtualhost: {{fqdn: a.example.com}}, routes: [{SERVE}]}}"),
    );
    let mut memo = Memo::default();
    assert_eq!(step_with(&mut memo, &world, &options), 0);
    set(
        &mut world,
        "r",
        &format!("{{virtualhost: {{fqdn: b.example.com}}, routes: [{SERVE}]}}"),
    );
    assert_eq!(step_with(&mut memo, &world, &options), 0);
}

#[test]
fn differing_names_keys_in_one_list_only_and_keys_whose_status_changed() {
    use crate::dag::Validity;
    use crate::store::ObjectKey;
    let entry =
        |name: &str, v: Validity, why: &str| (ObjectKey::new("n", name), (v, why.to_string()));
    let old = [
        entry("a", Validity::Valid, "ok"),
        entry("b", Validity::Valid, "ok"),
        entry("c", Validity::Invalid, "bad port"),
        entry("e", Validity::Orphaned, "no root"),
    ];
    let new = [
        entry("b", Validity::Valid, "ok"),
        entry("c", Validity::Invalid, "bad path"),
        entry("d", Validity::Valid, "ok"),
        entry("e", Validity::Orphaned, "no root"),
    ];
    let names: Vec<&str> = super::differing(&old, &new).map(|k| &*k.name).collect();
    assert_eq!(names, ["a", "c", "d"]);
    assert_eq!(super::differing(&new, &new).count(), 0);
}
