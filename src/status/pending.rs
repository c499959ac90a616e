//! Which statuses need writing: a pure function of the desired statuses and the objects as last seen.

use k8s_openapi::api::networking::v1::Ingress;
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

/// The statuses whose objects don't carry them yet; Ingresses get nothing while the address is
/// unknown. Only lookups and comparisons: it runs under the snapshot's lock, which every watcher
/// needs for every event; the writes are made after ([`write_for`]). Linear in `statuses` (one map
/// lookup each).
pub fn pending<'a>(
    snapshot: &Snapshot,
    statuses: impl IntoIterator<Item = &'a ObjectStatus>,
    address: &LoadBalancerAddress,
) -> Vec<&'a ObjectStatus> {
    statuses
        .into_iter()
        .filter(|status| match status.kind {
            ObjectKind::Ingress => {
                !address.entries.is_empty()
                    && snapshot
                        .ingresses
                        .get(&status.object)
                        .is_some_and(|ingress| !carries_address(ingress, address))
            }
            ObjectKind::IngressRoute => {
                snapshot
                    .ingress_routes
                    .get(&status.object)
                    .is_some_and(|route| {
                        let current = route.status.as_ref();
                        current.and_then(|c| c.current_status.as_deref())
                            != Some(status.validity.to_string().as_str())
                            || current.and_then(|c| c.description.as_deref())
                                != Some(status.description.as_str())
                    })
            }
            // Its status is its Gateway API status, written apart.
            ObjectKind::HttpRoute => false,
        })
        .collect()
}

/// Whether the Ingress's `status.loadBalancer.ingress` is exactly what [`write_for`] would write.
fn carries_address(ingress: &Ingress, address: &LoadBalancerAddress) -> bool {
    let current = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    current.is_some_and(|current| {
        current.len() == address.entries.len()
            && current.iter().zip(&address.entries).all(|(c, entry)| {
                // An entry with an IP is written as the IP alone (see `to_json`).
                let (ip, hostname) = match entry {
                    (Some(ip), _) => (Some(ip), None),
                    (None, hostname) => (None, hostname.as_ref()),
                };
                c.ip.as_ref() == ip && c.hostname.as_ref() == hostname && c.ports.is_none()
            })
    })
}

/// The write that gives `status`'s object that status (none for an HTTPRoute, whose status is its
/// Gateway API status).
pub fn write_for(status: &ObjectStatus, address: &LoadBalancerAddress) -> Option<StatusWrite> {
    Some(match status.kind {
        ObjectKind::Ingress => StatusWrite::Ingress {
            object: status.object.clone(),
            status: json!({ "loadBalancer": { "ingress": address.to_json() } }),
        },
        ObjectKind::IngressRoute => StatusWrite::IngressRoute {
            object: status.object.clone(),
            status: json!({
                "currentStatus": status.validity.to_string(),
                "description": status.description,
            }),
        },
        ObjectKind::HttpRoute => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IngressRoute, IngressRouteStatus};
    use crate::dag::Validity;
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };

    fn pending_writes(
        snapshot: &Snapshot,
        statuses: &[ObjectStatus],
        address: &LoadBalancerAddress,
    ) -> Vec<StatusWrite> {
        pending(snapshot, statuses, address)
            .into_iter()
            .filter_map(|s| write_for(s, address))
            .collect()
    }

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
            budget: Default::default(),
        };
        let a = LoadBalancerAddress::resolve(&config, &Snapshot::default());
        assert_eq!(a.entries, vec![(None, Some("lb.example.com".into()))]);
    }

    fn route_status(name: &str, validity: Validity, description: &str) -> ObjectStatus {
        ObjectStatus {
            kind: ObjectKind::IngressRoute,
            object: ObjectKey::new("ns", name),
            validity,
            description: description.into(),
        }
    }

    fn route_carrying(current: Option<(&str, &str)>) -> IngressRoute {
        let mut route: IngressRoute = serde_json::from_value(json!({
            "apiVersion": "contour.heptio.com/v1beta1",
            "kind": "IngressRoute",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {},
        }))
        .unwrap();
        route.status = current.map(|(s, d)| IngressRouteStatus {
            current_status: Some(s.into()),
            description: Some(d.into()),
        });
        route
    }

    #[test]
    fn only_ingress_routes_whose_status_differs_are_written() {
        let mut snapshot = Snapshot::default();
        for (name, current) in [
            ("same", Some(("valid", "valid IngressRoute"))),
            ("reworded", Some(("invalid", "old reason"))),
            ("broken", Some(("valid", "valid IngressRoute"))),
            ("new", None),
        ] {
            snapshot.ingress_routes.insert(
                ObjectKey::new("ns", name),
                std::sync::Arc::new(route_carrying(current)),
            );
        }
        let statuses = [
            route_status("same", Validity::Valid, "valid IngressRoute"),
            route_status("reworded", Validity::Invalid, "new reason"),
            route_status("broken", Validity::Orphaned, "valid IngressRoute"),
            route_status("new", Validity::Valid, "valid IngressRoute"),
            // Not seen (yet, or any more): nothing to write to.
            route_status("unseen", Validity::Valid, "valid IngressRoute"),
        ];
        let writes = pending_writes(&snapshot, &statuses, &address());
        let route_write =
            |name: &str, current: &str, description: &str| StatusWrite::IngressRoute {
                object: ObjectKey::new("ns", name),
                status: json!({"currentStatus": current, "description": description}),
            };
        assert_eq!(
            writes,
            [
                route_write("reworded", "invalid", "new reason"),
                route_write("broken", "orphaned", "valid IngressRoute"),
                route_write("new", "valid", "valid IngressRoute"),
            ]
        );
    }

    #[test]
    fn an_ingress_with_more_than_the_address_is_written() {
        let carrying = |entry: IngressLoadBalancerIngress| Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![entry]),
                }),
            }),
            ..Default::default()
        };
        let ip = || IngressLoadBalancerIngress {
            ip: Some("192.0.2.10".into()),
            ..Default::default()
        };
        let mut snapshot = Snapshot::default();
        snapshot.ingresses.insert(
            ObjectKey::new("ns", "exact"),
            std::sync::Arc::new(carrying(ip())),
        );
        snapshot.ingresses.insert(
            ObjectKey::new("ns", "with-host"),
            std::sync::Arc::new(carrying(IngressLoadBalancerIngress {
                hostname: Some("lb.example.com".into()),
                ..ip()
            })),
        );
        snapshot.ingresses.insert(
            ObjectKey::new("ns", "with-ports"),
            std::sync::Arc::new(carrying(IngressLoadBalancerIngress {
                ports: Some(Vec::new()),
                ..ip()
            })),
        );
        let statuses = [status("exact"), status("with-host"), status("with-ports")];
        let names: Vec<&str> = pending(&snapshot, &statuses, &address())
            .iter()
            .map(|s| &*s.object.name)
            .collect();
        assert_eq!(names, ["with-host", "with-ports"]);
        // The IP wins over a host name of the same entry: what is written is the IP alone.
        let both = LoadBalancerAddress {
            entries: vec![(Some("192.0.2.10".into()), Some("lb.example.com".into()))],
        };
        let names: Vec<&str> = pending(&snapshot, &statuses, &both)
            .iter()
            .map(|s| &*s.object.name)
            .collect();
        assert_eq!(names, ["with-host", "with-ports"]);
    }
}
