//! A supervised task that dies is noticed: `/healthz` answers 503 with the reason, and the controller
//! stops with an error naming the task (so `isobar serve` exits non-zero) instead of serving a
//! configuration nobody updates. Tasks are killed through `abort_handle`, a hook that exists for tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use isobar::controller::{Controller, ControllerState, ServeConfig, SourceConfig, PIPELINE_TASK};
use isobar::dag::DagOptions;
use isobar::ops::OpsRouters;
use isobar::supervisor::{Supervisor, TaskDeath};
use isobar::xds::cache::XdsCache;
use isobar::xds::stats::XdsStats;
use isobar::xds::translate::ListenerConfig;
use isobar_harness::http::{send, RequestSpec, Response};
use isobar_harness::wait_for_async;

/// A bound on how long noticing a death may take; generous, it is not a synchronisation.
const NOTICE: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn get(addr: SocketAddr, path: &str) -> isobar_harness::Result<Response> {
    send(&RequestSpec::get(addr, &addr.to_string(), path)).await
}

async fn start_controller(manifests: &std::path::Path) -> Controller {
    Controller::start(ServeConfig {
        source: SourceConfig::Manifests(manifests.to_path_buf()),
        xds_address: loopback(),
        tls: None,
        tls_reload_interval: Duration::from_secs(2),
        xds_client_sans: Default::default(),
        xds_limits: Default::default(),
        listeners: ListenerConfig {
            http_address: "127.0.0.1".into(),
            http_port: 18080,
            https_address: "127.0.0.1".into(),
            https_port: 18443,
        },
        dag: DagOptions::default(),
        http_address: loopback(),
        debug_http_address: loopback(),
    })
    .await
    .expect("the controller starts")
}

#[tokio::test]
async fn each_dead_task_stops_the_controller_with_an_error_naming_it() {
    let manifests = tempfile::tempdir().unwrap();
    let probe = start_controller(manifests.path()).await;
    let mut tasks = probe.task_names();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            "HTTP server",
            "debug HTTP server",
            "heap trimmer",
            PIPELINE_TASK,
            "xDS server"
        ],
        "the file source's supervised tasks"
    );
    drop(probe);

    for task in tasks {
        let controller = start_controller(manifests.path()).await;
        let http = controller.addresses().http;
        wait_for_async(NOTICE, "/readyz to answer 200", || async {
            Ok(get(http, "/readyz")
                .await
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

        controller
            .abort_handle(&task)
            .unwrap_or_else(|| panic!("no task {task}"))
            .abort();
        let outcome = tokio::time::timeout(NOTICE, controller.run_until(std::future::pending()))
            .await
            .unwrap_or_else(|_| {
                panic!("killing {task} went unnoticed: the controller kept running")
            });
        match outcome {
            Err(isobar::Error::TaskDied(death)) => assert_eq!(
                death,
                TaskDeath {
                    task: task.clone(),
                    reason: "it was aborted".into()
                }
            ),
            other => panic!("killing {task}: expected TaskDied, got {other:?}"),
        }
        // Nothing keeps serving after the controller stopped.
        assert!(
            get(http, "/healthz").await.is_err(),
            "{task}: the HTTP server outlived the controller"
        );
    }
}

#[tokio::test]
async fn healthz_fails_with_the_reason_once_a_supervised_task_died() {
    let state = Arc::new(ControllerState::default());
    let routers = OpsRouters::new(
        Arc::new(XdsStats::default()),
        Arc::clone(&state),
        Arc::new(XdsCache::new()),
    );
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(isobar::ops::serve(listener, routers.main));

    let mut supervisor = Supervisor::new(Arc::clone(&state.health));
    supervisor.spawn("some watcher", std::future::pending());
    state.health.mark_ready();
    let healthy = get(addr, "/healthz").await.unwrap();
    assert_eq!((healthy.status, healthy.text()), (200, "ok\n".to_string()));
    assert_eq!(get(addr, "/readyz").await.unwrap().status, 200);

    supervisor
        .abort_handle("some watcher")
        .expect("task registered")
        .abort();
    let death = tokio::time::timeout(NOTICE, supervisor.first_death())
        .await
        .expect("the death is noticed");
    assert_eq!(death.task, "some watcher");

    let unhealthy = get(addr, "/healthz").await.unwrap();
    assert_eq!(unhealthy.status, 503, "{}", unhealthy.text());
    assert_eq!(
        unhealthy.text(),
        "task `some watcher` died: it was aborted\n"
    );
    let unready = get(addr, "/readyz").await.unwrap();
    assert_eq!(unready.status, 503, "{}", unready.text());
    assert!(
        unready.text().contains("some watcher"),
        "{}",
        unready.text()
    );
    server.abort();
}
