//! How the listeners of every accepted Gateway become Envoy listeners.
//!
//! One Envoy serves all of isobar's Gateways, so Gateway listeners are grouped by the port Envoy
//! binds: one Envoy listener per port, named for its protocol and port (`http-8080`, `https-8443`).
//! The name depends on nothing else, so editing an unrelated listener, Gateway or route never renames
//! (and so never drains) an Envoy listener. A port below 1024 is bound at port + the privileged-port
//! offset (`--gateway-privileged-port-offset`, as Contour does: Envoy does not run as root).
//!
//! Conflicts are settled by age: the oldest listener on a port (Gateway creation time, then Gateway
//! `{namespace}/{name}`, then the order in the Gateway) sets the port's protocol, and of listeners
//! with the same protocol and host name the oldest keeps it; the others get a `Conflicted` condition
//! and serve nothing. Nothing that is already served can be taken over by a newer object.

use std::collections::BTreeMap;

use crate::store::ObjectKey;

/// Contour's default offset for privileged ports.
pub const DEFAULT_PRIVILEGED_PORT_OFFSET: u16 = 8000;

/// The protocols isobar serves on a Gateway listener (GATEWAY-HTTP: HTTP and HTTPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    /// The protocol of a listener's `protocol` field; `None` for one isobar does not serve.
    pub fn parse(protocol: &str) -> Option<Protocol> {
        match protocol {
            "HTTP" => Some(Protocol::Http),
            "HTTPS" => Some(Protocol::Https),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// One listener of one Gateway, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayListener {
    pub gateway: ObjectKey,
    /// The Gateway's creation time (seconds since the epoch; `i64::MAX` when unknown).
    pub created: i64,
    pub name: String,
    pub protocol: String,
    pub port: i32,
    pub hostname: Option<String>,
}

/// Which listener of which Gateway.
pub type ListenerId = (ObjectKey, String);

/// An Envoy listener and the Gateway listeners it serves, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyListener {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub members: Vec<ListenerId>,
}

/// Why a Gateway listener serves nothing; each is a listener condition of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerProblem {
    /// `Accepted=False`, reason `UnsupportedProtocol`.
    UnsupportedProtocol(String),
    /// `Accepted=False`, reason `PortUnavailable`.
    PortUnavailable(String),
    /// `Conflicted=True`, reason `ProtocolConflict`.
    ProtocolConflict { port: u16, holder: ListenerId },
    /// `Conflicted=True`, reason `HostnameConflict`.
    HostnameConflict { port: u16, holder: ListenerId },
}

/// The Envoy listeners by name, and the Gateway listeners left out with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerPlan {
    pub listeners: BTreeMap<String, EnvoyListener>,
    pub problems: BTreeMap<ListenerId, ListenerProblem>,
}

/// The port Envoy binds for a Gateway listener's `port`.
pub fn envoy_port(port: i32, privileged_offset: u16) -> Result<u16, String> {
    let bound = if (1..1024).contains(&port) {
        port + i32::from(privileged_offset)
    } else {
        port
    };
    match u16::try_from(bound) {
        Ok(p) if p > 0 => Ok(p),
        _ if bound != port => Err(format!(
            "port {port} is privileged and would be served at {port} + {privileged_offset} = {bound}, past 65535"
        )),
        _ => Err(format!("port {port} is not between 1 and 65535")),
    }
}

