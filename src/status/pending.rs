//! Which statuses need writing: a pure function of the desired statuses and the objects as last seen.

use serde_json::{json, Value};

use super::StatusConfig;
use crate::dag::{ObjectKind, ObjectStatus};
use crate::store::{ObjectKey, Snapshot};

/// The address Ingresses are given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadBalancerAddress {
    /// `{"ip": ...}` or `{"hostname": ...}` entries, in order.
    pub entries: Vec<(Option<String>, Option<String>)>,
}

impl LoadBalancerAddress {
    /// From `--ingress-status-address`, or else Envoy's Service's load balancer status.
    pub fn resolve(config: &StatusConfig, snapshot: &Snapshot) -> Self {
        if let Some(address) = &config.ingress_status_address {
            let entry = if address.parse::<std::net::IpAddr>().is_ok() {
                (Some(address.clone()), None)
            } else {
                (None, Some(address.clone()))
            };
            return LoadBalancerAddress {
                entries: vec![entry],
            };
        }
        let entries = snapshot
            .services
            .get(&config.envoy_service)
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ingress| {
                ingress
                    .iter()
                    .map(|i| (i.ip.clone(), i.hostname.clone()))
                    .collect()
            })
            .unwrap_or_default();
        LoadBalancerAddress { entries }
    }

    fn to_json(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(|(ip, hostname)| match (ip, hostname) {
                    (Some(ip), _) => json!({ "ip": ip }),
                    (None, Some(h)) => json!({ "hostname": h }),
                    (None, None) => json!({}),
                })
                .collect(),
        )
    }
}

/// One status to write.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    /// `status` is the whole Ingress status (`{"loadBalancer": {"ingress": [...]}}`).
    Ingress { object: ObjectKey, status: Value },
    /// `status` is `{"currentStatus": ..., "description": ...}`.
    IngressRoute { object: ObjectKey, status: Value },
}

/// The writes that bring objects to their desired status; objects that already have it are skipped,
/// and Ingresses get nothing while the address is unknown.
pub fn pending_writes(
    snapshot: &Snapshot,
    statuses: &[ObjectStatus],
    address: &LoadBalancerAddress,
) -> Vec<StatusWrite> {
    let mut writes = Vec::new();
    for status in statuses {
        match status.kind {
            ObjectKind::Ingress => {
                if address.entries.is_empty() {
                    continue;
                }
                let Some(ingress) = snapshot.ingresses.get(&status.object) else {
                    continue;
                };
                let current = ingress
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| {
                        v.get("loadBalancer")
                            .and_then(|lb| lb.get("ingress"))
                            .cloned()
                    })
                    .unwrap_or(Value::Null);
                let desired = address.to_json();
                if current != desired {
                    writes.push(StatusWrite::Ingress {
                        object: status.object.clone(),
                        status: json!({ "loadBalancer": { "ingress": desired } }),
                    });
                }
            }
            ObjectKind::IngressRoute => {
                let Some(route) = snapshot.ingress_routes.get(&status.object) else {
                    continue;
                };
                let current = route.status.clone().unwrap_or_default();
                let wanted = status.validity.to_string();
                if current.current_status.as_deref() != Some(wanted.as_str())
                    || current.description.as_deref() != Some(status.description.as_str())
                {
                    writes.push(StatusWrite::IngressRoute {
                        object: status.object.clone(),
                        status: json!({ "currentStatus": wanted, "description": status.description }),
                    });
                }
            }
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::Validity;
    use k8s_openapi::api::networking::v1::{
        Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };

    fn status(name: &str) -> ObjectStatus {
        ObjectStatus {
            kind: ObjectKind::Ingress,
            object: ObjectKey::new("ns", name),
            validity: Validity::Valid,
            description: "valid Ingress".into(),
        }
    }

    fn address() -> LoadBalancerAddress {
        LoadBalancerAddress {
            entries: vec![(Some("192.0.2.10".into()), None)],
        }
    }

    #[test]
    fn ingresses_without_the_address_are_written_and_others_skipped() {
        let mut snapshot = Snapshot::default();
        snapshot.ingresses.insert(
            ObjectKey::new("ns", "new"),
            std::sync::Arc::new(Ingress::default()),
        );
        let done = Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        ip: Some("192.0.2.10".into()),
                        ..Default::default()
                    }]),
                }),
            }),
            ..Default::default()
        };
        snapshot
            .ingresses
            .insert(ObjectKey::new("ns", "done"), std::sync::Arc::new(done));
        let writes = pending_writes(&snapshot, &[status("new"), status("done")], &address());
        assert_eq!(
            writes,
            vec![StatusWrite::Ingress {
                object: ObjectKey::new("ns", "new"),
                status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}),
            }]
        );
    }

    #[test]
    fn nothing_is_written_while_the_address_is_unknown() {
        let mut snapshot = Snapshot::default();
        snapshot.ingresses.insert(
            ObjectKey::new("ns", "new"),
            std::sync::Arc::new(Ingress::default()),
        );
        assert!(
            pending_writes(&snapshot, &[status("new")], &LoadBalancerAddress::default()).is_empty()
        );
    }

    #[test]
    fn a_fixed_host_name_address_is_a_hostname_entry() {
        let config = StatusConfig {
            ingress_status_address: Some("lb.example.com".into()),
            envoy_service: ObjectKey::new("isobar-system", "envoy"),
            reporting_instance: None,
        };
        let a = LoadBalancerAddress::resolve(&config, &Snapshot::default());
        assert_eq!(a.entries, vec![(None, Some("lb.example.com".into()))]);
    }
}
