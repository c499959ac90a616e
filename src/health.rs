//! Whether the controller is alive and ready: what `/healthz` and `/readyz` answer.
//!
//! *Alive* means no supervised task has died ([`crate::supervisor`]). *Ready* means the first complete
//! configuration (kube source: every kind listed; file source: the first load) has been built and
//! placed in the xDS cache, so an Envoy connecting now gets all routes, not a partial set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The controller's health, shared by the pipeline, the supervisor and the ops server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// The first fault. Later ones are consequences of the shutdown it starts, so they don't replace it.
    fault: OnceLock<String>,
}

/// Why `/readyz` says no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("no configuration built yet (waiting for the source's first complete read)")]
    NoConfiguration,
    #[error("unhealthy: {0}")]
    Unhealthy(String),
}

impl Health {
    /// Records that a complete configuration is in the xDS cache. Returns `true` the first time.
    pub fn mark_ready(&self) -> bool {
        !self.ready.swap(true, Ordering::AcqRel)
    }

    /// Records a fault that makes this process unfit to serve; only the first one is kept.
    pub fn record_fault(&self, reason: impl Into<String>) {
        let _ = self.fault.set(reason.into());
    }

    /// `Err(reason)` once a fault was recorded.
    pub fn liveness(&self) -> Result<(), &str> {
        match self.fault.get() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Ready: a configuration was built and nothing has died since.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if let Err(reason) = self.liveness() {
            return Err(NotReady::Unhealthy(reason.to_string()));
        }
        if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(NotReady::NoConfiguration)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_the_first_configuration_and_while_alive() {
        let health = Health::default();
        assert_eq!(health.readiness(), Err(NotReady::NoConfiguration));
        assert!(health.mark_ready());
        assert!(
            !health.mark_ready(),
            "only the first call is the transition"
        );
        assert_eq!(health.readiness(), Ok(()));
        assert_eq!(health.liveness(), Ok(()));
        health.record_fault("task `pipeline` died: boom");
        health.record_fault("a later consequence");
        assert_eq!(health.liveness(), Err("task `pipeline` died: boom"));
        assert_eq!(
            health.readiness(),
            Err(NotReady::Unhealthy("task `pipeline` died: boom".into()))
        );
    }
}
