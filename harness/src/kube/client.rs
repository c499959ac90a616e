//! A small kubectl-like client for tests (independent of isobar's own Kubernetes code):
//! server-side apply of YAML, get, delete, CRD readiness and service-account tokens.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::kubeconfig::{KubeAuth, KubeEndpoint};
use super::resources::{discovery_path, known_resource, ResourceType};
use super::transport::{RawResponse, Transport};
use crate::error::{Error, Result};
use crate::wait::wait_for_async;

/// The field manager of every apply the harness makes.
pub const FIELD_MANAGER: &str = "isobar-e2e";

/// Bound on one request (connect, TLS, response).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Lifetime asked for service-account tokens (the API server's minimum is 10 minutes).
const TOKEN_SECONDS: u64 = 24 * 3600;

/// An API-server client: each request on a fresh HTTPS connection, CA pinned.
#[derive(Debug, Clone)]
pub struct KubeClient {
    endpoint: KubeEndpoint,
    transport: Transport,
}

impl KubeClient {
    /// A client for `endpoint` (server URL, CA, credentials).
    pub fn new(endpoint: KubeEndpoint) -> Result<KubeClient> {
        let transport = Transport::new(&endpoint, REQUEST_TIMEOUT)?;
        Ok(KubeClient {
            endpoint,
            transport,
        })
    }

    /// A client for the current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> Result<KubeClient> {
        Self::new(KubeEndpoint::from_kubeconfig_file(path)?)
    }

    /// The same server and CA with other credentials.
    pub fn with_auth(&self, auth: KubeAuth) -> Result<KubeClient> {
        Self::new(KubeEndpoint {
            auth,
            ..self.endpoint.clone()
        })
    }

    /// Server URL, CA and credentials.
    pub fn endpoint(&self) -> &KubeEndpoint {
        &self.endpoint
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends a request and returns status and body text, whatever the status.
    pub async fn raw(&self, method: &str, path: &str) -> Result<(u16, String)> {
        let r = self.transport.send(method, path, None, Vec::new()).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// GETs `path` as JSON; `None` on 404, [`Error::KubeApi`] on other errors.
    pub async fn get_json(&self, path: &str) -> Result<Option<Value>> {
        let r = self.transport.send("GET", path, None, Vec::new()).await?;
        if r.status == 404 {
            return Ok(None);
        }
        json_of("GET", path, r).map(Some)
    }

    /// POSTs a JSON body to `path` and returns the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let r = self
            .transport
            .send(
                "POST",
                path,
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await?;
        json_of("POST", path, r)
    }

    /// The REST resource of `kind` in `api_version`: from the built-in table, else by discovery.
    pub async fn resource_type(&self, api_version: &str, kind: &str) -> Result<ResourceType> {
        if let Some(r) = known_resource(api_version, kind) {
            return Ok(r);
        }
        let path = discovery_path(api_version);
        let list = self.get_json(&path).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "the API server does not serve {api_version} (GET {path} -> 404)"
            ))
        })?;
        let list: ApiResourceList = serde_json::from_value(list).map_err(|e| Error::Json {
            context: format!("discovery {path}"),
            source: e,
        })?;
        list.resources
            .into_iter()
            .find(|r| r.kind == kind && !r.name.contains('/'))
            .map(|r| ResourceType {
                api_version: api_version.to_string(),
                plural: r.name,
                namespaced: r.namespaced,
            })
            .ok_or_else(|| Error::Invalid(format!("{api_version} has no kind {kind}")))
    }

    /// Server-side applies one object (`fieldManager=isobar-e2e`, `force=true`) and returns it
    /// as stored. A namespaced object without `metadata.namespace` goes to `default`.
    /// Service ports without `protocol` get `TCP` (see [`fill_apply_defaults`]).
    pub async fn apply(&self, object: &Value) -> Result<Value> {
        let id = ObjectId::of(object)?;
        let mut object = object.clone();
        fill_apply_defaults(&mut object);
        let rt = self.resource_type(&id.api_version, &id.kind).await?;
        let path = format!(
            "{}?fieldManager={FIELD_MANAGER}&force=true",
            rt.object_path(id.namespace.as_deref(), &id.name)
        );
        let r = self
            .transport
            .send(
                "PATCH",
                &path,
                Some("application/apply-patch+yaml"),
                object.to_string().into_bytes(),
            )
            .await?;
        json_of("PATCH", &path, r)
    }

    /// Applies every document of a multi-document YAML string, in order.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>> {
        let mut applied = Vec::new();
        for object in parse_yaml_documents(yaml)? {
            applied.push(self.apply(&object).await?);
        }
        Ok(applied)
    }

    /// JSON-merge-patches an object, or its `subresource` (e.g. `status`), and returns the
    /// result (the object as stored).
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Value,
    ) -> Result<Value> {
        let mut path = self
            .resource_type(api_version, kind)
            .await?
            .object_path(namespace, name);
        if let Some(sub) = subresource {
            path = format!("{path}/{sub}");
        }
        let r = self
            .transport
            .send(
                "PATCH",
                &path,
                Some("application/merge-patch+json"),
                patch.to_string().into_bytes(),
            )
            .await?;
        json_of("PATCH", &path, r)
    }

    /// Deletes an object; `Ok(false)` if it did not exist.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let path = self
            .resource_type(api_version, kind)
            .await?
            .object_path(namespace, name);
        let r = self
            .transport
            .send("DELETE", &path, None, Vec::new())
            .await?;
        if r.status == 404 {
            return Ok(false);
        }
        json_of("DELETE", &path, r).map(|_| true)
    }

    /// Reads an object by kind and name; `None` if it does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let rt = self.resource_type(api_version, kind).await?;
        self.get_json(&rt.object_path(namespace, name)).await
    }

    /// Waits until the CRD `name` (e.g. `ingressroutes.contour.heptio.com`) is `Established`.
    pub async fn wait_crd_established(&self, name: &str, timeout: Duration) -> Result<()> {
        let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
        wait_for_async(
            timeout,
            &format!("CRD {name} to be Established"),
            || async {
                let crd = self.get_json(&path).await?;
                Ok(crd.filter(is_established).map(|_| ()))
            },
        )
        .await
    }

    /// A token for service account `namespace/name` from the TokenRequest API, creating the
    /// account first if it does not exist (the namespace must exist).
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        self.apply(&json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        }))
        .await?;
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token");
        let answer = self
            .post_json(
                &path,
                &json!({
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": TOKEN_SECONDS},
                }),
            )
            .await?;
        answer["status"]["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Invalid(format!("TokenRequest answer has no status.token: {answer}"))
            })
    }
}

