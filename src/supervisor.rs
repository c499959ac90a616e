//! The controller's long-running tasks, supervised.
//!
//! Every task (the pipeline, each watcher, the status writer, the HTTP servers, the xDS server) must run
//! until shutdown. One that ends early — it returned, failed or panicked — would leave isobar serving a
//! configuration nobody updates any more, in silence. So the first death is logged at error level,
//! recorded in [`Health`] (`/healthz` answers 503 with the reason), and handed to
//! `controller::run`, which stops and returns it as an error: the process exits non-zero and the
//! orchestrator restarts it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, Id, JoinError, JoinHandle, JoinSet};

use crate::health::Health;

/// What a supervised task returns. It should never return before shutdown: `Ok(())` is a death too.
pub type TaskResult = Result<(), TaskError>;

/// Why a supervised task stopped.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Isobar(#[from] crate::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The task can't go on: its input closed, a lock is poisoned, ...
    #[error("{0}")]
    Stopped(&'static str),
}

/// A task that ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task `{task}` died: {reason}")]
pub struct TaskDeath {
    pub task: String,
    pub reason: String,
}

/// Tells a graceful task to stop; resolves once shutdown begins.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Completes when the supervisor stops (or is dropped).
    pub async fn stopped(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The set of supervised tasks. Dropping it aborts them all.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<TaskResult>,
    names: HashMap<Id, String>,
    handles: BTreeMap<String, AbortHandle>,
    /// Tasks that stop by themselves on the stop signal, and get a grace period to do so.
    graceful: HashSet<Id>,
    stop: watch::Sender<bool>,
    health: Arc<Health>,
}

