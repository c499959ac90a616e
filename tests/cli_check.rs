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

const GATEWAY_API: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: isobar}
spec: {controllerName: isobar.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: t}
spec:
  gatewayClassName: isobar
  listeners: [{name: http, protocol: HTTP, port: 81}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: t}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";

#[test]
fn gateway_api_objects_get_the_conditions_serve_would_write() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &format!("{SERVICE}---\n{GATEWAY_API}"),
    );
    let check = |args: &[&str]| {
        Command::new(ISOBAR)
            .arg("check")
            .args(args)
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "GatewayClass isobar: Accepted=True",
            "Gateway t/gw: Accepted=True Programmed=True",
            "Gateway t/gw listener http: Accepted=True Conflicted=False ResolvedRefs=True Programmed=True attachedRoutes=1",
            "HTTPRoute t/web parent t/gw: Accepted=True ResolvedRefs=True",
        ]
    );

    // Port 80 is served at 8080, where the Ingress HTTP listener is.
    write(
        dir.path(),
        "a.yaml",
        &format!(
            "{SERVICE}---\n{}",
            GATEWAY_API.replace("port: 81", "port: 80")
        ),
    );
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Accepted=False (PortUnavailable: port 80 is served at 8080, which is isobar's Ingress HTTP listener (--envoy-service-http-port))"),
        "{stdout}"
    );
    write(
        dir.path(),
        "a.yaml",
        &format!("{SERVICE}---\n{GATEWAY_API}"),
    );

    // Another controller name: none of these objects is isobar's.
    let out = check(&["--gateway-controller-name", "example.com/other"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");

    // A backend that does not exist: the route's references are not resolved, and check says so.
    write(
        dir.path(),
        "a.yaml",
        &format!(
            "{SERVICE}---\n{}",
            GATEWAY_API.replace("name: web, port: 80", "name: gone, port: 80")
        ),
    );
    let out = check(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let objects: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = objects
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "HTTPRoute")
        .expect("the HTTPRoute's status");
    let resolved = &route["parents"][0]["conditions"][1];
    assert_eq!(
        (&resolved["type"], &resolved["status"], &resolved["reason"]),
        (
            &serde_json::json!("ResolvedRefs"),
            &serde_json::json!("False"),
            &serde_json::json!("BackendNotFound")
        )
    );
}
