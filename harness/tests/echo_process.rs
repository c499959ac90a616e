//! The echo backend as a separate process, queried over HTTP.

use std::path::Path;

use isobar_harness::echo::EchoBackend;
use isobar_harness::http::{send, RequestSpec};

const ECHO_BIN: &str = env!("CARGO_BIN_EXE_isobar-harness-echo");

#[tokio::test]
async fn echo_process_reports_its_address_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let backend = EchoBackend::start(Path::new(ECHO_BIN), "kuard", dir.path()).unwrap();
    assert_eq!(backend.addr().ip().to_string(), "127.0.0.1");
    let resp = send(&RequestSpec::get(
        backend.addr(),
        "kuard.local",
        "/hello?a=b",
    ))
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.backend().as_deref(), Some("kuard"));
    assert_eq!(resp.json()["host"], "kuard.local");
    assert_eq!(resp.json()["query"], "a=b");

    let pid = backend.process().pid();
    drop(backend);
    // SAFETY: signal 0 only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(pid as libc::pid_t, 0) },
        0,
        "echo process survived drop"
    );
}

#[test]
fn a_bad_argument_fails_loudly_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let missing = EchoBackend::start(Path::new("/nonexistent/echo"), "x", dir.path()).unwrap_err();
    assert!(missing.to_string().contains("is needed"), "{missing}");
}
