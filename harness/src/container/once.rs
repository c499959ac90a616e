//! One-shot containers (`isobar --version`, `certgen`, `bootstrap`): created, started, waited for and
//! removed through the Docker API directly. testcontainers inspects a container right after starting
//! it, and podman reports a container that already exited as `stopped`, a state the Docker API's
//! types don't have.

use futures_util::StreamExt;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::models::{ContainerCreateBody, HostConfig};
use testcontainers::bollard::query_parameters::{
    CreateContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};

use super::engine::{exit_code, ContainerSpec};
use super::image::engine_error;
use crate::error::Result;

/// What a one-shot container did.
#[derive(Debug, Clone)]
pub struct Finished {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `spec` to its end (host network, its mounts) and removes it.
pub async fn run_once(spec: &ContainerSpec) -> Result<Finished> {
    let docker = testcontainers::bollard::Docker::connect_with_defaults()
        .map_err(|e| engine_error("connecting".into(), e))?;
    let binds = spec
        .mounts
        .iter()
        .map(|m| {
            let mode = if m.read_only { "ro" } else { "rw" };
            format!("{}:{}:{mode}", m.host_path.display(), m.container_path)
        })
        .collect();
    let body = ContainerCreateBody {
        image: Some(spec.image.to_string()),
        cmd: Some(spec.command.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: spec.user.clone(),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            binds: Some(binds),
            ..Default::default()
        }),
        ..Default::default()
    };
    let image = spec.image.to_string();
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| engine_error(format!("creating a container of {image}"), e))?;
    let id = created.id;
    let result = async {
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| engine_error(format!("starting {id}"), e))?;
        let exit_code = exit_code(&docker, &id).await?;
        let mut logs = docker.logs(
            &id,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        );
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(item) = logs.next().await {
            match item {
                Ok(LogOutput::StdOut { message }) => {
                    stdout.push_str(&String::from_utf8_lossy(&message))
                }
                Ok(LogOutput::StdErr { message }) => {
                    stderr.push_str(&String::from_utf8_lossy(&message))
                }
                Ok(_) => {}
                Err(e) => return Err(engine_error(format!("reading the logs of {id}"), e)),
            }
        }
        Ok(Finished {
            exit_code,
            stdout,
            stderr,
        })
    }
    .await;
    let _ = docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    result
}
