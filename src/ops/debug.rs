//! `/debug/*`: what isobar holds, as JSON (the xDS cache and connected Envoys, object statuses) and the
//! DAG as Graphviz dot. Served on the debug listener only.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use super::Ops;
use crate::xds::type_url;

pub(super) async fn xds(State(ops): State<Ops>) -> impl IntoResponse {
    let snapshot = ops.cache.current();
    let versions: serde_json::Map<String, serde_json::Value> = type_url::ALL
        .iter()
        .map(|t| (type_url::short_name(t).to_string(), serde_json::json!({"version": snapshot.type_version(t), "resources": snapshot.len(t)})))
        .collect();
    Json(serde_json::json!({
        "generation": snapshot.generation,
        "cache": versions,
        "streams": ops.stats.streams(),
        "nacks": ops.stats.nacks.load(Ordering::Relaxed),
        "last_nack": ops.stats.last_nack(),
        "tls_handshake_failures": ops.stats.handshake_failures.load(Ordering::Relaxed),
        "client_san_refusals": ops.stats.client_san_refusals.load(Ordering::Relaxed),
        "tls_awaiting_client_hello": ops.stats.awaiting_client_hello.load(Ordering::Relaxed),
        "tls_handshakes_in_progress": ops.stats.handshakes_in_progress.load(Ordering::Relaxed),
    }))
}

pub(super) async fn status(State(ops): State<Ops>) -> impl IntoResponse {
    let statuses = ops.state.statuses.borrow().clone();
    let errors = ops.state.current_source_errors();
    Json(serde_json::json!({
        "objects": statuses.values().map(|s| serde_json::json!({
            "kind": s.kind.to_string(), "namespace": &*s.object.namespace, "name": &*s.object.name,
            "status": s.validity.to_string(), "description": s.description,
        })).collect::<Vec<_>>(),
        "source_errors": errors,
    }))
}

pub(super) async fn dag(State(ops): State<Ops>) -> impl IntoResponse {
    let dag = ops.state.current_dag();
    (
        [("content-type", "text/vnd.graphviz")],
        crate::dag::dot(&dag),
    )
}
