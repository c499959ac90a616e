//! One watcher per kind, feeding the shared snapshot.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::compare::same;
use crate::source::Change;
use crate::store::{ObjectKey, Snapshot};
use crate::supervisor::{TaskError, TaskResult};

/// How a kind maps into the snapshot.
pub struct KindSpec<T> {
    /// The resource's plural name, for logs and sync tracking.
    pub name: &'static str,
    /// What a change to one of these objects means.
    pub change: Change,
    /// A kind whose absence (CRD not installed) is not an error.
    pub optional: bool,
    pub map: fn(&mut Snapshot) -> &mut crate::store::Objects<T>,
    pub key: fn(&T) -> ObjectKey,
}

const POISONED: TaskError = TaskError::Stopped("the snapshot lock is poisoned");

/// Watches one kind for as long as the task runs, with kube-rs' backoff on errors. Returns only when it
/// can't go on (the pipeline stopped taking changes, the snapshot lock is poisoned): a death for the
/// supervisor.
pub async fn watch_kind<W, T>(
    api: Api<W>,
    spec: KindSpec<T>,
    snapshot: Arc<Mutex<Snapshot>>,
    changes: mpsc::UnboundedSender<Change>,
    synced: Arc<watch::Sender<BTreeSet<&'static str>>>,
    convert: fn(W) -> T,
) -> TaskResult
where
    W: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Serialize + Clone + Send + 'static,
{
    let stream = watcher(api, spec.name);
    futures::pin_mut!(stream);
    let mut relist: Option<crate::store::Objects<T>> = None;
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => {
                // `Init` comes before the list is read, so only later events show a recovery.
                if failing && !matches!(e, Event::Init) {
                    tracing::info!(kind = spec.name, "watch recovered");
                    failing = false;
                }
                e
            }
            Err(e) => {
                let not_found = matches!(&e, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404);
                if not_found && spec.optional {
                    mark_synced(&synced, spec.name);
                }
                if !failing {
                    if not_found && spec.optional {
                        tracing::info!(
                            kind = spec.name,
                            "not served (CRD not installed?); retrying in the background"
                        );
                    } else {
                        tracing::error!(kind = spec.name, error = %e, "watch failed; the last known objects stay in force while it retries");
                    }
                }
                failing = true;
                continue;
            }
        };
        let change = match event {
            Event::Init => {
                relist = Some(crate::store::Objects::new());
                None
            }
            Event::InitApply(object) => {
                let object = convert(object);
                if let Some(buffer) = relist.as_mut() {
                    buffer.insert((spec.key)(&object), Arc::new(object));
                }
                None
            }
            Event::InitDone => {
                let fresh = relist.take().unwrap_or_default();
                let changed = {
                    let mut s = snapshot.lock().map_err(|_| POISONED)?;
                    let map = (spec.map)(&mut s);
                    let changed = map.len() != fresh.len()
                        || map
                            .iter()
                            .zip(fresh.iter())
                            .any(|((ka, a), (kb, b))| ka != kb || !same(&**a, &**b));
                    *map = fresh;
                    changed
                };
                mark_synced(&synced, spec.name);
                Some(if changed {
                    spec.change
                } else {
                    Change::StatusOnly
                })
            }
            Event::Apply(object) => {
                let object = convert(object);
                let key = (spec.key)(&object);
                let mut s = snapshot.lock().map_err(|_| POISONED)?;
                let map = (spec.map)(&mut s);
                let changed = map.get(&key).is_none_or(|old| !same(&**old, &object));
                map.insert(key, Arc::new(object));
                Some(if changed {
                    spec.change
                } else {
                    Change::StatusOnly
                })
            }
            Event::Delete(object) => {
                let object = convert(object);
                let mut s = snapshot.lock().map_err(|_| POISONED)?;
                (spec.map)(&mut s)
                    .remove(&(spec.key)(&object))
                    .map(|_| spec.change)
            }
        };
        if let Some(change) = change {
            if changes.send(change).is_err() {
                return Err(TaskError::Stopped("the pipeline stopped taking changes"));
            }
        }
    }
    Err(TaskError::Stopped("the watch stream ended"))
}

fn watcher<W>(
    api: Api<W>,
    name: &'static str,
) -> impl futures::Stream<Item = Result<Event<W>, watcher::Error>> + Send
where
    W: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    tracing::debug!(kind = name, "starting watch");
    // Lists are served from the API server's watch cache (`resourceVersion=0`), as client-go's
    // informers list: a quorum read pages every object (10,000 Secrets: 20 pages) through etcd
    // before the first build, and what a list returns is followed by the watch anyway.
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(strip::<W>)
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops, on arrival, what isobar never reads and what often outweighs the rest of an object:
/// managedFields (a field-ownership record per writer, isobar's own status writes among them) and
/// kubectl's last-applied copy of the object.
fn strip<W: kube::Resource>(object: &mut W) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

fn mark_synced(synced: &watch::Sender<BTreeSet<&'static str>>, name: &'static str) {
    synced.send_if_modified(|s| s.insert(name));
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    #[test]
    fn managed_fields_and_the_last_applied_copy_are_dropped_and_the_rest_kept() {
        let mut ingress = Ingress {
            metadata: ObjectMeta {
                name: Some("web".into()),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_string(), "{\"huge\": true}".to_string()),
                        (
                            "kubernetes.io/ingress.class".to_string(),
                            "contour".to_string(),
                        ),
                    ]
                    .into(),
                ),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        strip(&mut ingress);
        assert_eq!(ingress.metadata.managed_fields, None);
        let annotations = ingress.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["kubernetes.io/ingress.class"]
        );
        assert_eq!(ingress.metadata.name.as_deref(), Some("web"));
    }
}
