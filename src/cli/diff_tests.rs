use std::path::Path;

use super::*;
use crate::source::manifest_dir::ManifestDir;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The example manifests in a temp dir, with `edit` applied to `file`'s text.
fn edited(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if name == file {
            text = edit(text);
        }
        if !text.is_empty() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
    }
    dir
}

fn side(dir: &Path) -> Side {
    let loaded = ManifestDir::new(dir).load().unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    Side::built(
        &loaded.snapshot,
        &DagOptions::default(),
        &ListenerConfig::default(),
    )
}

#[test]
fn the_same_manifests_make_no_report() {
    let a = side(&examples());
    let b = side(edited("ingress.yaml", |t| t).path());
    assert_eq!(report(&a, &b), "");
}

#[test]
fn a_changed_path_shows_as_a_changed_route_with_its_json_diff() {
    let old = side(&examples());
    let new_dir = edited("ingress.yaml", |t| t.replace("path: /api", "path: /v2"));
    let text = report(&old, &side(new_dir.path()));
    assert!(text.contains("~ route ingress_http\n"), "{text}");
    assert!(text.contains("--- old/route/ingress_http"), "{text}");
    let removed = text
        .lines()
        .any(|l| l.starts_with('-') && l.contains("\"/api\""));
    let added = text
        .lines()
        .any(|l| l.starts_with('+') && l.contains("\"/v2\""));
    assert!(removed && added, "{text}");
    // Clusters and endpoints did not change.
    assert!(!text.contains(" cluster "), "{text}");
}

#[test]
fn an_object_made_invalid_is_a_status_change() {
    let old = side(&examples());
    let new_dir = edited("ingress.yaml", |t| t.replace("number: 80", "number: 0"));
    let text = report(&old, &side(new_dir.path()));
    assert!(
        text.contains("status changes:\n  Ingress demo/demo: valid (valid Ingress) → invalid ("),
        "{text}"
    );
}

#[test]
fn an_added_secret_shows_without_its_private_key() {
    let without = edited("tls-secret.yaml", |_| String::new());
    let text = report(&side(without.path()), &side(&examples()));
    assert!(text.contains("+ secret "), "{text}");
    assert!(text.contains("redacted sha256:"), "{text}");
    // The key's PEM lines, as they would appear inside base64 of the whole PEM or on their own.
    let yaml = std::fs::read_to_string(examples().join("tls-secret.yaml")).unwrap();
    let key_line = yaml
        .lines()
        .skip_while(|l| !l.contains("tls.key"))
        .nth(2)
        .unwrap()
        .trim();
    assert!(key_line.len() > 20, "{key_line}");
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains(key_line),
        "{text}"
    );
    assert!(
        !text.contains("LS0tLS1CRUdJTiBQUklWQVRF"),
        "base64 of BEGIN PRIVATE: {text}"
    );
}