/// Groups `listeners` (of accepted Gateways, in any order) into Envoy listeners. `reserved` holds the
/// ports Envoy already binds for something else (the Ingress listeners), with what that is.
pub fn plan(
    listeners: &[GatewayListener],
    privileged_offset: u16,
    reserved: &BTreeMap<u16, String>,
) -> ListenerPlan {
    let mut ordered: Vec<(usize, &GatewayListener)> = listeners.iter().enumerate().collect();
    // Age, then Gateway, then the order within the Gateway (the input keeps a Gateway's order).
    ordered
        .sort_by(|(ia, a), (ib, b)| (a.created, &a.gateway, ia).cmp(&(b.created, &b.gateway, ib)));
    let mut out = ListenerPlan::default();
    // Per bound port: its protocol and who set it, and the host names taken (None = every host).
    let mut ports: BTreeMap<u16, (Protocol, ListenerId)> = BTreeMap::new();
    let mut hosts: BTreeMap<(u16, Option<String>), ListenerId> = BTreeMap::new();
    for (_, l) in ordered {
        let id: ListenerId = (l.gateway.clone(), l.name.clone());
        let Some(protocol) = Protocol::parse(&l.protocol) else {
            out.problems.insert(
                id,
                ListenerProblem::UnsupportedProtocol(format!(
                    "protocol {:?} is not served; isobar serves HTTP and HTTPS",
                    l.protocol
                )),
            );
            continue;
        };
        let port = match envoy_port(l.port, privileged_offset) {
            Ok(p) if reserved.contains_key(&p) => {
                let why = format!(
                    "port {} is served at {p}, which is {}",
                    l.port, reserved[&p]
                );
                out.problems
                    .insert(id, ListenerProblem::PortUnavailable(why));
                continue;
            }
            Ok(p) => p,
            Err(why) => {
                out.problems
                    .insert(id, ListenerProblem::PortUnavailable(why));
                continue;
            }
        };
        let (port_protocol, holder) = ports
            .entry(port)
            .or_insert_with(|| (protocol, id.clone()))
            .clone();
        if port_protocol != protocol {
            out.problems
                .insert(id, ListenerProblem::ProtocolConflict { port, holder });
            continue;
        }
        let host_key = (port, l.hostname.clone());
        if let Some(holder) = hosts.get(&host_key) {
            let holder = holder.clone();
            out.problems
                .insert(id, ListenerProblem::HostnameConflict { port, holder });
            continue;
        }
        hosts.insert(host_key, id.clone());
        let name = format!("{}-{port}", protocol.prefix());
        out.listeners
            .entry(name.clone())
            .or_insert_with(|| EnvoyListener {
                name,
                protocol,
                port,
                members: Vec::new(),
            })
            .members
            .push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(
        gw: &str,
        created: i64,
        name: &str,
        protocol: &str,
        port: i32,
        host: Option<&str>,
    ) -> GatewayListener {
        GatewayListener {
            gateway: ObjectKey::new("infra", gw),
            created,
            name: name.to_string(),
            protocol: protocol.to_string(),
            port,
            hostname: host.map(str::to_string),
        }
    }

    fn id(gw: &str, name: &str) -> ListenerId {
        (ObjectKey::new("infra", gw), name.to_string())
    }

    #[test]
    fn privileged_ports_move_by_the_offset_and_others_stay() {
        assert_eq!(envoy_port(80, 8000), Ok(8080));
        assert_eq!(envoy_port(443, 8000), Ok(8443));
        assert_eq!(envoy_port(1023, 8000), Ok(9023));
        assert_eq!(envoy_port(1024, 8000), Ok(1024));
        assert_eq!(envoy_port(8080, 8000), Ok(8080));
        assert!(envoy_port(1000, 65000).unwrap_err().contains("past 65535"));
        assert!(envoy_port(0, 8000).is_err());
        assert!(envoy_port(70000, 8000).is_err());
    }

    #[test]
    fn listeners_of_several_gateways_merge_by_port_under_stable_names() {
        let plan = plan(
            &[
                listener("a", 1, "http", "HTTP", 80, None),
                listener("a", 1, "https", "HTTPS", 443, Some("a.example.com")),
                listener("b", 2, "web", "HTTP", 80, Some("b.example.com")),
                listener("b", 2, "tls", "HTTPS", 443, Some("b.example.com")),
                listener("b", 2, "alt", "HTTP", 9000, None),
            ],
            DEFAULT_PRIVILEGED_PORT_OFFSET,
            &BTreeMap::new(),
        );
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let names: Vec<_> = plan.listeners.keys().cloned().collect();
        assert_eq!(names, ["http-8080", "http-9000", "https-8443"]);
        assert_eq!(
            plan.listeners["http-8080"].members,
            [id("a", "http"), id("b", "web")]
        );
        assert_eq!(plan.listeners["https-8443"].protocol, Protocol::Https);
    }

    #[test]
    fn the_oldest_listener_keeps_a_port_and_a_host_name() {
        // Given newest first: the order of the input must not matter. An offset of 65000 moves
        // port 80 to 65080 and leaves no room for port 1000.
        let plan = plan(
            &[
                listener("new", 5, "https", "HTTPS", 80, None),
                listener("new", 5, "dup", "HTTP", 80, Some("x.example.com")),
                listener("old", 1, "http", "HTTP", 80, Some("x.example.com")),
                listener("old", 1, "tcp", "TCP", 5000, None),
                listener("old", 1, "high", "HTTP", 1000, None),
            ],
            65000,
            &BTreeMap::new(),
        );
        assert_eq!(plan.listeners["http-65080"].members, [id("old", "http")]);
        assert_eq!(
            plan.problems[&id("new", "https")],
            ListenerProblem::ProtocolConflict {
                port: 65080,
                holder: id("old", "http")
            }
        );
        assert_eq!(
            plan.problems[&id("new", "dup")],
            ListenerProblem::HostnameConflict {
                port: 65080,
                holder: id("old", "http")
            }
        );
        assert!(matches!(
            plan.problems[&id("old", "tcp")],
            ListenerProblem::UnsupportedProtocol(_)
        ));
        assert!(matches!(
            plan.problems[&id("old", "high")],
            ListenerProblem::PortUnavailable(_)
        ));
    }

    #[test]
    fn an_unrelated_edit_renames_no_envoy_listener() {
        let before = plan(
            &[
                listener("a", 1, "http", "HTTP", 80, None),
                listener("b", 2, "h", "HTTP", 80, Some("b.example.com")),
            ],
            DEFAULT_PRIVILEGED_PORT_OFFSET,
            &BTreeMap::new(),
        );
        let after = plan(
            &[
                listener("a", 1, "http", "HTTP", 80, None),
                listener("b", 2, "h", "HTTP", 80, Some("c.example.com")),
            ],
            DEFAULT_PRIVILEGED_PORT_OFFSET,
            &BTreeMap::new(),
        );
        assert_eq!(
            before.listeners.keys().collect::<Vec<_>>(),
            after.listeners.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_port_envoy_binds_for_something_else_is_unavailable() {
        let reserved = BTreeMap::from([(8080, "the Ingress HTTP listener".to_string())]);
        let plan = plan(
            &[
                listener("a", 1, "http", "HTTP", 80, None),
                listener("a", 1, "alt", "HTTP", 8081, None),
            ],
            DEFAULT_PRIVILEGED_PORT_OFFSET,
            &reserved,
        );
        assert_eq!(
            plan.problems[&id("a", "http")],
            ListenerProblem::PortUnavailable(
                "port 80 is served at 8080, which is the Ingress HTTP listener".to_string()
            )
        );
        assert_eq!(plan.listeners.keys().collect::<Vec<_>>(), ["http-8081"]);
    }
}
