//! `isobar diff` as a CI job runs it: exit 0 for no change, 1 for a change (with the resource and
//! the status change named), 2 when a directory or a file can't be read.

use std::path::Path;
use std::process::{Command, Output};

const ISOBAR: &str = env!("CARGO_BIN_EXE_isobar");

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {ports: [{port: 80}]}\n";

fn ingress(host: &str, port: u16) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web, namespace: t}}\nspec: {{rules: [{{host: {host}, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: {port}}}}}}}}}]}}}}]}}\n")
}

fn dir_with(ingress: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        format!("{SERVICE}---\n{ingress}"),
    )
    .unwrap();
    dir
}

fn diff(old: &Path, new: &Path) -> Output {
    Command::new(ISOBAR)
        .arg("diff")
        .arg(old)
        .arg(new)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn no_change_exits_zero_and_prints_nothing() {
    let (a, b) = (
        dir_with(&ingress("a.example.com", 80)),
        dir_with(&ingress("a.example.com", 80)),
    );
    let out = diff(a.path(), b.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_changed_host_exits_one_and_names_the_route() {
    let (a, b) = (
        dir_with(&ingress("a.example.com", 80)),
        dir_with(&ingress("b.example.com", 80)),
    );
    let out = diff(a.path(), b.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("~ route ingress_http\n"), "{text}");
    assert!(text.contains("-        \"a.example.com\""), "{text}");
    assert!(text.contains("+        \"b.example.com\""), "{text}");
}

#[test]
fn an_object_made_invalid_shows_its_status_change_and_what_envoy_loses() {
    let (a, b) = (
        dir_with(&ingress("a.example.com", 80)),
        dir_with(&ingress("a.example.com", 81)),
    );
    let out = diff(a.path(), b.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("- cluster t/web/80"), "{text}");
    assert!(
        text.contains("status changes:\n  Ingress t/web: valid (valid Ingress) → invalid (service \"t/web\" has no port 81)"),
        "{text}"
    );
}

#[test]
fn an_unreadable_directory_or_file_exits_two() {
    let a = dir_with(&ingress("a.example.com", 80));
    let out = diff(a.path(), Path::new("/nonexistent/isobar-diff"));
    assert_eq!(out.status.code(), Some(2));
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("bad.yaml"), "kind: [unclosed").unwrap();
    let out = diff(a.path(), broken.path());
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    // --against needs exactly one directory.
    let out = Command::new(ISOBAR)
        .args(["diff", "--against", "127.0.0.1:1"])
        .arg(a.path())
        .arg(a.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A Gateway on port 8081 and HTTPRoute `t/r` sending `a.example.com` to Service `web`'s `port`.
fn gateway_dir(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: isobar}\nspec: {controllerName: isobar.dev/gateway-controller}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: t}\n\
        spec: {gatewayClassName: isobar, listeners: [{name: web, protocol: HTTP, port: 8081}]}\n";
    let route = format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: t}}\n\
        spec: {{parentRefs: [{{name: gw}}], hostnames: [a.example.com], rules: [{{backendRefs: [{{name: web, port: {port}}}]}}]}}\n");
    std::fs::write(
        dir.path().join("a.yaml"),
        format!("{SERVICE}---\n{gateway}---\n{route}"),
    )
    .unwrap();
    dir
}

#[test]
fn a_gateway_route_edit_shows_its_listener_route_and_its_conditions() {
    let (a, b) = (gateway_dir(80), gateway_dir(81));
    let same = diff(a.path(), gateway_dir(80).path());
    assert_eq!(
        (same.status.code(), stdout(&same)),
        (Some(0), String::new())
    );
    let out = diff(a.path(), b.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    // The Gateway listener's own RouteConfiguration: the rule now answers 500.
    assert!(text.starts_with("~ route http-8081\n"), "{text}");
    assert!(text.contains("+            \"status\": 500"), "{text}");
    assert!(text.contains("- cluster t/web/80"), "{text}");
    assert!(
        text.contains("status changes:\n  HTTPRoute t/r: valid (parent t/gw: Accepted=True ResolvedRefs=True) → invalid (parent t/gw: Accepted=True ResolvedRefs=False (BackendNotFound: Service t/web has no port 81))"),
        "{text}"
    );
}
