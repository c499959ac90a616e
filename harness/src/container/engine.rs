//! Containers run through testcontainers on a runtime of their own, so the harness's synchronous
//! process API (status, signals, stop) works for them from any thread, a test's current-thread
//! runtime included.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use testcontainers::bollard::query_parameters::WaitContainerOptions;
use testcontainers::core::{AccessMode, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::image::{engine_error, ImageRef};
use crate::error::{Error, Result};

/// What to run: `image` with `command` (the image's entrypoint, if any, comes first), its
/// environment and mounts.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: ImageRef,
    /// Replaces the image's entrypoint (one-shot containers only: [`super::run_once`]).
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<BindMount>,
    /// The user to run as; `None` keeps the image's.
    pub user: Option<String>,
}

/// A host directory or file the container sees at `container_path`.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

impl BindMount {
    /// `path`, read-write, at its own path.
    pub fn same_path(path: PathBuf) -> Self {
        BindMount {
            container_path: path.display().to_string(),
            host_path: path,
            read_only: false,
        }
    }
}

struct Engine {
    handle: tokio::runtime::Handle,
    containers: Mutex<HashMap<String, ContainerAsync<GenericImage>>>,
}

fn engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("harness-containers".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => {
                            let _ = tx.send(Ok(rt.handle().clone()));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            let handle = rx.recv().map_err(|e| e.to_string())??;
            Ok(Engine {
                handle,
                containers: Mutex::new(HashMap::new()),
            })
        })
        .as_ref()
        .map_err(|e| {
            Error::io(
                format!("starting the container runtime thread: {e}"),
                std::io::ErrorKind::Other.into(),
            )
        })
}

/// Runs `f` on the engine's runtime and waits for its result.
pub fn block<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let engine = engine()?;
    let (tx, rx) = std::sync::mpsc::channel();
    engine.handle.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| {
        Error::io(
            "the container runtime thread ended",
            std::io::ErrorKind::BrokenPipe.into(),
        )
    })
}

/// A started container: its id and the host pid of its main process.
#[derive(Debug)]
pub struct RunningContainer {
    pub id: String,
    /// The exit code once the engine reported the container's end (a waiter follows it: podman
    /// reports an ended container as `stopped`, which the Docker API's inspect types lack).
    exit: Arc<Mutex<Option<i64>>>,
    /// The main process's pid as the host sees it (at start; see [`RunningContainer::start_again`]).
    pub host_pid: AtomicU32,
}

