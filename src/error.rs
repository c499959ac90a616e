//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong inside the isobar library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Certgen(#[from] rcgen::Error),
    #[error("refusing to overwrite existing files (use --overwrite): {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    WouldOverwrite(Vec<PathBuf>),
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{file}:{line}: {message}")]
    Manifest {
        file: String,
        line: usize,
        message: String,
    },
    #[error("serialising JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("watching files: {0}")]
    Notify(#[from] notify::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error("{0}")]
    Config(String),
    /// A supervised task ended before shutdown (see [`crate::supervisor`]).
    #[error(transparent)]
    TaskDied(#[from] crate::supervisor::TaskDeath),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
