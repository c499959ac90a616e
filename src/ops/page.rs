//! The operator page: plain HTML, CSS and JavaScript compiled into the binary (no CDN, no build step,
//! works offline), the snapshot it reads as JSON, server-sent events with each new snapshot, and the
//! DAG as SVG.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use super::Ops;
use crate::admin::{json, svg};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(super) async fn snapshot(State(ops): State<Ops>) -> Response {
    match json::admin_snapshot(&ops.admin().snapshot()) {
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One `snapshot` event per change (the first at once), as the admin `Watch` stream sends them.
pub(super) async fn events(
    State(ops): State<Ops>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = ops.admin().changes().map(|snapshot| {
        Ok(match json::admin_snapshot(&snapshot) {
            Ok(value) => Event::default().event("snapshot").data(value.to_string()),
            Err(e) => Event::default().event("error").data(e.to_string()),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

pub(super) async fn dag_svg(State(ops): State<Ops>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg::render(&ops.admin().snapshot()),
    )
        .into_response()
}
