//! A background request loop that checks every answer: the tests that restart or stop isobar
//! under traffic use it to prove that no request fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobar_harness::http::{send, RequestSpec};

/// How often the loop sends, and the bounds that stop it even if nobody does.
#[derive(Debug, Clone, Copy)]
pub struct LoadBounds {
    pub period: Duration,
    pub max_time: Duration,
    pub max_requests: usize,
}

/// What the background request loop saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: usize,
    pub failed: usize,
    pub first_failures: Vec<String>,
}

/// Sends `GET /` with `Host: host` to `addr` every `bounds.period` until `stop` is set or a bound
/// is reached, counting sent requests in `sent` as it goes. A failure is anything but a 200 from
/// echo backend `backend`.
pub fn start_load(
    addr: SocketAddr,
    host: String,
    backend: &'static str,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    bounds: LoadBounds,
) -> tokio::task::JoinHandle<LoadReport> {
    tokio::spawn(async move {
        let mut report = LoadReport::default();
        let started = Instant::now();
        let mut tick = tokio::time::interval(bounds.period);
        while !stop.load(Ordering::Relaxed)
            && started.elapsed() < bounds.max_time
            && report.sent < bounds.max_requests
        {
            tick.tick().await;
            let r = send(&RequestSpec::get(addr, &host, "/")).await;
            report.sent += 1;
            sent.fetch_add(1, Ordering::Relaxed);
            let failure = match r {
                Ok(r) if r.status == 200 && r.backend().as_deref() == Some(backend) => None,
                Ok(r) => Some(format!("status {}: {}", r.status, r.text())),
                Err(e) => Some(e.to_string()),
            };
            if let Some(f) = failure {
                report.failed += 1;
                if report.first_failures.len() < 5 {
                    report
                        .first_failures
                        .push(format!("{:?}: {f}", started.elapsed()));
                }
            }
        }
        report
    })
}
