//! Leader election over a Lease (`coordination.k8s.io/v1`), by kube-lease-manager.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// Where the Lease lives.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
}

/// How long a lease lasts without renewal, and how long before expiry it is renewed.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

/// Gives up the Lease on shutdown, so another replica takes over at once instead of after the lease
/// expires.
#[derive(Debug)]
pub struct LeaderHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderHandle {
    /// Releases the Lease (if held) and waits, at most a few seconds, for that to be done.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// A channel that says whether this process is the leader. Keeps trying (with a pause) when the Lease
/// can't be reached, so a follower takes over when the leader goes away.
pub fn elect(client: Client, election: LeaderElection) -> (watch::Receiver<bool>, LeaderHandle) {
    let (tx, rx) = watch::channel(false);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
                .with_namespace(&election.namespace)
                .with_identity(&election.identity)
                .with_duration(LEASE_SECONDS)
                .with_grace(GRACE_SECONDS)
                .build()
                .await;
            let manager = match manager {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %election.lease_name, namespace = %election.namespace,
                        "leader election unavailable; statuses are not written until it works");
                    tx.send_if_modified(|l| std::mem::replace(l, false));
                    tokio::time::sleep(Duration::from_secs(GRACE_SECONDS)).await;
                    continue;
                }
            };
            let (mut state, task) = manager.watch().await;
            let mut stopping = false;
            loop {
                let leading = *state.borrow_and_update();
                if tx.send_if_modified(|l| std::mem::replace(l, leading) != leading) {
                    tracing::info!(leading, identity = %election.identity, "leadership changed");
                }
                tokio::select! {
                    changed = state.changed() => if changed.is_err() { break },
                    _ = stopped.changed() => { stopping = true; break }
                }
            }
            // Closing the channel makes the manager release the Lease and end.
            drop(state);
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "leader election stopped");
            }
            if stopping {
                tx.send_if_modified(|l| std::mem::replace(l, false));
                tracing::info!(identity = %election.identity, "leadership released");
                return;
            }
            tx.send_if_modified(|l| std::mem::replace(l, false));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (rx, LeaderHandle { stop, task })
}
