#![cfg(feature = "e2e")]
//! Gateway API through a real Envoy, from a manifests directory: a Gateway's HTTP and HTTPS
//! listeners on ports of their own, HTTPRoute matches (paths by whole segments, Exact before
//! PathPrefix across routes, headers), weighted backends where an unusable one keeps its share as
//! 500s, redirects, header changes, and ReferenceGrants granted and revoked live.

mod common;
#[path = "common/features.rs"]
mod features;

use std::net::SocketAddr;

use isobar_harness::http::{send, RequestSpec, Response, Trust};
use isobar_harness::manifests::service_and_endpoints_yaml;
use isobar_harness::pki::TestCa;
use isobar_harness::ports::free_port;
use isobar_harness::Stack;

use common::{tls_secret_yaml, Fixture, NS};
use features::{assert_no_nacks, wait_echo, wait_response};

const GATEWAY_CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: isobar}
spec: {controllerName: isobar.dev/gateway-controller}
";

fn gateway_yaml(listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: {NS}}}\n\
         spec:\n  gatewayClassName: isobar\n  listeners:\n{listeners}"
    )
}

fn http_route_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n{spec}"
    )
}

fn request(port: u16, host: &str, path: &str) -> RequestSpec {
    RequestSpec::get(SocketAddr::from(([127, 0, 0, 1], port)), host, path)
}

async fn answer(stack: &Stack, req: &RequestSpec) -> Response {
    send(req).await.unwrap_or_else(|e| {
        panic!(
            "{} {}{}: {e}\n{}",
            req.method,
            req.host,
            req.path,
            stack.log_tails(20)
        )
    })
}

/// A Gateway with an HTTP listener on a port of its own, and backends `alpha` and `beta`.
fn http_gateway() -> (Fixture, u16) {
    let mut f = Fixture::new();
    f.backend("alpha");
    f.backend("beta");
    let port = free_port().expect("a free port");
    f.write("class.yaml", GATEWAY_CLASS);
    f.write(
        "gateway.yaml",
        &gateway_yaml(&format!(
            "  - {{name: web, protocol: HTTP, port: {port}, allowedRoutes: {{namespaces: {{from: All}}}}}}\n"
        )),
    );
    (f, port)
}

/// HTTPRoute `good`: `good.example.com` to backend `alpha`.
fn good_route() -> String {
    http_route_yaml(
        "good",
        "  parentRefs: [{name: gw}]\n  hostnames: [good.example.com]\n  rules:\n  - backendRefs: [{name: alpha, port: 80}]\n",
    )
}

#[tokio::test]
async fn http_routes_match_paths_headers_and_precedence_across_routes() {
    let (f, port) = http_gateway();
    f.write(
        "site.yaml",
        &http_route_yaml(
            "site",
            "  parentRefs: [{name: gw}]
  hostnames: [gw.example.com]
  rules:
  - backendRefs: [{name: alpha, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    backendRefs: [{name: beta, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /canary}, headers: [{name: Env, value: canary}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-isobar, value: canary}], remove: [x-drop]}
    backendRefs: [{name: beta, port: 80}]
",
        ),
    );
    // A newer route with an Exact match under the older one's prefix: Exact goes first whatever
    // the routes' ages.
    f.write(
        "exact.yaml",
        &http_route_yaml(
            "exact",
            "  parentRefs: [{name: gw, sectionName: web}]
  hostnames: [gw.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /api/exact}}]
    backendRefs: [{name: alpha, port: 80}]
",
        ),
    );
    let stack = f.start_stack().await;
    let host = format!("gw.example.com:{port}");
    wait_echo(&stack, &request(port, &host, "/api/x"), "beta").await;
    for (path, backend) in [
        ("/", "alpha"),
        ("/api", "beta"),
        ("/api/users", "beta"),
        // Whole segments: `/apix` is not under `/api`.
        ("/apix", "alpha"),
        ("/api/exact", "alpha"),
        ("/api/exact/more", "beta"),
        // The header match is not met.
        ("/canary", "alpha"),
    ] {
        let r = answer(&stack, &request(port, &host, path)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.backend().as_deref(),
            Some(backend),
            "{path}: {}",
            r.text()
        );
    }
    let canary = request(port, &host, "/canary/a")
        .header("env", "canary")
        .header("x-drop", "1");
    let r = answer(&stack, &canary).await;
    assert_eq!(r.backend().as_deref(), Some("beta"), "{}", r.text());
    assert_eq!(r.json()["headers"]["x-isobar"], "canary", "{}", r.text());
    assert!(r.json()["headers"]["x-drop"].is_null(), "{}", r.text());
    // Another host has no route on this listener; Ingress's listener is not this one.
    let r = answer(&stack, &request(port, "other.example.com", "/")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn unusable_backends_answer_500_for_their_share_and_redirects_redirect() {
    let (f, port) = http_gateway();
    f.write(
        "route.yaml",
        &http_route_yaml(
            "route",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: alpha, port: 80}, {name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /gone}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /kind}}]
    backendRefs: [{group: example.com, kind: Bucket, name: alpha}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301}
