//! `/healthz` (liveness: no supervised task has died) and `/readyz` (the first complete configuration
//! is in the xDS cache). Both answer 503 with the reason, so a failing probe explains itself in
//! `kubectl describe pod`.

use axum::extract::State;
use axum::http::StatusCode;

use super::Ops;

pub(super) async fn healthz(State(ops): State<Ops>) -> (StatusCode, String) {
    match ops.state.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

pub(super) async fn readyz(State(ops): State<Ops>) -> (StatusCode, String) {
    match ops.state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}
