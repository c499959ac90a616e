//! The operations HTTP server: `/healthz`, `/metrics` (Prometheus text), `/debug/xds`, `/debug/status`.

pub mod metrics;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::controller::ControllerState;
use crate::xds::cache::XdsCache;
use crate::xds::stats::XdsStats;
use crate::xds::type_url;
use metrics::Metrics;

#[derive(Clone)]
struct Ops {
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
    metrics: Arc<Metrics>,
}

/// Serves the ops endpoints on `listener` for as long as the task runs.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
) {
    let metrics = Arc::new(Metrics::new(
        Arc::clone(&stats),
        Arc::clone(&state),
        Arc::clone(&cache),
    ));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::handler))
        .route("/debug/xds", get(debug_xds))
        .route("/debug/status", get(debug_status))
        .route("/debug/dag", get(debug_dag))
        .with_state(Ops {
            stats,
            state,
            cache,
            metrics,
        });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "ops HTTP server stopped");
    }
}

async fn debug_xds(State(ops): State<Ops>) -> impl IntoResponse {
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
    }))
}

async fn debug_status(State(ops): State<Ops>) -> impl IntoResponse {
    let statuses = ops.state.statuses.borrow().clone();
    let errors = ops
        .state
        .source_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    Json(serde_json::json!({
        "objects": statuses.iter().map(|s| serde_json::json!({
            "kind": s.kind.to_string(), "namespace": s.object.namespace, "name": s.object.name,
            "status": s.validity.to_string(), "description": s.description,
        })).collect::<Vec<_>>(),
        "source_errors": errors,
    }))
}

async fn debug_dag(State(ops): State<Ops>) -> impl IntoResponse {
    let dag = ops
        .state
        .dag
        .lock()
        .map(|d| std::sync::Arc::clone(&d))
        .unwrap_or_default();
    (
        [("content-type", "text/vnd.graphviz")],
        crate::dag::dot(&dag),
    )
}
