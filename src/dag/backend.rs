//! Resolving a backend reference to a Service port, and so to a cluster with the upstream settings the
//! Service's annotations and the route ask for.

use k8s_openapi::api::core::v1::ServicePort;

use crate::store::Service;
use k8s_openapi::api::networking::v1::IngressBackend;

use super::annotations::Annotations;
use super::cluster_name::{cluster_name, service_port_name};
use super::{Cluster, Limits, UpstreamProtocol, UpstreamSettings};
use crate::store::Snapshot;

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
        UpstreamSettings::default(),
    )
}

/// The cluster for port `number` (or the port named `name`) of Service `namespace/service`. `route`
/// carries what the route asks for (load balancing, health checks, validation); the protocol and the
/// limits come from the Service's annotations.
pub fn resolve_port(
    snapshot: &Snapshot,
    namespace: &str,
    service: &str,
    number: Option<i32>,
    name: Option<&str>,
    route: UpstreamSettings,
) -> Result<Cluster, String> {
    let Some((key, service)) = super::reads::service_named(snapshot, namespace, service) else {
        return Err(format!("service \"{namespace}/{service}\" not found"));
    };
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
    let annotations = Annotations::new(service.metadata.annotations.as_ref());
    let service_settings =
        service_settings(&annotations, port).map_err(|e| format!("service \"{key}\": {e}"))?;
    let settings = UpstreamSettings {
        protocol: if route.validation.is_some() && service_settings.0 == UpstreamProtocol::Http1 {
            UpstreamProtocol::Tls
        } else {
            service_settings.0
        },
        limits: service_settings.1,
        ..route
    };
    let port_name = port.name.as_deref().filter(|n| !n.is_empty());
    let name = cluster_name(&key.namespace, &key.name, port.port, &settings);
    // Envoy warms a new cluster until an EDS response names its service, and it asks again only when
    // the set of names it subscribes to changes: a second cluster of the same Service port (other
    // settings) sharing the first one's EDS name would wait for endpoints that never come. So only
    // the plain cluster of a port uses the port's name (an unnamed port's number: then it is the
    // cluster's name too); any other uses its own cluster name.
    let eds_name = match port_name {
        Some(port) if settings == UpstreamSettings::default() => {
            service_port_name(&key.namespace, &key.name, port, 0)
        }
        _ => name.clone(),
    };
    Ok(Cluster {
        name,
        eds_name,
        service: key.clone(),
        port_name: port_name.map(str::to_string),
        port: port.port,
        settings,
    })
}

/// The protocol and limits a Service's annotations give one of its ports.
fn service_settings(
    annotations: &Annotations<'_>,
    port: &ServicePort,
) -> Result<(UpstreamProtocol, Limits), String> {
    let mut protocol = UpstreamProtocol::Http1;
    for (proto, ports) in annotations.upstream_protocols() {
        let listed = ports
            .iter()
            .any(|p| Some(p.as_str()) == port.name.as_deref() || *p == port.port.to_string());
        if listed {
            protocol = match proto {
                "h2" => UpstreamProtocol::H2,
                "h2c" => UpstreamProtocol::H2c,
                _ => UpstreamProtocol::Tls,
            };
        }
    }
    let limits = Limits {
        max_connections: annotations.count("max-connections")?,
        max_pending_requests: annotations.count("max-pending-requests")?,
        max_requests: annotations.count("max-requests")?,
        max_retries: annotations.count("max-retries")?,
    };
    Ok((protocol, limits))
}

fn find_port<'a>(
    service: &'a Service,
    number: Option<i32>,
    name: Option<&str>,
) -> Option<&'a ServicePort> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    match (number, name) {
        (Some(n), _) => ports.iter().find(|p| p.port == n),
        (None, Some(name)) => ports.iter().find(|p| p.name.as_deref() == Some(name)),
        (None, None) => None,
    }
}
