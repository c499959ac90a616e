//! `isobar check` and `isobar dag` as a user runs them: exit codes, JSON shape, dot output.

use std::process::Command;

const ISOBAR: &str = env!("CARGO_BIN_EXE_isobar");

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {ports: [{port: 80}]}\n";
const VALID: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: good, namespace: t}\nspec: {rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}\n";
const INVALID: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, namespace: t}\nspec: {rules: [{host: b.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}]}}]}\n";
const ORPHAN: &str = "apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {name: child, namespace: t}\nspec: {routes: [{match: /, services: [{name: web, port: 80}]}]}\n";

#[test]
fn all_valid_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &format!("{SERVICE}---\n{VALID}"));
    let out = Command::new(ISOBAR)
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Ingress t/good: valid: valid Ingress"
    );
}

#[test]
fn json_lists_every_object_and_any_invalid_one_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &format!("{SERVICE}---\n{VALID}---\n{INVALID}---\n{ORPHAN}"),
    );
    let out = Command::new(ISOBAR)
        .args(["check", "--output", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let objects: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        objects,
        serde_json::json!([
            {"kind": "Ingress", "namespace": "t", "name": "bad", "status": "invalid", "description": "service \"t/nope\" not found"},
            {"kind": "Ingress", "namespace": "t", "name": "good", "status": "valid", "description": "valid Ingress"},
            {"kind": "IngressRoute", "namespace": "t", "name": "child", "status": "orphaned",
             "description": "this IngressRoute is not part of a delegation chain from a root IngressRoute"},
        ])
    );
}

#[test]
fn an_unreadable_directory_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ISOBAR)
        .arg("check")
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn dag_prints_graphviz_with_hosts_and_clusters() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &format!("{SERVICE}---\n{VALID}"));
    let out = Command::new(ISOBAR)
        .args(["dag", "--format", "dot"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph DAG {"), "{dot}");
    assert!(
        dot.contains("\"http/a.example.com\" -> \"http/a.example.com/\""),
        "{dot}"
    );
    assert!(
        dot.contains("\"http/a.example.com/\" -> \"cluster/t/web/80\""),
        "{dot}"
    );
}
