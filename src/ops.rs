//! The operations HTTP server: `/healthz`, `/metrics` (Prometheus text), `/debug/xds`, `/debug/status`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::controller::ControllerState;
use crate::dag::Validity;
use crate::xds::cache::XdsCache;
use crate::xds::stats::XdsStats;
use crate::xds::type_url;

#[derive(Clone)]
struct Ops {
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
}

/// Serves the ops endpoints on `listener` for as long as the task runs.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/debug/xds", get(debug_xds))
        .route("/debug/status", get(debug_status))
        .route("/debug/dag", get(debug_dag))
        .with_state(Ops {
            stats,
            state,
            cache,
        });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "ops HTTP server stopped");
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    let s = &ops.stats;
    counter(
        &mut out,
        "isobar_xds_responses_total",
        "xDS responses sent.",
        s.responses_sent.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_xds_acks_total",
        "xDS responses Envoy accepted.",
        s.acks.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_xds_nacks_total",
        "xDS responses Envoy rejected (NACK).",
        s.nacks.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_xds_tls_handshake_failures_total",
        "xDS connections refused at the TLS handshake (bad or missing client certificate, not TLS, or not done within --xds-handshake-timeout).",
        s.handshake_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_xds_client_san_refusals_total",
        "xDS clients refused after the TLS handshake: no SAN DNS name in --xds-client-san.",
        s.client_san_refusals.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_endpoint_refreshes_total",
        "EDS-only updates (an endpoint change rebuilds nothing else).",
        ops.state.endpoint_refreshes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_status_writes_total",
        "Object statuses written to the API server.",
        ops.state.status.writes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_status_write_failures_total",
        "Status writes that failed (retried on the next change).",
        ops.state.status.failures.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "isobar_rebuilds_total",
        "Configuration rebuilds.",
        ops.state.rebuilds.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP isobar_xds_streams Open xDS streams.\n# TYPE isobar_xds_streams gauge\nisobar_xds_streams {}", s.open_streams());
    let _ = writeln!(out, "# HELP isobar_xds_tls_awaiting_client_hello xDS connections accepted whose TLS ClientHello has not arrived.\n# TYPE isobar_xds_tls_awaiting_client_hello gauge\nisobar_xds_tls_awaiting_client_hello {}", s.awaiting_client_hello.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP isobar_xds_tls_handshakes_in_progress xDS TLS handshakes holding one of the --xds-max-concurrent-handshakes slots.\n# TYPE isobar_xds_tls_handshakes_in_progress gauge\nisobar_xds_tls_handshakes_in_progress {}", s.handshakes_in_progress.load(Ordering::Relaxed));
    let snapshot = ops.cache.current();
    let _ = writeln!(out, "# HELP isobar_xds_resources Resources in the xDS cache.\n# TYPE isobar_xds_resources gauge");
    for t in type_url::ALL {
        let _ = writeln!(
            out,
            "isobar_xds_resources{{type=\"{}\"}} {}",
            type_url::short_name(t),
            snapshot.len(t)
        );
    }
    let _ = writeln!(
        out,
        "# HELP isobar_objects Objects by status.\n# TYPE isobar_objects gauge"
    );
    let statuses = ops.state.statuses.borrow().clone();
    for validity in [Validity::Valid, Validity::Invalid, Validity::Orphaned] {
        let n = statuses.iter().filter(|s| s.validity == validity).count();
        let _ = writeln!(out, "isobar_objects{{status=\"{validity}\"}} {n}");
    }
    let tls = ops.state.tls.lock().ok().and_then(|t| t.clone());
    if let Some(tls) = tls {
        let expiries = tls.expiries();
        let _ = writeln!(out, "# HELP isobar_certificate_expiry_seconds When the xDS server's certificates expire (Unix time).\n# TYPE isobar_certificate_expiry_seconds gauge");
        for (cert, list) in [("serving", &expiries.serving), ("ca", &expiries.ca)] {
            for e in list {
                let _ = writeln!(
                    out,
                    "isobar_certificate_expiry_seconds{{cert=\"{cert}\",serial=\"{}\"}} {}",
                    e.serial, e.not_after
                );
            }
        }
    }
    let errors = ops
        .state
        .source_errors
        .lock()
        .map(|e| e.len())
        .unwrap_or_default();
    let _ = writeln!(out, "# HELP isobar_source_errors Manifests that do not parse.\n# TYPE isobar_source_errors gauge\nisobar_source_errors {errors}");
    ([("content-type", "text/plain; version=0.0.4")], out)
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
        "client_san_refusals": ops.stats.client_san_refusals.load(Ordering::Relaxed),
        "tls_awaiting_client_hello": ops.stats.awaiting_client_hello.load(Ordering::Relaxed),
        "tls_handshakes_in_progress": ops.stats.handshakes_in_progress.load(Ordering::Relaxed),
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
