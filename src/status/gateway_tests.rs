//! Gateway API status writes: what is written, what is kept, and that a stored status that already
//! says it all is not written again.

use serde_json::json;

use super::*;
use crate::dag::gateway::status::{gateway_api_status, GatewayOptions};
use crate::store::KubeObject;

const V1: &str = "gateway.networking.k8s.io/v1";
const OURS: &str = "isobar.dev/gateway-controller";

fn snapshot(objects: Vec<Value>) -> Snapshot {
    let mut s = Snapshot::default();
    for o in objects {
        s.insert(KubeObject::from_value(o.clone()).unwrap_or_else(|e| panic!("{e:?}: {o}")));
    }
    s
}

fn time(s: &str) -> Time {
    serde_json::from_value(json!(s)).unwrap()
}

fn objects(route_status: Option<Value>) -> Vec<Value> {
    let mut route = json!({"apiVersion": V1, "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "t", "generation": 3},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}});
    if let Some(s) = route_status {
        route["status"] = s;
    }
    vec![
        json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "isobar", "generation": 1},
               "spec": {"controllerName": OURS}}),
        json!({"apiVersion": V1, "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "t", "generation": 2},
               "spec": {"gatewayClassName": "isobar",
                        "listeners": [{"name": "http", "protocol": "HTTP", "port": 8081}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "t"},
               "spec": {"ports": [{"port": 80}]}}),
        route,
    ]
}

fn writes(objects: Vec<Value>, now: &str) -> Vec<GatewayStatusWrite> {
    let s = snapshot(objects);
    let status = gateway_api_status(&s, &GatewayOptions::default());
    gateway_writes(&s, &status, OURS, &time(now), &mut SettledRoutes::default())
}

#[test]
fn every_object_without_its_status_is_written_once() {
    let first = writes(objects(None), "2026-01-01T00:00:00Z");
    assert_eq!(first.len(), 3, "{first:#?}");
    let GatewayStatusWrite::Gateway { status, .. } = &first[1] else {
        panic!("{first:#?}")
    };
    let listener = &status["listeners"][0];
    assert_eq!(listener["attachedRoutes"], 1);
    assert_eq!(
        listener["supportedKinds"],
        json!([{"group": GROUP, "kind": "HTTPRoute"}])
    );
    assert_eq!(status["conditions"][0]["observedGeneration"], 2);
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        "2026-01-01T00:00:00Z"
    );
    let GatewayStatusWrite::HttpRoute { status, .. } = &first[2] else {
        panic!("{first:#?}")
    };
    assert_eq!(
        status["parents"][0]["parentRef"],
        json!({"group": GROUP, "kind": "Gateway", "name": "gw"})
    );
    assert_eq!(status["parents"][0]["controllerName"], OURS);

    // Stored as written: nothing to write later, whatever the time.
    let mut stored = objects(None);
    for w in &first {
        let (index, status) = match w {
            GatewayStatusWrite::GatewayClass { status, .. } => (0, status),
            GatewayStatusWrite::Gateway { status, .. } => (1, status),
            GatewayStatusWrite::HttpRoute { status, .. } => (3, status),
        };
        stored[index]["status"] = status.clone();
    }
    assert_eq!(writes(stored, "2026-02-01T00:00:00Z"), []);
}

#[test]
fn other_controllers_parents_stay_and_a_changed_condition_gets_a_new_transition_time() {
    let other = json!({"parentRef": {"group": GROUP, "kind": "Gateway", "name": "elsewhere"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2025-01-01T00:00:00Z"}]});
    // isobar's entry says the backend was missing; now it resolves.
    let ours = json!({"parentRef": {"group": GROUP, "kind": "Gateway", "name": "gw"},
        "controllerName": OURS,
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
             "observedGeneration": 3, "lastTransitionTime": "2025-06-01T00:00:00Z"},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "gone",
             "observedGeneration": 3, "lastTransitionTime": "2025-06-01T00:00:00Z"}]});
    let w = writes(
        objects(Some(json!({"parents": [other.clone(), ours]}))),
        "2026-01-01T00:00:00Z",
    );
    let route = w
        .iter()
        .find_map(|w| match w {
            GatewayStatusWrite::HttpRoute { status, .. } => Some(status),
            _ => None,
        })
        .expect("the route's status");
    let parents = route["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], other);
    let conditions = &parents[1]["conditions"];
    assert_eq!(conditions[0]["lastTransitionTime"], "2025-06-01T00:00:00Z");
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(conditions[1]["lastTransitionTime"], "2026-01-01T00:00:00Z");
}

#[test]
fn isobars_entry_goes_when_the_route_no_longer_names_isobars_gateway() {
    let ours = json!({"parentRef": {"group": GROUP, "kind": "Gateway", "name": "old"},
        "controllerName": OURS, "conditions": []});
    let mut objects = objects(Some(json!({"parents": [ours]})));
    objects[3]["spec"]["parentRefs"] = json!([{"name": "not-ours"}]);
    let w = writes(objects, "2026-01-01T00:00:00Z");
    assert!(
        w.contains(&GatewayStatusWrite::HttpRoute {
            object: ObjectKey::new("t", "r"),
            status: json!({"parents": []}),
        }),
        "{w:#?}"
    );
}

#[test]
fn a_settled_route_is_skipped_until_it_or_what_isobar_wants_for_it_changes() {
    let first = writes(objects(None), "2026-01-01T00:00:00Z");
    let GatewayStatusWrite::HttpRoute {
        status: written, ..
    } = &first[2]
    else {
        panic!("{first:#?}")
    };
    let mut stored = objects(Some(written.clone()));
    let s = snapshot(stored.clone());
    let status = gateway_api_status(&s, &GatewayOptions::default());
    let mut settled = SettledRoutes::default();
    let now = time("2026-02-01T00:00:00Z");
    let route_writes = |s: &Snapshot, status: &GatewayApiStatus, settled: &mut SettledRoutes| {
        gateway_writes(s, status, OURS, &now, settled)
            .into_iter()
            .filter(|w| matches!(w, GatewayStatusWrite::HttpRoute { .. }))
            .count()
    };
    assert_eq!(route_writes(&s, &status, &mut settled), 0);
    assert_eq!(settled.0.len(), 1);
    // What isobar wants changed (the route's Service is gone): written, and not settled.
    let mut without_service = s.clone();
    without_service.services.clear();
    let changed = gateway_api_status(&without_service, &GatewayOptions::default());
    assert_eq!(route_writes(&without_service, &changed, &mut settled), 1);
    assert!(settled.0.is_empty());
    // A write that did not land (the object is unchanged): looked at again, and written again.
    assert_eq!(route_writes(&without_service, &changed, &mut settled), 1);
    // The object changed behind isobar's back (someone cleared the status): a new object, looked at.
    assert_eq!(route_writes(&s, &status, &mut settled), 0);
    stored[3]["status"] = json!({"parents": []});
    let cleared = snapshot(stored);
    assert_eq!(route_writes(&cleared, &status, &mut settled), 1);
    // A route that is gone is forgotten.
    let mut gone = cleared.clone();
    gone.http_routes.clear();
    route_writes(&gone, &status, &mut settled);
    assert!(settled.0.is_empty());
}
