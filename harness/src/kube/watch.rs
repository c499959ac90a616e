//! Watching a collection on the API server, read as its events arrive (one JSON object per line),
//! and waiting through a watch until every object of a collection is in a given state.
//!
//! A watch costs the API server one encoding per event; polling a large collection costs it an
//! encoding of every object per poll, on the cores the work being timed needs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::Value;

use super::client::{json_of, KubeClient};
use super::transport::{RawResponse, StreamingResponse};
use crate::error::{Error, Result};

/// One event of a watch.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: String,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

/// The events of one watch, in order; the connection closes when this is dropped.
pub struct WatchEvents {
    response: StreamingResponse,
    /// Bytes received after the last complete line.
    pending: Vec<u8>,
    path: String,
    /// The `resourceVersion` to watch on from: the last event's, or the one the watch started at.
    last_version: String,
}

impl WatchEvents {
    /// The next event; `None` once the API server ends the watch.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                if line.trim_ascii().is_empty() {
                    continue;
                }
                return self.event(&line).map(Some);
            }
            match self.response.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(Error::Http(format!("watch {}: {e}", self.path))),
                None if self.pending.trim_ascii().is_empty() => return Ok(None),
                None => {
                    let last = std::mem::take(&mut self.pending);
                    return self.event(&last).map(Some);
                }
            }
        }
    }

    /// The `resourceVersion` of the last event's object (bookmarks included), or the one the watch
    /// started at.
    pub fn last_version(&self) -> &str {
        &self.last_version
    }

    fn event(&mut self, line: &[u8]) -> Result<WatchEvent> {
        let mut event: Value = serde_json::from_slice(line).map_err(|e| Error::Json {
            context: format!("watch {}", self.path),
            source: e,
        })?;
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        if kind == "ERROR" {
            return Err(Error::Http(format!(
                "watch {}: {}",
                self.path, event["object"]["message"]
            )));
        }
        if let Some(version) = event["object"]["metadata"]["resourceVersion"].as_str() {
            self.last_version = version.to_string();
        }
        Ok(WatchEvent {
            kind,
            object: event["object"].take(),
        })
    }
}

/// When the objects of a collection reached a state, as seen by [`CollectionWatch::wait_for_all`].
#[derive(Debug, Clone, Copy)]
pub struct AllReached {
    /// From `since` to the first object seen in the state.
    pub first: Duration,
    /// From `since` to the moment `expected` objects were in it.
    pub all: Duration,
}

impl KubeClient {
    /// Watches `collection` (a path without a query) from `resource_version`.
    pub async fn watch(&self, collection: &str, resource_version: &str) -> Result<WatchEvents> {
        let path = format!("{collection}?watch=1&resourceVersion={resource_version}");
        let mut response = self.transport().stream(&path).await?;
        if response.status != 200 {
            // `json_of` turns the refusal into the API server's message.
            let body = (&mut response.body)
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let status = response.status;
            json_of("GET", &path, RawResponse { status, body })?;
            return Err(Error::Http(format!(
                "watch {path}: answered {status}, not 200"
            )));
        }
        Ok(WatchEvents {
            response,
            pending: Vec::new(),
            path,
            last_version: resource_version.to_string(),
        })
    }

    /// Lists `collection` from the API server's watch cache and opens a watch from there, to
    /// wait until enough of its objects are in the state `reached` tells (`Ok(true)`; an `Err`
    /// names an object in a state that fails the wait).
    pub async fn watch_collection<F>(
        &self,
        collection: &str,
        reached: F,
    ) -> Result<CollectionWatch<F>>
    where
        F: Fn(&Value) -> std::result::Result<bool, String>,
    {
        let list = self
            .get_json(&format!("{collection}?resourceVersion=0"))
            .await?
            .ok_or_else(|| Error::Invalid(format!("{collection} is not served")))?;
        let version = list["metadata"]["resourceVersion"]
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("a list of {collection} without a version")))?;
        let mut progress = Progress::new(reached);
        for object in list["items"].as_array().into_iter().flatten() {
            progress.note(object, false)?;
        }
        Ok(CollectionWatch {
            client: self.clone(),
            collection: collection.to_string(),
            events: self.watch(collection, version).await?,
            progress,
        })
    }
}

/// A collection listed and watched, for [`CollectionWatch::wait_for_all`].
pub struct CollectionWatch<F> {
    client: KubeClient,
    collection: String,
    events: WatchEvents,
    progress: Progress<F>,
}

impl<F: Fn(&Value) -> std::result::Result<bool, String>> CollectionWatch<F> {
    /// Reads the watch until `expected` objects are in the state, timing it from `since` as the
    /// events arrive.
    pub async fn wait_for_all(
        mut self,
        expected: usize,
        since: Instant,
        timeout: Duration,
    ) -> Result<AllReached> {
        let deadline = since + timeout;
        loop {
            if self.progress.done.len() >= expected {
                let now = Instant::now();
                let first = self.progress.first.unwrap_or(now);
                return Ok(AllReached {
                    first: first.saturating_duration_since(since),
                    all: now.saturating_duration_since(since),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(event) = tokio::time::timeout(left, self.events.next()).await else {
                return Err(Error::Timeout {
                    what: format!(
                        "{expected} objects of {} in the state awaited ({} so far)",
                        self.collection,
                        self.progress.done.len()
                    ),
                    after: timeout,
                    log: String::new(),
                });
            };
            match event? {
                Some(e) if e.kind == "BOOKMARK" => {}
                Some(e) => self.progress.note(&e.object, e.kind == "DELETED")?,
                None => {
                    // The API server ends a watch after a while: go on from the last version seen.
                    let version = self.events.last_version().to_string();
                    self.events = self.client.watch(&self.collection, &version).await?;
                }
            }
        }
    }
}

/// The objects in the awaited state (`namespace/name`), and when the first was seen in it.
struct Progress<F> {
    reached: F,
    done: HashSet<String>,
    first: Option<Instant>,
}

impl<F: Fn(&Value) -> std::result::Result<bool, String>> Progress<F> {
    fn new(reached: F) -> Self {
        Progress {
            reached,
            done: HashSet::new(),
            first: None,
        }
    }

    fn note(&mut self, object: &Value, deleted: bool) -> Result<()> {
        let meta = &object["metadata"];
        let key = format!(
            "{}/{}",
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default()
        );
        if !deleted && (self.reached)(object).map_err(Error::Invalid)? {
            self.first.get_or_insert_with(Instant::now);
            self.done.insert(key);
        } else {
            self.done.remove(&key);
        }
        Ok(())
    }
}
