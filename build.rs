//! Compiles isobar's own protos (`proto/`) with protox, so no system `protoc` is needed, and writes
//! the descriptor sets the JSON renderer reads: isobar's admin API and Envoy's, the latter taken
//! from the envoy-types package in the dependency graph (not copied into this repository).

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    let admin = protox::compile(["isobar/admin/v1/admin.proto"], ["proto"])?;
    let admin_fds = out.join("admin_descriptor.bin");
    std::fs::write(&admin_fds, prost::Message::encode_to_vec(&admin))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(admin)?;
    std::fs::copy(envoy_descriptor_set()?, out.join("envoy_descriptor.bin"))?;
    Ok(())
}

/// The FileDescriptorSet envoy-types ships beside its generated code (`src/generated/types.bin`).
/// Found in cargo's registry sources by the version Cargo.lock pins (where a plain build downloaded
/// it), else through `cargo metadata` (vendored or git sources).
fn envoy_descriptor_set() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let found = registry_source().or_else(|| metadata_source().ok().flatten());
    let dir = found.ok_or(
        "can't find the envoy-types package's sources (looked in $CARGO_HOME/registry/src and asked `cargo metadata`)",
    )?;
    let path = dir.join("src/generated/types.bin");
    println!("cargo:rerun-if-changed={}", path.display());
    if !path.is_file() {
        return Err(format!("{} is missing", path.display()).into());
    }
    Ok(path)
}

/// `$CARGO_HOME/registry/src/*/envoy-types-<locked version>`.
fn registry_source() -> Option<PathBuf> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    let lock = std::fs::read_to_string(manifest.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|l| l.trim() == "name = \"envoy-types\"")?;
    let version = lines
        .next()?
        .trim()
        .strip_prefix("version = \"")?
        .strip_suffix('"')?
        .to_string();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let sources = std::fs::read_dir(cargo_home.join("registry/src")).ok()?;
    sources
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("envoy-types-{version}")))
        .find(|p| p.join("Cargo.toml").is_file())
}

/// The envoy-types package directory as `cargo metadata` reports it (offline: it only reads).
fn metadata_source() -> Result<Option<PathBuf>, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO")?;
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let target = std::env::var("TARGET")?;
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &target, "--manifest-path"])
        .arg(Path::new(&manifest).join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Ok(None);
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(Path::to_path_buf)))
}
