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

/// The background request loop, running: what it sent so far, a wait for more, and its report.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<LoadReport>,
}

impl Load {
    /// Sends `GET /` with `Host: host` to `addr` every `bounds.period` until [`Load::finish`] or a
    /// bound. A failure is anything but a 200 from echo backend `backend`.
    pub fn start(
        addr: SocketAddr,
        host: String,
        backend: &'static str,
        bounds: LoadBounds,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(
            addr,
            host,
            backend,
            Arc::clone(&stop),
            Arc::clone(&sent),
            bounds,
        ));
        Load { stop, sent, task }
    }

    /// The requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `at_least` requests were sent in all, or the loop stopped at one of its bounds
    /// (what it saw then is [`Load::finish`]'s to tell); an error after `timeout`.
    pub async fn wait_sent(
        &self,
        at_least: usize,
        timeout: Duration,
        what: &str,
    ) -> isobar_harness::Result<()> {
        isobar_harness::wait_for_async(timeout, what, || async {
            Ok((self.sent() >= at_least || self.task.is_finished()).then_some(()))
        })
        .await
    }

    /// Stops the loop; what it saw.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the load task")
    }
}

impl LoadReport {
    /// Fails the test if any request failed `during` (what happened meanwhile), with the first
    /// failures and `context` (log tails). A failure names the test's line, not this one.
    #[track_caller]
    pub fn assert_none_failed(&self, during: &str, context: &str) {
        assert_eq!(
            self.failed, 0,
            "{} of {} requests failed {during}; first: {:#?}\n{context}",
            self.failed, self.sent, self.first_failures
        );
    }
}

/// The loop itself: counts sent requests in `sent` as it goes.
async fn run(
    addr: SocketAddr,
    host: String,
    backend: &'static str,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    bounds: LoadBounds,
) -> LoadReport {
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
}
