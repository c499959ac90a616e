//! The operations HTTP servers, on two listeners for two audiences:
//!
//! * `--http-address/--http-port` (all interfaces by default): `/healthz`, `/readyz` and `/metrics`, for
//!   the kubelet and Prometheus;
//! * `--debug-http-address/--debug-http-port` (loopback by default, as in Contour): the operator page
//!   at `/`, the admin gRPC API (HTTP/2 on the same port) and `/debug/*`, which show every object,
//!   every connected Envoy and Envoy's error messages, so they stay off the network unless an
//!   operator moves them there.

mod debug;
pub mod metrics;
mod page;
mod probes;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::admin::service::AdminState;
use crate::controller::ControllerState;
use crate::xds::cache::XdsCache;
use crate::xds::stats::XdsStats;
use metrics::Metrics;

/// What the handlers read.
#[derive(Clone)]
struct Ops {
    stats: Arc<XdsStats>,
    state: Arc<ControllerState>,
    cache: Arc<XdsCache>,
    metrics: Arc<Metrics>,
}

impl Ops {
    /// What the admin API and the operator page read: the same state.
    fn admin(&self) -> AdminState {
        AdminState {
            stats: Arc::clone(&self.stats),
            state: Arc::clone(&self.state),
            cache: Arc::clone(&self.cache),
        }
    }
}

/// The routers of both listeners, over the same state.
#[derive(Clone)]
pub struct OpsRouters {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub main: Router,
    /// The operator page at `/`, its JSON and events under `/api/v1/`, the admin gRPC service
    /// (`isobar.admin.v1.Admin`), `/debug/xds`, `/debug/status`, `/debug/dag`.
    pub debug: Router,
}

impl OpsRouters {
    pub fn new(stats: Arc<XdsStats>, state: Arc<ControllerState>, cache: Arc<XdsCache>) -> Self {
        let metrics = Arc::new(Metrics::new(
            Arc::clone(&stats),
            Arc::clone(&state),
            Arc::clone(&cache),
        ));
        let ops = Ops {
            stats,
            state,
            cache,
            metrics,
        };
        let admin = crate::admin::service::router(ops.admin());
        OpsRouters {
            main: Router::new()
                .route("/healthz", get(probes::healthz))
                .route("/readyz", get(probes::readyz))
                .route("/metrics", get(metrics::handler))
                .with_state(ops.clone()),
            debug: Router::new()
                .route("/debug/xds", get(debug::xds))
                .route("/debug/status", get(debug::status))
                .route("/debug/dag", get(debug::dag))
                .route("/", get(page::index))
                .route("/app.js", get(page::script))
                .route("/style.css", get(page::style))
                .route("/dag.svg", get(page::dag_svg))
                .route("/api/v1/snapshot", get(page::snapshot))
                .route("/api/v1/events", get(page::events))
                .with_state(ops)
                .merge(admin),
        }
    }
}

/// Serves `router` on `listener`. It never returns `Ok` by itself: the caller supervises it.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
