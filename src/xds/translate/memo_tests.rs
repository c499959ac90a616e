//! What the translation memo translates again for TLS hosts: the listener only when a filter chain
//! changes, a Secret only when its certificate does; and the cache always equal to a full
//! translation.

use super::*;
use crate::dag::DagOptions;
use crate::xds::cache::XdsCache;

/// A `kubernetes.io/tls` Secret `name` in namespace `n` with a fresh self-signed certificate.
fn tls_secret(name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["a.example.com".to_string()])
        .expect("a name")
        .self_signed(&key)
        .expect("a certificate");
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: n}}\ntype: kubernetes.io/tls\n\
         stringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(&cert.pem()),
        indent(&key.serialize_pem())
    )
}

/// Ingress `name` for host `host` with TLS from `secret`, routing `path` to Service `web`.
fn tls_ingress(name: &str, host: &str, secret: &str, path: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: n}}\n\
         spec: {{tls: [{{hosts: [{host}], secretName: {secret}}}], rules: [{{host: {host}, http: {{paths: [\
         {{path: {path}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
    )
}

fn snapshot(yaml: &str) -> Snapshot {
    let web = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: n}\nspec: {ports: [{port: 80}]}\n---\n";
    let mut s = Snapshot::default();
    for o in
        crate::source::file::parse_manifests("t.yaml", &format!("{web}{yaml}")).expect("parses")
    {
        s.insert(o);
    }
    s
}

/// Translates `snapshot` with the memo into `cache`, checks the cache against a full translation,
/// and returns how many translations the memo computed.
fn translate_and_check(snapshot: &Snapshot, memo: &mut TranslationMemo, cache: &XdsCache) -> usize {
    let config = ListenerConfig::default();
    let (dag, _) = crate::dag::build(snapshot, &DagOptions::default());
    cache.apply(translate_changes(
        &dag,
        snapshot,
        &config,
        memo,
        &cache.current(),
    ));
    let full = XdsCache::new();
    full.set(super::super::translate(&dag, snapshot, &config).by_type());
    for t in type_url::ALL {
        let held = |c: &XdsCache| c.current().all(t).cloned().unwrap_or_default();
        assert_eq!(held(cache), held(&full), "{t}");
    }
    memo.recomputed
}

#[test]
fn tls_listener_and_secrets_are_translated_again_only_when_they_change() {
    let secrets = format!(
        "{}{}{}",
        tls_secret("a"),
        tls_secret("b"),
        tls_secret("spare")
    );
    let world = |a_secret: &str, a_path: &str, secrets: &str| {
        snapshot(&format!(
            "{secrets}{}{}",
            tls_ingress("a", "a.example.com", a_secret, a_path),
            tls_ingress("b", "b.example.com", "b", "/")
        ))
    };
    let (mut memo, cache) = (TranslationMemo::default(), XdsCache::new());
    let mut step = |snapshot: &Snapshot| translate_and_check(snapshot, &mut memo, &cache);
    // Everything: the two TLS filter chains, Secrets a and b, two plain hosts in ingress_http, two
    // TLS RouteConfigurations, the cluster and its ClusterLoadAssignment.
    assert_eq!(step(&world("a", "/", &secrets)), 10);
    // A TLS host's routes: its plain host and its RouteConfiguration; not its filter chain.
    assert_eq!(step(&world("a", "/x", &secrets)), 2);
    // Another certificate for the host: its filter chain (which names the certificate), the Secret
    // now served, and the host's RouteConfiguration (its secure virtual host changed).
    assert_eq!(step(&world("spare", "/x", &secrets)), 3);
    // Renewed certificates (new content, same names): the two Secrets served, nothing else.
    let renewed = format!(
        "{}{}{}",
        tls_secret("a"),
        tls_secret("b"),
        tls_secret("spare")
    );
    assert_eq!(step(&world("spare", "/x", &renewed)), 2);
    // Nothing changed: nothing translated.
    assert_eq!(step(&world("spare", "/x", &renewed)), 0);
    // A TLS host gone: the listener without its filter chain (none encoded again), its Secret and
    // RouteConfiguration removed.
    let only_b = snapshot(&format!(
        "{renewed}{}",
        tls_ingress("b", "b.example.com", "b", "/")
    ));
    assert_eq!(step(&only_b), 0);
    // The last one gone: no TLS listener.
    assert_eq!(step(&snapshot(&renewed)), 0);
    let listeners = cache
        .current()
        .all(type_url::LISTENER)
        .cloned()
        .unwrap_or_default();
    assert!(!listeners.contains_key(super::super::listener::HTTPS_LISTENER));
}