impl Supervisor {
    /// Deaths are recorded in `health`.
    pub fn new(health: Arc<Health>) -> Self {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            handles: BTreeMap::new(),
            graceful: HashSet::new(),
            stop: watch::Sender::new(false),
            health,
        }
    }

    /// Runs `task` under supervision; it is aborted at shutdown.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = TaskResult> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        let name = name.into();
        self.names.insert(handle.id(), name.clone());
        self.handles.insert(name, handle);
    }

    /// Supervises a task spawned elsewhere, whose owner hands out only its `JoinHandle`. Aborting it (or
    /// stopping the supervisor) aborts that task too.
    pub fn adopt(&mut self, name: impl Into<String>, handle: JoinHandle<()>) {
        /// Aborts the adopted task when the supervising one goes, so it never outlives supervision.
        struct AbortOnDrop(JoinHandle<()>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut adopted = AbortOnDrop(handle);
        self.spawn(name, async move {
            match (&mut adopted.0).await {
                Ok(()) => Err(TaskError::Stopped("it returned")),
                Err(e) if e.is_panic() => Err(TaskError::Stopped("it panicked")),
                Err(_) => Err(TaskError::Stopped("it was aborted")),
            }
        });
    }

    /// Runs the task `make(stop)` builds under supervision; at shutdown it gets the stop signal and a
    /// grace period to finish (e.g. the xDS server completing in-flight responses) before it is aborted.
    pub fn spawn_graceful<F>(&mut self, name: impl Into<String>, make: impl FnOnce(StopSignal) -> F)
    where
        F: Future<Output = TaskResult> + Send + 'static,
    {
        let name = name.into();
        self.spawn(name.clone(), make(StopSignal(self.stop.subscribe())));
        if let Some(handle) = self.handles.get(&name) {
            self.graceful.insert(handle.id());
        }
    }

    /// Waits for the first task to end, logs it at error level and records it in [`Health`]. Pending
    /// forever while every task runs (or when there is none).
    pub async fn first_death(&mut self) -> TaskDeath {
        let Some(ended) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let id = match &ended {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        // Already joined: `stop` must not wait for it.
        self.graceful.remove(&id);
        let death = match ended {
            Ok((id, result)) => TaskDeath {
                task: self.name_of(id),
                reason: match result {
                    Ok(()) => "it returned".to_string(),
                    Err(e) => e.to_string(),
                },
            },
            Err(e) => TaskDeath {
                task: self.name_of(e.id()),
                reason: join_error_reason(e),
            },
        };
        tracing::error!(task = %death.task, reason = %death.reason,
            "a supervised task died; isobar stops rather than serve a configuration nobody updates");
        self.health.record_fault(death.to_string());
        death
    }

    /// Signals graceful tasks to stop, gives them `grace` to finish, then aborts everything and waits
    /// for the aborts to complete.
    pub async fn stop(mut self, grace: Duration) {
        self.stop.send_replace(true);
        let drained = tokio::time::timeout(grace, async {
            while !self.graceful.is_empty() {
                let Some(ended) = self.tasks.join_next_with_id().await else {
                    break;
                };
                let id = match &ended {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                if let Ok((_, Err(e))) = &ended {
                    tracing::warn!(task = %self.name_of(id), error = %e, "task failed while stopping");
                }
                self.graceful.remove(&id);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "graceful shutdown took too long; aborting the remaining tasks"
            );
        }
        self.tasks.shutdown().await;
    }

    /// TEST HOOK: the abort handle of the task named `name`, so a test can kill it as if it had crashed
    /// and check that the death is noticed. Production code never aborts a single task.
    #[doc(hidden)]
    pub fn abort_handle(&self, name: &str) -> Option<AbortHandle> {
        self.handles.get(name).cloned()
    }

    /// The names of the tasks started so far.
    pub fn task_names(&self) -> impl Iterator<Item = &str> {
        self.handles.keys().map(String::as_str)
    }

    fn name_of(&self, id: Id) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("unnamed task {id}"))
    }
}

fn join_error_reason(e: JoinError) -> String {
    if e.is_cancelled() {
        return "it was aborted".to_string();
    }
    match e.try_into_panic() {
        Ok(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_string());
            format!("it panicked: {message}")
        }
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> (Supervisor, Arc<Health>) {
        let health = Arc::new(Health::default());
        (Supervisor::new(Arc::clone(&health)), health)
    }

    #[tokio::test]
    async fn a_task_that_fails_is_a_death_with_its_reason() {
        let (mut s, health) = supervisor();
        s.spawn("forever", std::future::pending());
        s.spawn("pipeline", async {
            Err(TaskError::Stopped("its change feed closed"))
        });
        let death = s.first_death().await;
        assert_eq!(
            death,
            TaskDeath {
                task: "pipeline".into(),
                reason: "its change feed closed".into()
            }
        );
        assert_eq!(
            health.liveness(),
            Err("task `pipeline` died: its change feed closed")
        );
    }

    #[tokio::test]
    async fn returning_panicking_and_being_aborted_are_deaths_too() {
        let (mut s, _) = supervisor();
        s.spawn("returns", async { Ok(()) });
        assert_eq!(s.first_death().await.reason, "it returned");

        s.spawn("panics", async { panic!("lost it") });
        assert_eq!(s.first_death().await.reason, "it panicked: lost it");

        s.spawn("aborted", std::future::pending());
        s.abort_handle("aborted").expect("task registered").abort();
        let death = s.first_death().await;
        assert_eq!(
            (death.task.as_str(), death.reason.as_str()),
            ("aborted", "it was aborted")
        );
    }

    #[tokio::test]
    async fn no_death_while_tasks_run() {
        let (mut s, health) = supervisor();
        s.spawn("forever", std::future::pending());
        let waited = tokio::time::timeout(Duration::from_millis(50), s.first_death()).await;
        assert!(waited.is_err(), "a running task is not a death: {waited:?}");
        assert_eq!(health.liveness(), Ok(()));
    }

    #[tokio::test]
    async fn stop_lets_graceful_tasks_finish_and_aborts_the_rest() {
        let (mut s, health) = supervisor();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        s.spawn_graceful("server", |stop| async move {
            stop.stopped().await;
            let _ = done_tx.send(());
            Ok(())
        });
        s.spawn("forever", std::future::pending());
        tokio::time::timeout(Duration::from_secs(10), s.stop(Duration::from_secs(5)))
            .await
            .expect("stop returns once the graceful task finished");
        done_rx
            .await
            .expect("the graceful task saw the stop signal");
        assert_eq!(health.liveness(), Ok(()), "stopping is not a death");
    }

    #[tokio::test]
    async fn a_dead_graceful_task_does_not_hold_up_stop() {
        let (mut s, _) = supervisor();
        s.spawn_graceful("server", |_stop| async {
            Err(TaskError::Stopped("its listener failed"))
        });
        s.spawn("forever", std::future::pending());
        assert_eq!(s.first_death().await.task, "server");
        // The grace period is long: only not waiting for the dead task makes this return in time.
        tokio::time::timeout(Duration::from_secs(10), s.stop(Duration::from_secs(3600)))
            .await
            .expect("stop does not wait for a task that already ended");
    }

    #[tokio::test]
    async fn an_adopted_task_is_supervised_and_dies_with_its_supervisor() {
        let (mut s, _) = supervisor();
        s.adopt(
            "panics elsewhere",
            tokio::spawn(async { panic!("lost it") }),
        );
        let death = s.first_death().await;
        assert_eq!(
            (death.task.as_str(), death.reason.as_str()),
            ("panics elsewhere", "it panicked")
        );

        let (alive_tx, alive_rx) = tokio::sync::oneshot::channel::<()>();
        s.adopt(
            "runs elsewhere",
            tokio::spawn(async move {
                let _alive = alive_tx;
                std::future::pending::<()>().await
            }),
        );
        s.stop(Duration::from_secs(5)).await;
        // The sender drops only when the adopted task itself is gone.
        tokio::time::timeout(Duration::from_secs(10), alive_rx)
            .await
            .expect("the adopted task is aborted with its supervisor")
            .expect_err("it never sends");
    }
}
