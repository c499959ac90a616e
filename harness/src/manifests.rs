//! Small Kubernetes YAML fixtures for the file source.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// YAML-quotes a string (a JSON string is a valid YAML double-quoted scalar).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A selector-less Service plus its Endpoints: one address 127.0.0.1 at `backend_port`,
/// the endpoint port named like the service port so isobar can pair them.
pub fn service_and_endpoints_yaml(
    namespace: &str,
    name: &str,
    port_name: &str,
    service_port: u16,
    backend_port: u16,
) -> String {
    let (ns, name, port_name) = (q(namespace), q(name), q(port_name));
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  ports:
  - name: {port_name}
    port: {service_port}
    protocol: TCP
    targetPort: {backend_port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
  namespace: {ns}
subsets:
- addresses:
  - ip: \"127.0.0.1\"
  ports:
  - name: {port_name}
    port: {backend_port}
    protocol: TCP
"
    )
}

/// Writes `yaml` to `dir/file_name` atomically (temp file + rename), so a watching
/// file source never reads half a file.
pub fn write_manifest(dir: &Path, file_name: &str, yaml: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(file_name);
    // A dot-prefixed temp name: file sources skip hidden files.
    let tmp = dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, yaml).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_endpoints_are_paired_by_port_name() {
        let y = service_and_endpoints_yaml("default", "kuard", "http", 80, 43210);
        assert!(y.contains("kind: Service"));
        assert!(y.contains("kind: Endpoints"));
        assert!(y.contains("  - name: \"http\"\n    port: 80\n"));
        assert!(y.contains("  - name: \"http\"\n    port: 43210\n"));
        assert!(y.contains("ip: \"127.0.0.1\""));
        assert!(!y.contains("selector"));
        let dir = tempfile::tempdir().unwrap();
        let p = write_manifest(dir.path(), "svc.yaml", &y).unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), y);
    }
}
