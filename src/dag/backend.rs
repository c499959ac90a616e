//! Resolving a backend reference to a Service port, and so to a cluster.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IngressBackend;

use super::Cluster;
use crate::store::{ObjectKey, Snapshot};

/// The cluster an Ingress backend leads to, or why it leads nowhere.
pub fn resolve(
    snapshot: &Snapshot,
    namespace: &str,
    backend: &IngressBackend,
) -> Result<Cluster, String> {
    let Some(service_ref) = backend.service.as_ref() else {
        return Err(if backend.resource.is_some() {
            "resource backends are not supported; use a service backend".to_string()
        } else {
            "backend names no service".to_string()
        });
    };
    let wanted = service_ref.port.as_ref();
    resolve_port(
        snapshot,
        namespace,
        &service_ref.name,
        wanted.and_then(|p| p.number),
        wanted.and_then(|p| p.name.as_deref()),
    )
}

/// The cluster for port `number` (or the port named `name`) of Service `namespace/service`.
pub fn resolve_port(
    snapshot: &Snapshot,
    namespace: &str,
    service: &str,
    number: Option<i32>,
    name: Option<&str>,
) -> Result<Cluster, String> {
    let key = ObjectKey::new(namespace, service);
    let service = snapshot
        .services
        .get(&key)
        .ok_or_else(|| format!("service \"{key}\" not found"))?;
    let port = find_port(service, number, name).ok_or_else(|| match (number, name) {
        (Some(n), _) => format!("service \"{key}\" has no port {n}"),
        (None, Some(n)) => format!("service \"{key}\" has no port named {n:?}"),
        (None, None) => format!("backend for service \"{key}\" names no port"),
    })?;
    if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err(format!(
            "service \"{key}\" is of type ExternalName, which is not supported yet"
        ));
    }
    let port_id = port
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| port.port.to_string());
    Ok(Cluster {
        name: format!("{}/{}/{}", key.namespace, key.name, port.port),
        eds_name: format!("{}/{}/{}", key.namespace, key.name, port_id),
        service: key,
        port_name: port.name.clone().filter(|n| !n.is_empty()),
        port: port.port,
    })
}

fn find_port<'a>(
    service: &'a Service,
    number: Option<i32>,
    name: Option<&str>,
) -> Option<&'a k8s_openapi::api::core::v1::ServicePort> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    match (number, name) {
        (Some(n), _) => ports.iter().find(|p| p.port == n),
        (None, Some(name)) => ports.iter().find(|p| p.name.as_deref() == Some(name)),
        (None, None) => None,
    }
}
