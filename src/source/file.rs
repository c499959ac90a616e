//! The file source: a directory of Kubernetes YAML (multi-document files), re-read when it changes.
//!
//! A file that does not parse is reported by name and line and the objects it held last time it parsed
//! stay in force, so a half-saved edit never takes routes away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pipeline::Signal;
use crate::source::Change;

use crate::store::{KubeObject, ParseOutcome, Snapshot};
use crate::{Error, Result};

/// Parses one file's text into objects. Documents of kinds isobar doesn't act on are skipped.
pub fn parse_manifests(file: &str, text: &str) -> Result<Vec<KubeObject>> {
    let mut objects = Vec::new();
    for (start_line, document) in split_documents(text) {
        let value: serde_json::Value = match serde_yaml_ng::from_str(document) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map_or(0, |l| l.line().saturating_sub(1));
                return Err(Error::Manifest {
                    file: file.to_string(),
                    line: start_line + line,
                    message: e.to_string(),
                });
            }
        };
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(Error::Manifest {
                file: file.to_string(),
                line: start_line,
                message: "document is not a mapping (a Kubernetes object)".to_string(),
            });
        }
        if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
            for item in value
                .get("items")
                .and_then(|i| i.as_array())
                .into_iter()
                .flatten()
            {
                objects.extend(interpret(file, start_line, item.clone())?);
            }
            continue;
        }
        objects.extend(interpret(file, start_line, value)?);
    }
    Ok(objects)
}

fn interpret(file: &str, line: usize, value: serde_json::Value) -> Result<Option<KubeObject>> {
    match KubeObject::from_value(value) {
        Ok(o) => Ok(Some(o)),
        Err(ParseOutcome::Ignored { api_version, kind }) => {
            tracing::debug!(
                file,
                line,
                api_version,
                kind,
                "skipping a kind isobar does not act on"
            );
            Ok(None)
        }
        Err(ParseOutcome::Invalid(message)) => Err(Error::Manifest {
            file: file.to_string(),
            line,
            message,
        }),
    }
}

/// Splits a YAML stream at `---` lines; yields each document with its 1-based first line.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = index + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out
}

/// The manifest files under `dir`, recursively, sorted; hidden files (editor swap files) are skipped.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A directory of manifests, and what each file held the last time it parsed.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, ParsedFile>,
}

/// A file's text and the objects it parsed into. A file whose text is unchanged is not parsed again
/// and gives the same (shared) objects, so the incremental build sees them unchanged.
#[derive(Debug, Clone)]
struct ParsedFile {
    text: String,
    objects: Vec<KubeObject>,
}

/// The outcome of reading the directory.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Files that did not parse (their previous objects were kept).
    pub errors: Vec<Error>,
}

impl ManifestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ManifestDir {
            dir: dir.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every file, parsing only those whose text changed. An unreadable directory is an error;
    /// a bad file is reported in [`Loaded::errors`] and its last good objects are used.
    pub fn load(&mut self) -> Result<Loaded> {
        let paths = manifest_files(&self.dir)?;
        let mut errors = Vec::new();
        let mut current = BTreeMap::new();
        for path in paths {
            let previous = self.files.remove(&path);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(Error::io(&path, e));
                    current.extend(previous.map(|p| (path, p)));
                    continue;
                }
            };
            if let Some(unchanged) = previous.as_ref().filter(|p| p.text == text) {
                current.insert(path, unchanged.clone());
                continue;
            }
            match parse_manifests(&path.display().to_string(), &text) {
                Ok(objects) => {
                    current.insert(path, ParsedFile { text, objects });
                }
                Err(e) => {
                    errors.push(e);
                    current.extend(previous.map(|p| (path, p)));
                }
            }
        }
        self.files = current;
        let mut snapshot = Snapshot::default();
        for file in self.files.values() {
            for object in &file.objects {
                snapshot.insert(object.clone());
            }
        }
        Ok(Loaded { snapshot, errors })
    }
}

/// Watches `dir` and signals a routing change for every event in it (the builder coalesces them:
/// whatever arrives during a load is taken by the next). The returned watcher must be kept alive.
pub fn watch_dir(dir: &Path, signal: Arc<Signal>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            signal.change(Change::Routing, std::time::Instant::now());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ignored\n";

    #[test]
    fn multi_document_files_parse_and_unknown_kinds_are_skipped() {
        let objects = parse_manifests("x.yaml", GOOD).unwrap();
        assert_eq!(objects.len(), 1);
        assert!(matches!(objects[0], KubeObject::Service(_)));
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let text =
            format!("{GOOD}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n");
        let err = parse_manifests("bad.yaml", &text).unwrap_err();
        let Error::Manifest { file, line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(file, "bad.yaml");
        assert!((16..=18).contains(line), "line {line}: {err}");
    }

    #[test]
    fn schema_errors_name_the_document() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Service\nspec:\n  ports: 7\n";
        let err = parse_manifests("s.yaml", text).unwrap_err();
        let Error::Manifest { line, .. } = err else {
            panic!()
        };
        assert_eq!(line, 6);
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        let mut manifests = ManifestDir::new(dir.path());
        let loaded = manifests.load().unwrap();
        assert!(loaded.errors.is_empty());
        assert_eq!(loaded.snapshot.services.len(), 1);
        std::fs::write(dir.path().join("a.yaml"), "kind: [").unwrap();
        let loaded = manifests.load().unwrap();
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!(loaded.snapshot.services.len(), 1);
    }
}
