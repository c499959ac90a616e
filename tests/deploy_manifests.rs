//! `deploy/` holds what the code generates: a change to the CRD types must come with the regenerated
//! manifests (`isobar crds > deploy/base/crds.yaml`).

#[test]
fn deploy_crds_match_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/crds.yaml");
    let on_disk = std::fs::read_to_string(path).expect("deploy/base/crds.yaml exists");
    assert!(
        on_disk == isobar::crd::crds_yaml(),
        "deploy/base/crds.yaml is out of date: run `cargo run -- crds > deploy/base/crds.yaml`"
    );
}
