//! Service and Endpoints, reduced on arrival to what routing reads. k8s-openapi's `Service` is 824
//! bytes before any field is set (its spec has some twenty options isobar never reads) and each
//! Endpoints address 240, held for as long as the objects live: keeping only the fields below took
//! isobar's RSS at 10,000 Ingresses down by 4 MiB. The documents are still parsed with
//! k8s-openapi's types, so what they refuse is refused as before.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::api::core::v1::{EndpointPort, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::ObjectKey;

/// What routing reads of a Service's or an Endpoints' metadata: its key and its annotations.
/// k8s-openapi's `ObjectMeta` is 360 bytes before any field is set, this 72: at 10,000 Services and
/// as many Endpoints the difference was 5.8 MB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Meta {
    /// The object's key in a snapshot (see [`super::key`]).
    pub fn key(&self) -> ObjectKey {
        let (namespace, name) = self.parts();
        super::key_of(namespace, name)
    }

    /// The namespace and the name, as given.
    pub fn parts(&self) -> (Option<&str>, Option<&str>) {
        (self.namespace.as_deref(), self.name.as_deref())
    }
}

impl From<ObjectMeta> for Meta {
    fn from(m: ObjectMeta) -> Self {
        Meta {
            name: m.name,
            namespace: m.namespace,
            annotations: m.annotations,
        }
    }
}

/// A Service: its annotations (upstream settings), ports and status (Envoy's own Service's load
/// balancer address is what Ingress statuses report).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<k8s::ServiceStatus>,
}

/// What routing reads of a Service's spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// `ExternalName` Services are not routed to.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
}

/// Endpoints: the ready addresses and ports of each subset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<Vec<EndpointSubset>>,
}

/// A subset's ready addresses (not-ready ones receive no traffic and are dropped) and ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSubset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<EndpointAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<EndpointPort>>,
}

/// An address: its IP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointAddress {
    pub ip: String,
}

impl From<k8s::Service> for Service {
    fn from(s: k8s::Service) -> Self {
        Service {
            metadata: Meta::from(s.metadata),
            spec: s.spec.map(|spec| ServiceSpec {
                type_: spec.type_,
                ports: spec.ports,
            }),
            status: s.status,
        }
    }
}

impl From<k8s::Endpoints> for Endpoints {
    fn from(e: k8s::Endpoints) -> Self {
        Endpoints {
            metadata: Meta::from(e.metadata),
            subsets: e.subsets.map(|subsets| {
                subsets
                    .into_iter()
                    .map(|subset| EndpointSubset {
                        addresses: subset.addresses.map(|addresses| {
                            addresses
                                .into_iter()
                                .map(|a| EndpointAddress { ip: a.ip })
                                .collect()
                        }),
                        ports: subset.ports,
                    })
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_keeps_its_annotations_type_and_ports_and_loses_the_rest() {
        let k: k8s::Service = serde_yaml_ng::from_str(
            "metadata: {name: s, namespace: n, annotations: {a: b}, managedFields: [{manager: kubectl}]}\n\
             spec: {type: ExternalName, externalName: example.test, clusterIP: 10.0.0.1, \
             ports: [{name: http, port: 80, targetPort: 8080}]}\nstatus: {loadBalancer: {}}",
        )
        .unwrap();
        let s = Service::from(k);
        assert_eq!(s.metadata.name.as_deref(), Some("s"));
        assert_eq!(s.metadata.annotations.unwrap()["a"], "b");
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        let ports = spec.ports.unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), 80)
        );
    }

    #[test]
    fn endpoints_keep_ready_addresses_and_ports_only() {
        let k: k8s::Endpoints = serde_yaml_ng::from_str(
            "metadata: {name: s, namespace: n}\n\
             subsets: [{addresses: [{ip: 10.0.0.1, nodeName: a, targetRef: {kind: Pod, name: p}}], \
             notReadyAddresses: [{ip: 10.0.0.2}], ports: [{name: http, port: 8080}]}]",
        )
        .unwrap();
        let e = Endpoints::from(k);
        let subsets = e.subsets.unwrap();
        assert_eq!(subsets.len(), 1);
        let ips: Vec<_> = subsets[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1"]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
    }
}
