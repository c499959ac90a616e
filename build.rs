//! Compiles isobar's own protos (`proto/`) with protox, so no system `protoc` is needed, and writes
//! the descriptor sets the JSON renderer reads: isobar's admin API and, taken from the envoy-types
//! package in the dependency graph (not copied into this repository), Envoy's API.

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

/// The FileDescriptorSet envoy-types ships beside its generated code, found through cargo metadata
/// (the package may live in a registry cache, a vendor directory or a git checkout).
fn envoy_descriptor_set() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO")?;
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let target = std::env::var("TARGET")?;
    // Offline and for this platform only: every package it lists is already on disk for this build.
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &target, "--manifest-path"])
        .arg(Path::new(&manifest).join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let manifest_path = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types is not in the dependency graph")?;
    let path = Path::new(manifest_path)
        .parent()
        .ok_or("envoy-types has no package directory")?
        .join("src/generated/types.bin");
    println!("cargo:rerun-if-changed={}", path.display());
    if !path.is_file() {
        return Err(format!("{} is missing", path.display()).into());
    }
    Ok(path)
}
