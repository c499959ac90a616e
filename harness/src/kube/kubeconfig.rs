//! Kubeconfig files: writing one for a server and credentials, and reading the parts of an
//! existing one a test client needs (server, CA, client certificate or token).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How a client authenticates to the API server.
#[derive(Clone, PartialEq, Eq)]
pub enum KubeAuth {
    /// A TLS client certificate and its key (PEM).
    ClientCert {
        /// Certificate chain PEM.
        cert_pem: String,
        /// Private key PEM.
        key_pem: String,
    },
    /// A bearer token (e.g. a service account's).
    Token(String),
}

impl std::fmt::Debug for KubeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys or tokens in test output.
        match self {
            KubeAuth::ClientCert { .. } => f.write_str("KubeAuth::ClientCert(..)"),
            KubeAuth::Token(_) => f.write_str("KubeAuth::Token(..)"),
        }
    }
}

/// Where the API server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeEndpoint {
    /// `https://host:port`.
    pub server_url: String,
    /// The CA certificate(s) the server's certificate is verified against (PEM).
    pub ca_pem: String,
    /// The credentials.
    pub auth: KubeAuth,
}

impl KubeEndpoint {
    /// Renders a kubeconfig with everything embedded (`*-data` fields, or `token`).
    pub fn to_kubeconfig(&self) -> String {
        let user = match &self.auth {
            KubeAuth::ClientCert { cert_pem, key_pem } => format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                B64.encode(cert_pem),
                B64.encode(key_pem)
            ),
            KubeAuth::Token(t) => format!("    token: {t}\n"),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: isobar-test\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: isobar-test\n  user:\n{user}contexts:\n- name: isobar-test\n  context:\n    cluster: isobar-test\n    user: isobar-test\ncurrent-context: isobar-test\n",
            self.server_url,
            B64.encode(&self.ca_pem),
        )
    }

    /// Writes [`KubeEndpoint::to_kubeconfig`] to `path` (mode 0600: it holds credentials).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        super::pki::write(path, &self.to_kubeconfig(), true)
    }

    /// Reads the current context of the kubeconfig at `path`. Relative file references are
    /// resolved against the kubeconfig's directory, as kubectl does.
    pub fn from_kubeconfig_file(path: &Path) -> Result<KubeEndpoint> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading kubeconfig {}", path.display()), e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_kubeconfig_str(&text, base)
            .map_err(|e| Error::Invalid(format!("kubeconfig {}: {e}", path.display())))
    }

    /// Parses a kubeconfig; relative paths in it are resolved against `base`.
    pub fn from_kubeconfig_str(text: &str, base: &Path) -> Result<KubeEndpoint> {
        let cfg: Kubeconfig = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::Invalid(format!("parsing YAML: {e}")))?;
        let ctx_name = cfg
            .current_context
            .clone()
            .or_else(|| cfg.contexts.first().map(|c| c.name.clone()))
            .ok_or_else(|| Error::Invalid("no current-context and no contexts".into()))?;
        let ctx = find(&cfg.contexts, &ctx_name, "context")?;
        let cluster = find(&cfg.clusters, &ctx.cluster, "cluster")?;
        let user = find(&cfg.users, &ctx.user, "user")?;
        let ca_pem = data_or_file(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
            base,
        )?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "cluster {:?} has no certificate-authority(-data): the harness always verifies the server",
                ctx.cluster
            ))
        })?;
        let cert = data_or_file(
            &user.client_certificate_data,
            &user.client_certificate,
            base,
        )?;
        let key = data_or_file(&user.client_key_data, &user.client_key, base)?;
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(read_text(&resolve(base, f))?.trim().to_string()),
            (None, None) => None,
        };
        let auth = match (cert, key, token) {
            (Some(cert_pem), Some(key_pem), _) => KubeAuth::ClientCert { cert_pem, key_pem },
            (_, _, Some(t)) => KubeAuth::Token(t),
            _ => {
                return Err(Error::Invalid(format!(
                    "user {:?} has neither a client certificate and key nor a token (exec and auth-provider plugins are not supported)",
                    ctx.user
                )))
            }
        };
        Ok(KubeEndpoint {
            server_url: cluster.server.trim_end_matches('/').to_string(),
            ca_pem,
            auth,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    // `cluster:`, `user:` or `context:`, depending on the list.
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    inner: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate: Option<String>,
    client_certificate_data: Option<String>,
    client_key: Option<String>,
    client_key_data: Option<String>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

fn find<'a, T>(items: &'a [Named<T>], name: &str, what: &str) -> Result<&'a T> {
    items
        .iter()
        .find(|i| i.name == name)
        .map(|i| &i.inner)
        .ok_or_else(|| Error::Invalid(format!("no {what} named {name:?}")))
}

fn data_or_file(
    data: &Option<String>,
    file: &Option<String>,
    base: &Path,
) -> Result<Option<String>> {
    if let Some(d) = data {
        let bytes = B64
            .decode(d.trim())
            .map_err(|e| Error::Invalid(format!("bad base64 in a *-data field: {e}")))?;
        return String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Invalid("a *-data field is not PEM text".into()));
    }
    file.as_ref()
        .map(|f| read_text(&resolve(base, f)))
        .transpose()
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(auth: KubeAuth) -> KubeEndpoint {
        KubeEndpoint {
            server_url: "https://127.0.0.1:6443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
            auth,
        }
    }

    #[test]
    fn round_trips_certificates_and_tokens() {
        for auth in [
            KubeAuth::ClientCert {
                cert_pem: "CERT".into(),
                key_pem: "KEY".into(),
            },
            KubeAuth::Token("abc.def".into()),
        ] {
            let e = endpoint(auth);
            let back =
                KubeEndpoint::from_kubeconfig_str(&e.to_kubeconfig(), Path::new("/")).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn resolves_relative_files_and_the_current_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "CA-PEM").unwrap();
        std::fs::write(dir.path().join("tok"), "secret-token\n").unwrap();
        let text = "clusters:\n- name: a\n  cluster: {server: 'https://x:1', certificate-authority: ca.crt}\n- name: b\n  cluster: {server: 'https://y:2/', certificate-authority: ca.crt}\nusers:\n- name: u\n  user: {tokenFile: tok}\ncontexts:\n- name: ca\n  context: {cluster: a, user: u}\n- name: cb\n  context: {cluster: b, user: u}\ncurrent-context: cb\n";
        let e = KubeEndpoint::from_kubeconfig_str(text, dir.path()).unwrap();
        assert_eq!(e.server_url, "https://y:2");
        assert_eq!(e.ca_pem, "CA-PEM");
        assert_eq!(e.auth, KubeAuth::Token("secret-token".into()));
    }

    #[test]
    fn a_user_without_credentials_is_an_error() {
        let text = "clusters:\n- name: a\n  cluster: {server: 'https://x:1', certificate-authority-data: Q0E=}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\n";
        let err = KubeEndpoint::from_kubeconfig_str(text, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
    }
}
