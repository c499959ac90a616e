//! Which Gateway API statuses need writing: a pure function of the statuses isobar computed, the
//! objects as last seen, and the time.
//!
//! A condition keeps its stored `lastTransitionTime` while its type, status and reason are
//! unchanged. An object is written only when what isobar owns in its status differs from what it
//! holds (transition times aside). An HTTPRoute's `status.parents` keeps other controllers'
//! entries; isobar's are replaced by the current ones, so an entry whose parentRef went away is
//! removed.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use crate::crd::gateway::HttpRoute;
use crate::dag::gateway::attach::{ParentRef, GROUP};
use crate::dag::gateway::conditions::Condition;
use crate::dag::gateway::status::{GatewayApiStatus, GatewayState, RouteParentState};
use crate::store::{ObjectKey, Snapshot};

/// The longest message the CRDs accept.
const MAX_MESSAGE: usize = 32_768;

/// One Gateway API status to write: the fields of `status` isobar owns (a merge patch replaces each
/// of them whole).
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayStatusWrite {
    GatewayClass { name: String, status: Value },
    Gateway { object: ObjectKey, status: Value },
    HttpRoute { object: ObjectKey, status: Value },
}

/// The HTTPRoutes whose stored status said everything isobar wanted when last looked at: the route
/// object then (the store's shared copy: a new one arrives with any change, isobar's own writes
/// included) and isobar's parents for it. While both stay, the route needs no write and its status
/// is not built again, so a pass costs a comparison per route, not a serialisation per route.
#[derive(Debug, Default)]
pub struct SettledRoutes(HashMap<ObjectKey, (Arc<HttpRoute>, Option<Vec<RouteParentState>>)>);

impl SettledRoutes {
    fn is_settled(
        &self,
        key: &ObjectKey,
        route: &Arc<HttpRoute>,
        parents: Option<&Vec<RouteParentState>>,
    ) -> bool {
        self.0
            .get(key)
            .is_some_and(|(seen, wanted)| Arc::ptr_eq(seen, route) && wanted.as_ref() == parents)
    }
}

/// The writes that bring the stored statuses to `status`, for controller `controller`. Routes in
/// `settled` are skipped; it is brought up to date (a route written, or whose write fails, is not
/// settled, so it is looked at again on the next pass).
pub fn gateway_writes(
    snapshot: &Snapshot,
    status: &GatewayApiStatus,
    controller: &str,
    now: &Time,
    settled: &mut SettledRoutes,
) -> Vec<GatewayStatusWrite> {
    let mut out = Vec::new();
    for (name, conditions) in &status.classes {
        let Some(class) = snapshot
            .gateway_classes
            .get(&ObjectKey::new("", name.clone()))
        else {
            continue;
        };
        let stored = to_value(&class.status);
        let desired =
            json!({"conditions": conditions_json(conditions, &stored["conditions"], now)});
        if differs(&stored, &desired) {
            out.push(GatewayStatusWrite::GatewayClass {
                name: name.clone(),
                status: desired,
            });
        }
    }
    for (key, state) in &status.gateways {
        let Some(gateway) = snapshot.gateways.get(key) else {
            continue;
        };
        let stored = to_value(&gateway.status);
        let desired = gateway_json(state, &stored, now);
        if differs(&stored, &desired) {
            out.push(GatewayStatusWrite::Gateway {
                object: key.clone(),
                status: desired,
            });
        }
    }
    settled
        .0
        .retain(|key, _| snapshot.http_routes.contains_key(key));
    for (key, route) in &snapshot.http_routes {
        let parents = status.routes.get(key);
        if settled.is_settled(key, route, parents) {
            continue;
        }
        let stored = to_value(&route.status);
        let stored_parents = stored["parents"].as_array().cloned().unwrap_or_default();
        let ours = |p: &Value| p["controllerName"] == controller;
        if parents.is_none() && !stored_parents.iter().any(ours) {
            settled.0.insert(key.clone(), (Arc::clone(route), None));
            continue;
        }
        let mut desired_parents: Vec<Value> = stored_parents
            .iter()
            .filter(|p| !ours(p))
            .cloned()
            .collect();
        for p in parents.into_iter().flatten() {
            let parent_ref = parent_ref_json(&p.parent);
            let previous = stored_parents
                .iter()
                .find(|s| ours(s) && s["parentRef"] == parent_ref)
                .map_or(&Value::Null, |s| &s["conditions"]);
            desired_parents.push(json!({
                "parentRef": parent_ref,
                "controllerName": controller,
                "conditions": conditions_json(&p.conditions, previous, now),
            }));
        }
        let desired = json!({ "parents": desired_parents });
        if differs(&stored, &desired) {
            settled.0.remove(key);
            out.push(GatewayStatusWrite::HttpRoute {
                object: key.clone(),
                status: desired,
            });
        } else {
            settled
                .0
                .insert(key.clone(), (Arc::clone(route), parents.cloned()));
        }
    }
    out
}

fn to_value<T: serde::Serialize>(status: &Option<T>) -> Value {
    status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}))
}

fn gateway_json(state: &GatewayState, stored: &Value, now: &Time) -> Value {
    let listeners: Vec<Value> = state
        .listeners
        .iter()
        .map(|l| {
            let previous = stored["listeners"]
                .as_array()
                .and_then(|ls| ls.iter().find(|s| s["name"] == l.name.as_str()))
                .map_or(&Value::Null, |s| &s["conditions"]);
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds.iter()
                    .map(|k| json!({"group": k.group, "kind": k.kind}))
                    .collect::<Vec<_>>(),
                "attachedRoutes": l.attached_routes,
                "conditions": conditions_json(&l.conditions, previous, now),
            })
        })
        .collect();
    json!({
        "conditions": conditions_json(&state.conditions, &stored["conditions"], now),
        "listeners": listeners,
    })
}

/// A parentRef as the API server stores it in status (its group and kind defaulted).
fn parent_ref_json(p: &ParentRef) -> Value {
    let mut v = json!({
        "group": p.group.as_deref().unwrap_or(GROUP),
        "kind": p.kind.as_deref().unwrap_or("Gateway"),
        "name": p.name,
    });
    if let Some(ns) = &p.namespace {
        v["namespace"] = json!(ns);
    }
    if let Some(s) = &p.section_name {
        v["sectionName"] = json!(s);
    }
    if let Some(port) = p.port {
        v["port"] = json!(port);
    }
    v
}

/// Conditions as `metav1.Condition`s, each keeping the stored transition time of its type while
/// its status and reason are unchanged.
fn conditions_json(conditions: &[Condition], stored: &Value, now: &Time) -> Vec<Value> {
    let now = serde_json::to_value(now).unwrap_or(Value::Null);
    conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = stored
                .as_array()
                .and_then(|s| s.iter().find(|s| s["type"] == c.type_))
                .filter(|s| s["status"] == status && s["reason"] == c.reason)
                .map_or(&now, |s| &s["lastTransitionTime"]);
            let mut message = c.message.clone();
            if message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
            }
            json!({
                "type": c.type_,
                "status": status,
                "reason": c.reason,
                "message": message,
                "observedGeneration": c.observed_generation,
                "lastTransitionTime": since,
            })
        })
        .collect()
}

/// Whether `desired`'s fields differ from the same fields of `stored`, transition times aside.
fn differs(stored: &Value, desired: &Value) -> bool {
    let Some(fields) = desired.as_object() else {
        return true;
    };
    fields.iter().any(|(field, value)| {
        without_transition_times(&stored[field]) != without_transition_times(value)
    })
}

fn without_transition_times(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                .map(|(k, v)| (k.clone(), without_transition_times(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_transition_times).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
