//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while driving real processes and sockets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed; `context` says what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A component the harness needs is not installed; `how` says how to get it.
    #[error("{what} is needed: {how}")]
    MissingComponent {
        /// The missing component.
        what: String,
        /// How to install it or which environment variable overrides it.
        how: String,
    },
    /// A condition did not become true before its deadline.
    #[error("timed out after {after:?} waiting for {what}{}", fmt_log(log))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        after: Duration,
        /// Tail of the relevant process log (may be empty).
        log: String,
    },
    /// A child process exited (or failed) when it should not have.
    #[error("{what} failed: {detail}{}", fmt_log(log))]
    Process {
        /// The process or command.
        what: String,
        /// Exit status or other detail.
        detail: String,
        /// Tail of its log or its stderr.
        log: String,
    },
    /// A provisioned binary failed verification.
    #[error("{path}: {detail}")]
    Verification {
        /// The binary or file.
        path: PathBuf,
        /// What did not match.
        detail: String,
    },
    /// TLS configuration or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// An HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// An xDS/gRPC exchange failed (connection refused, stream ended, gRPC status…).
    #[error("xDS: {0}")]
    Xds(String),
    /// The Kubernetes API server answered a request with an error status.
    #[error("Kubernetes API: {method} {path} -> {status}: {message}")]
    KubeApi {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The HTTP status code (e.g. 403, 404, 409).
        status: u16,
        /// The `message` of the server's `Status` object, or the body.
        message: String,
    },
    /// JSON could not be parsed.
    #[error("JSON ({context}): {source}")]
    Json {
        /// What was being parsed.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// An argument or a response had an unexpected shape.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn fmt_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- log tail ---\n{log}")
    }
}

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Attaches a process log tail to a `Timeout` or `Process` error; other errors are returned as is.
    pub fn with_log(self, tail: String) -> Self {
        match self {
            Error::Timeout { what, after, .. } => Error::Timeout {
                what,
                after,
                log: tail,
            },
            Error::Process { what, detail, .. } => Error::Process {
                what,
                detail,
                log: tail,
            },
            other => other,
        }
    }
}

/// Renders an error with its whole `source()` chain: tonic and hyper hide the cause
/// (e.g. the TLS alert) behind a generic top-level message.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
