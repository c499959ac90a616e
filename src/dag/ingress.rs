//! Ingress (`networking.k8s.io/v1`) → contributions to the DAG.

use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::Annotations;
use super::build::{Candidate, Contribution, TlsBinding};
use super::{
    backend, class, names, secret, DagOptions, Insecure, ObjectKind, PathMatch, Route,
    WeightedCluster,
};
use crate::store::{ObjectKey, Snapshot};

/// What an Ingress would contribute, to be applied in age order with the others; `None` when it is
/// not of our class.
pub(super) fn candidate(
    snapshot: &Snapshot,
    options: &DagOptions,
    key: &ObjectKey,
    ingress: &Ingress,
) -> Option<Candidate> {
    class::is_ours(ingress, &options.ingress_class_name).then(|| Candidate {
        created: ingress.metadata.creation_timestamp.clone(),
        kind: ObjectKind::Ingress,
        key: key.clone(),
        contribution: contribution(snapshot, key, ingress).map(|c| (c.finished(), Vec::new())),
    })
}

/// Everything `ingress` asks for, or every reason it can't have it.
fn contribution(
    snapshot: &Snapshot,
    key: &ObjectKey,
    ingress: &Ingress,
) -> Result<Contribution, Vec<String>> {
    let mut c = Contribution::new(key.clone());
    let mut errors = Vec::new();
    let Some(spec) = ingress.spec.as_ref() else {
        return Err(vec!["Ingress has no spec".to_string()]);
    };
    let options = RouteOptions::read(&Annotations::new(ingress.metadata.annotations.as_ref()))?;
    let add = |c: &mut Contribution,
               errors: &mut Vec<String>,
               host: &str,
               path: PathMatch,
               cluster: super::Cluster| {
        let mut route = Route::new(path, vec![WeightedCluster::of(&cluster, 1)], key.clone());
        options.apply(&mut route);
        if let Err(e) = c.add_route(host, route, vec![cluster]) {
            errors.push(e);
        }
    };

    if let Some(default_backend) = spec.default_backend.as_ref() {
        match backend::resolve(snapshot, &key.namespace, default_backend) {
            Ok(cluster) => add(
                &mut c,
                &mut errors,
                "*",
                PathMatch::StringPrefix("/".into()),
                cluster,
            ),
            Err(e) => errors.push(format!("default backend: {e}")),
        }
    }
    for rule in spec.rules.iter().flatten() {
        let host = match rule.host.as_deref() {
            None | Some("") => "*",
            Some(h) => match names::validate_host(h) {
                Ok(()) => h,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
        };
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let matched = names::path_match(path);
            let cluster = backend::resolve(snapshot, &key.namespace, &path.backend);
            match (matched, cluster) {
                (Ok(m), Ok(cluster)) => add(&mut c, &mut errors, host, m, cluster),
                (Err(e), _) | (_, Err(e)) => errors.push(e),
            }
        }
    }
    for tls in spec.tls.iter().flatten() {
        let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            errors.push("a tls entry has no secretName".to_string());
            continue;
        };
        let secret = match secret::delegated_tls_secret(snapshot, &key.namespace, secret_name) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for host in tls.hosts.iter().flatten() {
            if let Err(e) = names::validate_host(host) {
                errors.push(format!("tls: {e}"));
                continue;
            }
            let binding = TlsBinding {
                secret: Some(secret.clone()),
                min_tls_version: options.min_tls_version,
                tcp_proxy: None,
            };
            match c.tls.get(host) {
                Some(existing) if *existing != binding => errors.push(format!(
                    "tls host {host:?} is given two secrets, {:?} and {:?}",
                    existing
                        .secret
                        .as_ref()
                        .map(|s| s.name.as_str())
                        .unwrap_or_default(),
                    secret.name
                )),
                _ => {
                    c.tls.insert(host.clone(), binding);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors)
    }
}

/// What an Ingress's annotations ask of its routes.
struct RouteOptions {
    insecure: Insecure,
    timeout: Option<super::Timeout>,
    retry: Option<super::RetryPolicy>,
    websocket_paths: Vec<String>,
    min_tls_version: super::TlsVersion,
}

impl RouteOptions {
    /// Reads every annotation, reporting each bad value.
    fn read(a: &Annotations<'_>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let allow_http = take(&mut errors, a.bool("kubernetes.io/ingress.allow-http"));
        let force_ssl_redirect = take(
            &mut errors,
            a.bool("ingress.kubernetes.io/force-ssl-redirect"),
        );
        let timeout = take(&mut errors, a.request_timeout());
        let retry = take(&mut errors, a.retry_policy());
        let min_tls_version =
            take(&mut errors, a.tls_minimum_protocol_version()).unwrap_or_default();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RouteOptions {
            insecure: match (allow_http, force_ssl_redirect) {
                (Some(false), _) => Insecure::Refuse,
                (_, Some(true)) => Insecure::Redirect,
                _ => Insecure::Serve,
            },
            timeout,
            retry,
            websocket_paths: a.websocket_routes(),
            min_tls_version,
        })
    }

    fn apply(&self, route: &mut Route) {
        route.insecure = self.insecure;
        route.timeout = self.timeout;
        route.retry = self.retry.clone();
        route.websocket = self.websocket_paths.iter().any(|p| p == route.path.path());
    }
}

/// The value of `result`, or `None` with its error recorded.
fn take<T>(errors: &mut Vec<String>, result: Result<Option<T>, String>) -> Option<T> {
    result.unwrap_or_else(|e| {
        errors.push(e);
        None
    })
}