impl RunningContainer {
    /// Creates and starts a container of `spec`, its stdout and stderr appended to the two files.
    pub fn start(
        spec: ContainerSpec,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> Result<Self> {
        block(async move {
            let mut request = GenericImage::new(&spec.image.name, &spec.image.tag)
                .with_cmd(spec.command.clone())
                // Host networking: the container uses the host's loopback addresses and ports as a
                // process would (and needs no CNI setup on podman).
                .with_host_config_modifier(|hc| hc.network_mode = Some("host".into()))
                .with_startup_timeout(Duration::from_secs(60));
            for m in &spec.mounts {
                let mount = Mount::bind_mount(m.host_path.display().to_string(), &m.container_path);
                request = request.with_mount(if m.read_only {
                    mount.with_access_mode(AccessMode::ReadOnly)
                } else {
                    mount
                });
            }
            for (k, v) in &spec.env {
                request = request.with_env_var(k, v);
            }
            if let Some(user) = &spec.user {
                request = request.with_user(user);
            }
            let container = request
                .start()
                .await
                .map_err(|e| engine_error(format!("starting {}", spec.image), e))?;
            let id = container.id().to_string();
            follow(container.stdout(true), stdout);
            follow(container.stderr(true), stderr);
            let host_pid = host_pid(&id).await?;
            let engine = engine()?;
            engine
                .containers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), container);
            let exit = Arc::new(Mutex::new(None));
            wait_for_exit(id.clone(), Arc::clone(&exit));
            Ok(RunningContainer {
                id,
                exit,
                host_pid: AtomicU32::new(host_pid),
            })
        })?
    }

    /// The exit status once the container has stopped, `None` while it runs.
    pub fn status(&self) -> Option<ExitStatus> {
        let code = (*self.exit.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(ExitStatus::from_raw(((code & 0xff) as i32) << 8))
    }

    /// Stops the container: SIGTERM, `grace` to exit, then SIGKILL.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        let id = self.id.clone();
        block(async move {
            let container = take(&id)?;
            let r = container
                .stop_with_timeout(Some(grace.as_secs().max(1) as i32))
                .await
                .map_err(|e| engine_error(format!("stopping {id}"), e));
            put(id, container)?;
            r
        })?
    }

    /// Starts the stopped container again (a container restart, as a kubelet does it), its output
    /// appended to the two files; returns the new main process's host pid.
    pub fn start_again(&self, stdout: std::fs::File, stderr: std::fs::File) -> Result<u32> {
        let id = self.id.clone();
        *self.exit.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let exit = Arc::clone(&self.exit);
        let pid = block(async move {
            let container = take(&id)?;
            let started = container
                .start()
                .await
                .map_err(|e| engine_error(format!("starting {id} again"), e));
            if started.is_ok() {
                follow(container.stdout(true), stdout);
                follow(container.stderr(true), stderr);
            }
            put(id.clone(), container)?;
            started?;
            wait_for_exit(id.clone(), exit);
            host_pid(&id).await
        })??;
        self.host_pid.store(pid, Ordering::Relaxed);
        Ok(pid)
    }

    /// Sends `sig` to the container's main process.
    pub fn signal(&self, sig: i32) {
        if self.status().is_none() {
            // SAFETY: kill(2) on the host pid of a container this harness started and that runs.
            unsafe {
                libc::kill(self.host_pid.load(Ordering::Relaxed) as libc::pid_t, sig);
            }
        }
    }

    /// Removes the container (stopping it first if it runs).
    pub fn remove(&self) -> Result<()> {
        let id = self.id.clone();
        block(async move {
            let container = take(&id)?;
            container
                .rm()
                .await
                .map_err(|e| engine_error(format!("removing {id}"), e))
        })?
    }
}

fn take(id: &str) -> Result<ContainerAsync<GenericImage>> {
    engine()?
        .containers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id)
        .ok_or_else(|| {
            Error::io(
                format!("container {id} is gone"),
                std::io::ErrorKind::NotFound.into(),
            )
        })
}

fn put(id: String, container: ContainerAsync<GenericImage>) -> Result<()> {
    engine()?
        .containers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, container);
    Ok(())
}

fn docker() -> Result<testcontainers::bollard::Docker> {
    testcontainers::bollard::Docker::connect_with_defaults()
        .map_err(|e| engine_error("connecting".into(), e))
}

async fn host_pid(id: &str) -> Result<u32> {
    let state = docker()?
        .inspect_container(id, None)
        .await
        .map_err(|e| engine_error(format!("inspecting {id}"), e))?
        .state;
    let pid = state.and_then(|s| s.pid).unwrap_or(0);
    u32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| engine_error(format!("container {id}"), "has no running process"))
}

/// Waits for container `id` to end; its exit code.
pub(super) async fn exit_code(docker: &testcontainers::bollard::Docker, id: &str) -> Result<i64> {
    use futures_util::StreamExt;
    match docker
        .wait_container(id, None::<WaitContainerOptions>)
        .next()
        .await
    {
        Some(Ok(r)) => Ok(r.status_code),
        // A non-zero exit arrives as this error.
        Some(Err(testcontainers::bollard::errors::Error::DockerContainerWaitError {
            code,
            ..
        })) => Ok(code),
        Some(Err(e)) => Err(engine_error(format!("waiting for {id}"), e)),
        None => Err(engine_error(format!("waiting for {id}"), "no answer")),
    }
}

/// Records the container's exit code in `exit` when the engine reports its end.
fn wait_for_exit(id: String, exit: Arc<Mutex<Option<i64>>>) {
    tokio::spawn(async move {
        let Ok(docker) = docker() else {
            return;
        };
        // The engine gone: the container is as good as ended.
        let code = exit_code(&docker, &id).await.unwrap_or(-1);
        *exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
    });
}

/// Copies a log stream into a file until the container stops.
fn follow(mut stream: std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>, file: std::fs::File) {
    tokio::spawn(async move {
        let mut file = tokio::fs::File::from_std(file);
        let _ = tokio::io::copy_buf(&mut stream, &mut file).await;
    });
}