/// Fills in defaults that server-side apply needs before the API server would default them:
/// kube-apiserver 1.20 rejects (500, "associative list with keys has an element that omits key
/// field \"protocol\"") a Service port without `protocol`, which is part of the list's key.
/// `TCP` is the server's own default, so the stored object is the same.
pub fn fill_apply_defaults(object: &mut Value) {
    if object["apiVersion"] != "v1" || object["kind"] != "Service" {
        return;
    }
    if let Some(ports) = object
        .get_mut("spec")
        .and_then(|s| s.get_mut("ports"))
        .and_then(Value::as_array_mut)
    {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert_with(|| json!("TCP"));
        }
    }
}

/// Splits a multi-document YAML string into objects (empty documents are skipped).
pub fn parse_yaml_documents(yaml: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc).map_err(|e| Error::Invalid(format!("YAML: {e}")))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// apiVersion, kind, namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectId {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl ObjectId {
    fn of(object: &Value) -> Result<ObjectId> {
        let field = |v: &Value, what: &str| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Error::Invalid(format!("object without {what}: {object}")))
        };
        Ok(ObjectId {
            api_version: field(&object["apiVersion"], "apiVersion")?,
            kind: field(&object["kind"], "kind")?,
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: field(&object["metadata"]["name"], "metadata.name")?,
        })
    }
}

#[derive(Deserialize)]
struct ApiResourceList {
    resources: Vec<ApiResource>,
}

#[derive(Deserialize)]
struct ApiResource {
    name: String,
    kind: String,
    namespaced: bool,
}

fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// The body as JSON for a 2xx status, else [`Error::KubeApi`] with the server's message.
pub(crate) fn json_of(method: &str, path: &str, r: RawResponse) -> Result<Value> {
    if !(200..300).contains(&r.status) {
        let text = String::from_utf8_lossy(&r.body);
        let message = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        return Err(Error::KubeApi {
            method: method.into(),
            path: path.into(),
            status: r.status,
            message,
        });
    }
    serde_json::from_slice(&r.body).map_err(|e| Error::Json {
        context: format!("{method} {path}"),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_yaml_and_skips_empty_documents() {
        let docs = parse_yaml_documents(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let id = ObjectId::of(&docs[1]).unwrap();
        assert_eq!(id.kind, "Service");
        assert_eq!(id.namespace.as_deref(), Some("a"));
        assert!(ObjectId::of(&json!({"kind": "Service"})).is_err());
    }

    #[test]
    fn service_ports_get_the_default_protocol() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [
            {"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        fill_apply_defaults(&mut svc);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][1]["protocol"], "UDP");
        let mut other = json!({"apiVersion": "v1", "kind": "Endpoints", "subsets": []});
        fill_apply_defaults(&mut other);
        assert_eq!(
            other,
            json!({"apiVersion": "v1", "kind": "Endpoints", "subsets": []})
        );
    }

    #[test]
    fn established_needs_the_condition_true() {
        assert!(!is_established(&json!({})));
        assert!(is_established(&json!({"status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"}]}})));
    }

    #[test]
    fn error_statuses_carry_the_server_message() {
        let r = RawResponse {
            status: 403,
            body: br#"{"kind":"Status","message":"secrets is forbidden"}"#.to_vec(),
        };
        match json_of("GET", "/api/v1/secrets", r).unwrap_err() {
            Error::KubeApi {
                status, message, ..
            } => {
                assert_eq!(status, 403);
                assert_eq!(message, "secrets is forbidden");
            }
            e => panic!("{e}"),
        }
    }
}