",
        ),
    );
    let stack = f.start_stack().await;
    let host = "any.example.com";
    wait_response(
        &stack,
        "/gone to answer 500",
        &request(port, host, "/gone"),
        |r| r.status == 500,
    )
    .await;
    let r = answer(&stack, &request(port, host, "/kind")).await;
    assert_eq!(r.status, 500, "an unknown kind answers 500: {}", r.text());
    // Half the requests go to `alpha`, half are answered 500, none anywhere else.
    let (mut ok, mut errors) = (0, 0);
    for i in 0..60 {
        let r = answer(&stack, &request(port, host, &format!("/split/{i}"))).await;
        match r.status {
            200 => {
                assert_eq!(r.backend().as_deref(), Some("alpha"), "{}", r.text());
                ok += 1;
            }
            500 => errors += 1,
            other => panic!("/split answered {other}: {}", r.text()),
        }
    }
    assert!(ok > 5 && errors > 5, "200s {ok}, 500s {errors} of 60");
    let r = answer(
        &stack,
        &request(port, &format!("{host}:{port}"), "/old/page"),
    )
    .await;
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/old/page"),
        "the scheme's port is left out"
    );
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn a_reference_grant_lets_a_route_use_another_namespace_live() {
    let (mut f, port) = http_gateway();
    let echo = f.echo("shared");
    f.write(
        "svc-shared.yaml",
        &service_and_endpoints_yaml("shared", "shared", "http", 80, echo),
    );
    f.write(
        "route.yaml",
        &http_route_yaml(
            "cross",
            "  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: shared, namespace: shared, port: 80}]
",
        ),
    );
    let stack = f.start_stack().await;
    let req = request(port, "x.example.com", "/");
    wait_response(&stack, "no grant: 500", &req, |r| r.status == 500).await;
    let grant = format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: routes, namespace: shared}}\n\
         spec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {NS}}}]\n  to: [{{group: \"\", kind: Service}}]\n"
    );
    f.write("grant.yaml", &grant);
    wait_echo(&stack, &req, "shared").await;
    f.remove("grant.yaml");
    wait_response(&stack, "grant revoked: 500", &req, |r| r.status == 500).await;
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn an_https_listener_serves_its_certificate_by_sni_and_404s_unknown_hosts_over_tls() {
    let mut f = Fixture::new();
    f.backend("alpha");
    let port = free_port().expect("a free port");
    let ca = TestCa::new("e2e gateway CA").unwrap();
    let (cert, key) = ca
        .issue_server(&["secure.example.com"])
        .expect("issuing a certificate");
    f.write("secret.yaml", &tls_secret_yaml("secure-tls", &cert, &key));
    f.write("class.yaml", GATEWAY_CLASS);
    f.write(
        "gateway.yaml",
        &gateway_yaml(&format!(
            "  - name: tls\n    protocol: HTTPS\n    port: {port}\n    hostname: secure.example.com\n    tls: {{certificateRefs: [{{name: secure-tls}}]}}\n"
        )),
    );
    f.write(
        "route.yaml",
        &http_route_yaml(
            "secure",
            "  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: alpha, port: 80}]\n",
        ),
    );
    let stack = f.start_stack().await;
    let https = |host: &str| {
        let mut req = request(port, host, "/").https();
        req.trust = Trust::CaPem(ca.cert_pem().into_bytes());
        req
    };
    let r = wait_echo(&stack, &https("secure.example.com"), "alpha").await;
    let names = r
        .peer_certificate_names()
        .expect("the certificate parses")
        .expect("a certificate was presented");
    assert_eq!(names.dns_names, ["secure.example.com"]);
    // An unknown name completes the handshake (the listener's certificate) and gets a 404.
    let mut unknown = request(port, "unknown.example.com", "/").https();
    unknown.trust = Trust::Any;
    let r = answer(&stack, &unknown).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_no_nacks(&stack).await;
}

#[tokio::test]
async fn values_envoy_would_refuse_are_refused_in_status_and_disturb_no_other_route() {
    let (f, port) = http_gateway();
    let bad_regex = |name: &str, regex: &str| {
        http_route_yaml(
            name,
            &format!(
                "  parentRefs: [{{name: gw}}]\n  hostnames: [{name}.example.com]\n  rules:\n  - matches: [{{headers: [{{name: x-v, type: RegularExpression, value: '{regex}'}}]}}]\n    backendRefs: [{{name: beta, port: 80}}]\n"
            ),
        )
    };
    f.write("unclosed.yaml", &bad_regex("unclosed", "(unclosed"));
    f.write("huge.yaml", &bad_regex("huge", &"x".repeat(200)));
    f.write(
        "host.yaml",
        &http_route_yaml(
            "host",
            "  parentRefs: [{name: gw}]\n  rules:\n  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: evil}]}}]\n    backendRefs: [{name: beta, port: 80}]\n",
        ),
    );
    // A filter isobar does not serve refuses the route rather than serving it without the filter.
    f.write(
        "rewrite.yaml",
        &http_route_yaml(
            "rewrite",
            "  parentRefs: [{name: gw}]\n  hostnames: [rewrite.example.com]\n  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}}}]\n    backendRefs: [{name: beta, port: 80}]\n",
        ),
    );
    f.write("good.yaml", &good_route());
    let stack = f.start_stack().await;
    wait_echo(&stack, &request(port, "good.example.com", "/"), "alpha").await;
    for host in [
        "unclosed.example.com",
        "huge.example.com",
        "rewrite.example.com",
        "other.example.com",
    ] {
        let r = answer(&stack, &request(port, host, "/").header("x-v", "x")).await;
        assert_eq!(r.status, 404, "{host} is not served: {}", r.text());
    }
    assert_no_nacks(&stack).await;
    // `check` says why, in the route's words.
    let out = std::process::Command::new(common::isobar_bin())
        .arg("check")
        .arg(f.manifests_dir())
        .output()
        .expect("running isobar check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "HTTPRoute default/unclosed parent default/gw: Accepted=False (UnsupportedValue: spec.rules[0].matches[0].headers[0]: \"(unclosed\" is not a valid regular expression",
        "HTTPRoute default/huge parent default/gw: Accepted=False (UnsupportedValue: spec.rules[0].matches[0].headers[0]: the regular expression",
        "HTTPRoute default/host parent default/gw: Accepted=False (UnsupportedValue: spec.rules[0].filters[0]: the Host header can't be modified",
        "HTTPRoute default/rewrite parent default/gw: Accepted=False (IncompatibleFilters: spec.rules[0].filters[0]: isobar does not serve URLRewrite filters)",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
}

/// isobar's admin snapshot's entry for HTTPRoute `name`, once `accept` says it is the expected one.
async fn wait_route_object(
    stack: &Stack,
    name: &str,
    accept: impl Fn(&isobar::admin::v1::Object) -> bool,
) -> isobar::admin::v1::Object {
    use isobar::admin::v1::{admin_client::AdminClient, GetSnapshotRequest};
    let what = format!("HTTPRoute {name} in isobar's admin snapshot");
    isobar_harness::wait_for_async(common::CONVERGE, &what, || async {
        let Ok(mut admin) =
            AdminClient::connect(format!("http://{}", stack.isobar.debug_addr())).await
        else {
            return Ok(None);
        };
        let snapshot = admin
            .get_snapshot(GetSnapshotRequest {})
            .await
            .map(|r| r.into_inner())
            .ok();
        Ok(snapshot
            .into_iter()
            .flat_map(|s| s.objects)
            .find(|o| o.kind == "HTTPRoute" && o.name == name)
            .filter(&accept))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(40)))
}

#[tokio::test]
async fn a_route_envoy_rejects_anyway_is_set_aside_and_the_others_keep_flowing() {
    let (f, port) = http_gateway();
    f.write("good.yaml", &good_route());
    let stack = f.start_stack().await;
    wait_echo(&stack, &request(port, "good.example.com", "/"), "alpha").await;
    // The fault hook lets a Host header change through isobar's checks: Envoy refuses it.
    let bad = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
        metadata: {name: bad, namespace: default, annotations: {isobar.test/fault-unchecked-route: \"\"}}\nspec:\n  \
        parentRefs: [{name: gw}]\n  hostnames: [bad.example.com]\n  rules:\n  \
        - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: evil}]}}]\n    \
        backendRefs: [{name: beta, port: 80}]\n";
    let next = http_route_yaml(
        "next",
        "  parentRefs: [{name: gw}]\n  hostnames: [next.example.com]\n  rules:\n  - backendRefs: [{name: beta, port: 80}]\n",
    );
    f.write("batch.yaml", &format!("{bad}---\n{next}"));
    let rejected = wait_route_object(&stack, "bad", |o| o.reason.contains("RejectedByEnvoy")).await;
    assert!(
        rejected.reason.contains("host headers may not be modified"),
        "Envoy's own words: {rejected:?}"
    );
    // The route that came with it, and the one before, are served.
    wait_echo(&stack, &request(port, "next.example.com", "/"), "beta").await;
    wait_echo(&stack, &request(port, "good.example.com", "/"), "alpha").await;
    let r = answer(&stack, &request(port, "bad.example.com", "/")).await;
    assert_eq!(
        r.status,
        404,
        "the rejected route serves nothing: {}",
        r.text()
    );
    // Fixed, it is served.
    f.write(
        "batch.yaml",
        &format!(
            "{}---\n{next}",
            bad.replace("name: Host, value: evil", "name: x-fixed, value: \"1\"")
        ),
    );
    wait_echo(&stack, &request(port, "bad.example.com", "/"), "beta").await;
    wait_route_object(&stack, "bad", |o| !o.reason.contains("RejectedByEnvoy")).await;
}
