//! Polling a condition with a deadline: the only way the harness synchronises with processes.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Pause between polls; short because every poll is cheap (a file stat or a loopback request).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, or fails with a [`Error::Timeout`] naming `what`.
///
/// Blocking: use [`wait_for_async`] inside async code.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    try_wait_for(timeout, what, || Ok(check()))
}

/// Like [`wait_for`], but `check` may fail early (e.g. because the awaited process exited).
pub fn try_wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(timeout_error(what, timeout));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Async version of [`try_wait_for`]: `check` is an async closure that may fail early.
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        // A single check may hang (e.g. a connect to a stuck peer): bound it by the time left.
        let left = timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(timeout_error(what, timeout)),
        }
        if start.elapsed() >= timeout {
            return Err(timeout_error(what, timeout));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn timeout_error(what: &str, after: Duration) -> Error {
    Error::Timeout {
        what: what.to_string(),
        after,
        log: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_condition_holds() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(5), "counter to reach 3", || {
            n += 1;
            (n >= 3).then_some(n)
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out_with_a_message_naming_the_condition() {
        let err = wait_for(Duration::from_millis(50), "the moon to turn blue", || {
            None::<()>
        })
        .unwrap_err()
        .with_log("last line of the log".to_string());
        let msg = err.to_string();
        assert!(msg.contains("the moon to turn blue"), "{msg}");
        assert!(msg.contains("timed out"), "{msg}");
        assert!(msg.contains("last line of the log"), "{msg}");
    }

    #[test]
    fn early_failure_is_returned_as_is() {
        let err = try_wait_for(Duration::from_secs(5), "x", || {
            Err::<Option<()>, _>(Error::Invalid("process exited".into()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "process exited");
    }

    #[tokio::test]
    async fn async_version_times_out() {
        let err = wait_for_async(Duration::from_millis(50), "nothing", || async {
            Ok(None::<()>)
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
