//! `isobar check`'s lines and JSON for Gateway API objects: each of isobar's GatewayClasses,
//! Gateways (and their listeners) and HTTPRoutes (per parent), with the conditions `serve` would
//! write. A condition in a bad state (`Accepted`, `ResolvedRefs` or `Programmed` false, `Conflicted`
//! true) shows its reason and message, and makes `check` exit 1.

use clap::Args;
use serde_json::{json, Value};

use crate::dag::gateway::conditions::{brief, is_bad, Condition};
use crate::dag::gateway::listener::DEFAULT_PRIVILEGED_PORT_OFFSET;
use crate::dag::gateway::status::{
    GatewayApiStatus, GatewayOptions, DEFAULT_GATEWAY_CONTROLLER_NAME,
};

/// The flags that decide which Gateway API objects are isobar's and where they are served.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// GatewayClasses with this `spec.controllerName` are served by isobar.
    #[arg(long, default_value = DEFAULT_GATEWAY_CONTROLLER_NAME)]
    pub gateway_controller_name: String,
    /// A Gateway listener port below 1024 is served at port + this (Envoy does not run as root).
    #[arg(long, default_value_t = DEFAULT_PRIVILEGED_PORT_OFFSET)]
    pub gateway_privileged_port_offset: u16,
}

impl From<GatewayArgs> for GatewayOptions {
    fn from(args: GatewayArgs) -> Self {
        GatewayOptions {
            controller_name: args.gateway_controller_name,
            privileged_port_offset: args.gateway_privileged_port_offset,
            reserved_ports: Default::default(),
        }
    }
}

fn condition_json(c: &Condition) -> Value {
    json!({"type": c.type_, "status": if c.status { "True" } else { "False" },
           "reason": c.reason, "message": c.message, "observedGeneration": c.observed_generation})
}

/// Whether every condition is in a good state.
pub fn all_good(status: &GatewayApiStatus) -> bool {
    let good = |cs: &[Condition]| !cs.iter().any(is_bad);
    status.classes.values().all(|c| good(c))
        && status
            .gateways
            .values()
            .all(|g| good(&g.conditions) && g.listeners.iter().all(|l| good(&l.conditions)))
        && status
            .routes
            .values()
            .flatten()
            .all(|p| good(&p.conditions))
}

/// One line per class, Gateway, listener and route parent.
pub fn lines(status: &GatewayApiStatus) -> Vec<String> {
    let mut out = Vec::new();
    for (name, cs) in &status.classes {
        out.push(format!("GatewayClass {name}: {}", brief(cs)));
    }
    for (key, g) in &status.gateways {
        out.push(format!("Gateway {key}: {}", brief(&g.conditions)));
        for l in &g.listeners {
            out.push(format!(
                "Gateway {key} listener {}: {} attachedRoutes={}",
                l.name,
                brief(&l.conditions),
                l.attached_routes
            ));
        }
    }
    for (key, parents) in &status.routes {
        for p in parents {
            let section = p
                .parent
                .section_name
                .as_ref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            out.push(format!(
                "HTTPRoute {key} parent {}{section}: {}",
                p.gateway,
                brief(&p.conditions)
            ));
        }
    }
    out
}

/// The same as JSON objects, beside `check`'s others.
pub fn objects(status: &GatewayApiStatus) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, cs) in &status.classes {
        out.push(json!({"kind": "GatewayClass", "name": name,
                        "conditions": cs.iter().map(condition_json).collect::<Vec<_>>()}));
    }
    for (key, g) in &status.gateways {
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                json!({"name": l.name, "attachedRoutes": l.attached_routes,
                       "supportedKinds": l.supported_kinds.iter().map(|k| json!({"group": k.group, "kind": k.kind})).collect::<Vec<_>>(),
                       "conditions": l.conditions.iter().map(condition_json).collect::<Vec<_>>()})
            })
            .collect();
        out.push(
            json!({"kind": "Gateway", "namespace": &*key.namespace, "name": &*key.name,
                        "conditions": g.conditions.iter().map(condition_json).collect::<Vec<_>>(),
                        "listeners": listeners}),
        );
    }
    for (key, parents) in &status.routes {
        let parents: Vec<Value> = parents
            .iter()
            .map(|p| {
                json!({"gateway": p.gateway.to_string(), "sectionName": p.parent.section_name,
                       "conditions": p.conditions.iter().map(condition_json).collect::<Vec<_>>()})
            })
            .collect();
        out.push(
            json!({"kind": "HTTPRoute", "namespace": &*key.namespace, "name": &*key.name,
                        "parents": parents}),
        );
    }
    out
}
