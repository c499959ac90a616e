//! The mixed workload: what a cluster with more than plain Ingresses holds. N units, 50 namespaces;
//! every unit has a Service (every third with Contour annotations: a connection limit, and HTTP/2 to
//! the upstream on every sixth) and an EndpointSlice of two ready addresses (no Endpoints: the
//! slices are what routing reads), and one of:
//!
//! * `i % 4 == 0`: an Ingress with TLS, its own `kubernetes.io/tls` Secret (a self-signed ECDSA
//!   certificate) and a redirect from plain HTTP;
//! * `i % 4 == 1`: an Ingress with two paths;
//! * `i % 4 == 2`: a root IngressRoute delegating `/api` to a child IngressRoute;
//! * `i % 4 == 3`: an Ingress with a request timeout and retries (annotations).

use isobar::store::{ObjectKey, Snapshot};

use crate::pure::{snapshot_of, with_ingress_path, with_objects};

/// The objects of `n` units (every one valid: the bench asserts it).
pub fn snapshot(n: usize) -> Snapshot {
    let mut yaml = String::new();
    for i in 0..n {
        unit(&mut yaml, i);
    }
    snapshot_of(&yaml)
}

/// The namespace of unit `i`.
fn namespace(i: usize) -> String {
    format!("ns{}", i % 50)
}

fn unit(yaml: &mut String, i: usize) {
    let ns = namespace(i);
    let annotations = match i % 6 {
        0 => "{projectcontour.io/max-connections: \"1024\", projectcontour.io/upstream-protocol.h2c: \"80\"}",
        3 => "{projectcontour.io/max-connections: \"1024\"}",
        _ => "{}",
    };
    let (a, b) = ((i / 250) % 250, i % 250);
    yaml.push_str(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: {ns}, annotations: {annotations}}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: s{i}-x1, namespace: {ns}, labels: {{kubernetes.io/service-name: s{i}}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [10.1.{a}.{b}], conditions: {{ready: true}}}}, \
         {{addresses: [10.2.{a}.{b}], conditions: {{ready: true}}}}]\nports: [{{name: http, port: 8080}}]\n---\n"
    ));
    match i % 4 {
        0 => {
            yaml.push_str(&tls_secret(&ns, &format!("tls{i}"), &format!("h{i}.example.com")));
            yaml.push_str(&format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
                 metadata: {{name: i{i}, namespace: {ns}, annotations: {{ingress.kubernetes.io/force-ssl-redirect: \"true\"}}}}\n\
                 spec: {{tls: [{{hosts: [h{i}.example.com], secretName: tls{i}}}], rules: [{{host: h{i}.example.com, http: {{paths: [\
                 {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
            ));
        }
        1 => yaml.push_str(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: {ns}}}\n\
             spec: {{rules: [{{host: h{i}.example.com, http: {{paths: [\
             {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}, \
             {{path: /api, pathType: Exact, backend: {{service: {{name: s{i}, port: {{name: http}}}}}}}}]}}}}]}}\n---\n"
        )),
        2 => yaml.push_str(&format!(
            "apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: r{i}, namespace: {ns}}}\n\
             spec: {{virtualhost: {{fqdn: h{i}.example.com}}, routes: [{{match: /, services: [{{name: s{i}, port: 80}}]}}, \
             {{match: /api, delegate: {{name: c{i}}}}}]}}\n---\n\
             apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: c{i}, namespace: {ns}}}\n\
             spec: {{routes: [{{match: /api, services: [{{name: s{i}, port: 80}}]}}]}}\n---\n"
        )),
        _ => yaml.push_str(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
             metadata: {{name: i{i}, namespace: {ns}, annotations: {{projectcontour.io/request-timeout: 30s, \
             projectcontour.io/retry-on: 5xx, projectcontour.io/num-retries: \"3\"}}}}\n\
             spec: {{rules: [{{host: h{i}.example.com, http: {{paths: [\
             {{path: /, pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
        )),
    }
}

/// A `kubernetes.io/tls` Secret with a fresh self-signed certificate for `host`.
fn tls_secret(namespace: &str, name: &str, host: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("an ECDSA key");
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .expect("a DNS name")
        .self_signed(&key)
        .expect("a self-signed certificate");
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\n\
         stringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(&cert.pem()),
        indent(&key.serialize_pem())
    )
}

/// The snapshot with the plain Ingress of unit 1 edited (its Exact path moved), as a store holds
/// it: one new object, every other one shared.
pub fn with_one_edit(snap: &Snapshot, round: usize) -> Snapshot {
    with_ingress_path(
        snap,
        ObjectKey::new(namespace(1), "i1"),
        1,
        format!("/api{round}"),
    )
}

/// `edit(base, round)`: the snapshot of round `round`, one change away from round `round - 1`'s
/// (and round 0's from `base`).
pub type Edit = fn(&Snapshot, usize) -> Snapshot;

/// One change of each kind, as `(what, edit)`.
pub fn changes() -> Vec<(&'static str, Edit)> {
    vec![
        ("a plain Ingress's path moved", with_one_edit),
        (
            "a TLS Ingress added (new host, existing Service and Secret)",
            with_tls_ingresses_added,
        ),
        (
            "a delegated child IngressRoute's path moved",
            with_child_edited,
        ),
        ("an EndpointSlice's address changed", with_slice_edited),
        (
            "a TLS Secret renewed (new certificate)",
            with_secret_renewed,
        ),
    ]
}

/// `base` with `round + 1` TLS Ingresses added, each a new host served with unit 0's Service and
/// Secret: each round adds one.
fn with_tls_ingresses_added(base: &Snapshot, round: usize) -> Snapshot {
    let ns = namespace(0);
    let yaml: String = (0..=round)
        .map(|r| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: added{r}, namespace: {ns}}}\n\
                 spec: {{tls: [{{hosts: [added{r}.example.com], secretName: tls0}}], rules: [{{host: added{r}.example.com, http: {{paths: [\
                 {{path: /, pathType: Prefix, backend: {{service: {{name: s0, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
            )
        })
        .collect();
    with_objects(base, &yaml)
}

/// `base` with unit 2's child IngressRoute routing `/api/v{round}` instead of `/api`.
fn with_child_edited(base: &Snapshot, round: usize) -> Snapshot {
    let ns = namespace(2);
    with_objects(
        base,
        &format!(
            "apiVersion: contour.heptio.com/v1beta1\nkind: IngressRoute\nmetadata: {{name: c2, namespace: {ns}}}\n\
             spec: {{routes: [{{match: /api/v{round}, services: [{{name: s2, port: 80}}]}}]}}\n---\n"
        ),
    )
}

/// `base` with unit 5's EndpointSlice holding another second address each round.
fn with_slice_edited(base: &Snapshot, round: usize) -> Snapshot {
    let ns = namespace(5);
    let (a, b) = (round / 250 % 250, round % 250);
    with_objects(
        base,
        &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: s5-x1, namespace: {ns}, labels: {{kubernetes.io/service-name: s5}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [10.1.0.5], conditions: {{ready: true}}}}, \
             {{addresses: [10.3.{a}.{b}], conditions: {{ready: true}}}}]\nports: [{{name: http, port: 8080}}]\n---\n"
        ),
    )
}

/// `base` with unit 0's Secret holding a new certificate (one generated per round).
fn with_secret_renewed(base: &Snapshot, _round: usize) -> Snapshot {
    with_objects(base, &tls_secret(&namespace(0), "tls0", "h0.example.com"))
}
