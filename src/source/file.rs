//! The file source: a directory of Kubernetes YAML (multi-document files), re-read when it changes.
//!
//! A file that does not parse is reported by name and line and the objects it held last time it parsed
//! stay in force, so a half-saved edit never takes routes away.

use std::path::{Path, PathBuf};

use crate::store::{KubeObject, ParseOutcome};
use crate::{Error, Result};

/// Parses one file's text into objects. Documents of kinds isobar doesn't act on are skipped.
pub fn parse_manifests(file: &str, text: &str) -> Result<Vec<KubeObject>> {
    let mut objects = Vec::new();
    for (start_line, document) in split_documents(text) {
        objects.extend(parse_document(file, start_line, document)?);
    }
    Ok(objects)
}

/// Parses one document of a file (it starts at line `start_line`): no object (empty, or a kind
/// isobar doesn't act on), one, or a `List`'s items.
pub fn parse_document(file: &str, start_line: usize, document: &str) -> Result<Vec<KubeObject>> {
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
        return Ok(Vec::new());
    }
    if !value.is_object() {
        return Err(Error::Manifest {
            file: file.to_string(),
            line: start_line,
            message: "document is not a mapping (a Kubernetes object)".to_string(),
        });
    }
    if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
        let mut objects = Vec::new();
        for item in value
            .get("items")
            .and_then(|i| i.as_array())
            .into_iter()
            .flatten()
        {
            objects.extend(interpret(file, start_line, item.clone())?);
        }
        return Ok(objects);
    }
    Ok(interpret(file, start_line, value)?.into_iter().collect())
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
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
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

/// Whether a file of this name is a manifest (by extension).
pub fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

/// Whether the name is hidden (an editor's swap file, a hidden directory): skipped.
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
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
            if is_hidden(&name) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_manifest_name(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
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
}
