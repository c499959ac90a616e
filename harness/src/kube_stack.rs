//! isobar watching a real Kubernetes API, with exactly the RBAC of `deploy/base`, plus Envoy.
//!
//! [`KubeStack::start`]: an API server (local, or the cluster of `$ISOBAR_E2E_KUBECONFIG`) →
//! `namespace.yaml`, `crds.yaml` (Established), `rbac.yaml` of `deploy/base` → a token of
//! ServiceAccount `isobar-system/isobar` in a kubeconfig → isobar (`--kubeconfig`, a fixed
//! `--ingress-status-address`) + Envoy (LIVE). Each stack gets a namespace of its own for its
//! objects. Backends are echo processes on 127.0.0.1 published as EndpointSlices (the API
//! server refuses loopback addresses in Endpoints) of selector-less Services.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::echo::EchoBackend;
use crate::envoy::UnknownFields;
use crate::error::{Error, Result};
use crate::isobar::IsobarSource;
use crate::kube::{parse_yaml_documents, KubeClient, KubeCluster, KubeClusterOptions};
use crate::stack::{Stack, StackOptions};
use crate::wait::wait_for_async;

/// How long CRDs may take to become Established.
const CRD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the deletion of a test namespace on an external cluster is awaited.
const NAMESPACE_GONE: Duration = Duration::from_secs(60);
/// The namespace and ServiceAccount of `deploy/base/rbac.yaml`.
pub const ISOBAR_NAMESPACE: &str = "isobar-system";
/// The ServiceAccount isobar runs as.
pub const ISOBAR_SERVICE_ACCOUNT: &str = "isobar";
/// isobar's default leader-election Lease name.
pub const DEFAULT_LEASE_NAME: &str = "isobar-leader";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The name of the Service port every backend Service has (port 80).
pub const SERVICE_PORT_NAME: &str = "http";

/// What a [`KubeStack`] runs.
#[derive(Debug, Clone)]
pub struct KubeStackOptions {
    /// The isobar binary.
    pub isobar_bin: PathBuf,
    /// The echo binary.
    pub echo_bin: PathBuf,
    /// The directory holding `namespace.yaml`, `crds.yaml` and `rbac.yaml`.
    pub deploy_dir: PathBuf,
    /// `--ingress-status-address` (use a name that resolves nowhere, e.g. `lb.isobar.test`).
    pub ingress_status_address: String,
    /// Further `isobar serve` arguments.
    pub isobar_args: Vec<String>,
    /// Install the pinned Gateway API CRDs before isobar starts.
    pub gateway_api: bool,
}

/// An API server, isobar (as ServiceAccount `isobar-system/isobar`) and Envoy.
///
/// Fields drop in order: Envoy and isobar, then the cluster (a local one is stopped), then the
/// kubeconfig dir. On an external cluster the stack's namespace is deleted on drop.
#[derive(Debug)]
pub struct KubeStack {
    /// isobar + Envoy.
    pub stack: Stack,
    /// The API server (and etcd) isobar watches.
    pub cluster: KubeCluster,
    namespace: String,
    slice_api_version: String,
    lease_name: String,
    isobar_kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl KubeStack {
    /// Starts everything; see the module documentation.
    pub async fn start(opts: KubeStackOptions) -> Result<KubeStack> {
        let cluster = KubeCluster::from_env_or_start(KubeClusterOptions::default()).await?;
        let admin = cluster.client().clone();
        let suffix = unique_suffix();
        let namespace = format!("e2e-{suffix}");
        let dir = tempfile::Builder::new()
            .prefix("isobar-kube-stack-")
            .tempdir()
            .map_err(|e| Error::io("creating the kube stack's dir", e))?;

        install_deploy(&admin, &opts.deploy_dir).await?;
        if opts.gateway_api {
            crate::kube::install_gateway_api_crds(&admin).await?;
        }
        let token = admin
            .service_account_token(ISOBAR_NAMESPACE, ISOBAR_SERVICE_ACCOUNT)
            .await?;
        let isobar_kubeconfig = dir.path().join("isobar.kubeconfig");
        cluster.write_kubeconfig_for_token(&isobar_kubeconfig, &token)?;
        admin
            .apply(&json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace},
            }))
            .await?;
        let slice_api_version = endpoint_slice_api_version(&admin).await?;

        // On a shared (external) cluster, every stack elects its own leader; a local cluster
        // is the stack's own and uses the deployed default.
        let lease_name = if cluster.is_external() {
            format!("{DEFAULT_LEASE_NAME}-{suffix}")
        } else {
            DEFAULT_LEASE_NAME.to_string()
        };
        let mut isobar_args = vec![
            "--ingress-status-address".to_string(),
            opts.ingress_status_address.clone(),
        ];
        if lease_name != DEFAULT_LEASE_NAME {
            isobar_args.extend([
                "--leader-election-lease-name".to_string(),
                lease_name.clone(),
            ]);
        }
        isobar_args.extend(opts.isobar_args.iter().cloned());
        let stack = Stack::start(StackOptions {
            isobar_bin: opts.isobar_bin,
            echo_bin: opts.echo_bin,
            source: IsobarSource::Kubeconfig(isobar_kubeconfig.clone()),
            isobar_args,
            envoy_version: None,
            envoy_sds_files: false,
            xds_api: None,
            isobar_replicas: 1,
            envoy_unknown_fields: UnknownFields::Ignore,
        })
        .await
        .map_err(|e| e.with_log(cluster.log_tails(20)))?;
        Ok(KubeStack {
            stack,
            cluster,
            namespace,
            slice_api_version,
            lease_name,
            isobar_kubeconfig,
            dir,
        })
    }

    /// An admin client.
    pub fn client(&self) -> &KubeClient {
        self.cluster.client()
    }

    /// The namespace this stack's objects live in (unique per stack).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A host name unique to this stack: `LABEL.NAMESPACE.test`.
    pub fn host(&self, label: &str) -> String {
        format!("{label}.{}.test", self.namespace)
    }

    /// The `apiVersion` of EndpointSlices this server serves (`discovery.k8s.io/v1` or
    /// `v1beta1`).
    pub fn slice_api_version(&self) -> &str {
        &self.slice_api_version
    }

    /// The leader-election Lease (in `isobar-system`) isobar uses.
    pub fn lease_name(&self) -> &str {
        &self.lease_name
    }

    /// The kubeconfig isobar runs with (the ServiceAccount's token).
    pub fn isobar_kubeconfig(&self) -> &Path {
        &self.isobar_kubeconfig
    }

    /// Applies one object; a namespaced object without a namespace goes to the stack's.
    pub async fn apply(&self, object: Value) -> Result<Value> {
        let mut object = object;
        if object["metadata"]["namespace"].is_null() && object["kind"] != "Namespace" {
            let rt = self
                .client()
                .resource_type(
                    object["apiVersion"].as_str().unwrap_or_default(),
                    object["kind"].as_str().unwrap_or_default(),
                )
                .await?;
            if rt.namespaced {
                object["metadata"]["namespace"] = json!(self.namespace);
            }
        }
        self.client().apply(&object).await
    }

    /// Deletes an object of the stack's namespace; `Ok(false)` if it did not exist.
    pub async fn delete(&self, api_version: &str, kind: &str, name: &str) -> Result<bool> {
        self.client()
            .delete(api_version, kind, Some(&self.namespace), name)
            .await
    }

    /// Starts an echo backend (127.0.0.1, a free port) answering with `name`.
    pub fn start_echo(&self, name: &str) -> Result<EchoBackend> {
        self.stack.start_echo(name)
    }

    /// Applies a selector-less Service `name` with port 80 named `http`.
    pub async fn apply_service(&self, name: &str) -> Result<Value> {
        self.apply(service(name)).await
    }

    /// Applies EndpointSlice `slice` of Service `service`: one ready endpoint 127.0.0.1 on
    /// `port` for the Service port named `http`.
    pub async fn apply_slice(&self, service: &str, slice: &str, port: u16) -> Result<Value> {
        self.apply(endpoint_slice(
            &self.slice_api_version,
            service,
            slice,
            port,
        ))
        .await
    }

    /// Starts echo backend `name` and publishes it as Service `name` with EndpointSlice
    /// `name-1`.
    pub async fn backend(&self, name: &str) -> Result<EchoBackend> {
        let echo = self.start_echo(name)?;
        self.apply_service(name).await?;
        self.apply_slice(name, &format!("{name}-1"), echo.port())
            .await?;
        Ok(echo)
    }

    /// An Ingress of the stack's namespace as the API server has it (`None` if absent).
    pub async fn get_ingress(&self, name: &str) -> Result<Option<Value>> {
        self.client()
            .get(
                "networking.k8s.io/v1",
                "Ingress",
                Some(&self.namespace),
                name,
            )
            .await
    }

    /// Polls until Ingress `name` has `status.loadBalancer.ingress == want`.
    pub async fn wait_ingress_lb(&self, name: &str, want: &Value, timeout: Duration) -> Result<()> {
        let what = format!(
            "Ingress {}/{name} status.loadBalancer.ingress to be {want}",
            self.namespace
        );
        wait_for_async(timeout, &what, || async {
            let ingress = self.get_ingress(name).await?;
            Ok(ingress
                .filter(|i| &i["status"]["loadBalancer"]["ingress"] == want)
                .map(|_| ()))
        })
        .await
    }

    /// The holder of the leader-election Lease, if any.
    pub async fn lease_holder(&self) -> Result<Option<String>> {
        let lease = self
            .client()
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                Some(ISOBAR_NAMESPACE),
                &self.lease_name,
            )
            .await?;
        Ok(lease.and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string)))
    }

    /// Log tails of Envoy, isobar and the local cluster, for assertion messages.
    pub fn log_tails(&self, n: usize) -> String {
        format!("{}\n{}", self.stack.log_tails(n), self.cluster.log_tails(n))
    }

    /// The stack's temp dir (isobar's kubeconfig).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KubeStack {
    fn drop(&mut self) {
        if !self.cluster.is_external() {
            return;
        }
        // Objects on a shared cluster outlive the test: remove the namespace (best effort, on a
        // thread of its own because drop may run inside the test's runtime).
        let client = self.client().clone();
        let namespace = self.namespace.clone();
        // Wait until it is gone, so its objects' deletion events don't reach the isobar of the
        // next test (which may count rebuilds).
        let joined = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    client.delete("v1", "Namespace", None, &namespace).await?;
                    wait_for_async(
                        NAMESPACE_GONE,
                        "the test namespace to be deleted",
                        || async {
                            let ns = client.get("v1", "Namespace", None, &namespace).await?;
                            Ok(ns.is_none().then_some(()))
                        },
                    )
                    .await
                })
                .map_err(std::io::Error::other)
        })
        .join();
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(namespace = %self.namespace, error = %e, "test namespace not deleted")
            }
            Err(_) => tracing::warn!(namespace = %self.namespace, "test namespace not deleted"),
        }
    }
}

/// Applies `namespace.yaml`, `crds.yaml` (and waits until each CRD is Established) and
/// `rbac.yaml` from `deploy_dir`.
pub async fn install_deploy(admin: &KubeClient, deploy_dir: &Path) -> Result<()> {
    let read = |file: &str| {
        let path = deploy_dir.join(file);
        std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))
    };
    admin.apply_yaml(&read("namespace.yaml")?).await?;
    let crds = read("crds.yaml")?;
    admin.apply_yaml(&crds).await?;
    for crd in parse_yaml_documents(&crds)? {
        if let Some(name) = crd["metadata"]["name"].as_str() {
            admin.wait_crd_established(name, CRD_TIMEOUT).await?;
        }
    }
    admin.apply_yaml(&read("rbac.yaml")?).await?;
    Ok(())
}

/// `discovery.k8s.io/v1` if the server serves EndpointSlices there, else `v1beta1`.
pub async fn endpoint_slice_api_version(admin: &KubeClient) -> Result<String> {
    let v1 = admin.get_json("/apis/discovery.k8s.io/v1").await?;
    let serves_v1 = v1.is_some_and(|list| {
        list["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["kind"] == "EndpointSlice"))
    });
    Ok(if serves_v1 {
        "discovery.k8s.io/v1"
    } else {
        "discovery.k8s.io/v1beta1"
    }
    .to_string())
}

/// A selector-less Service with port 80 named `http`.
pub fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": SERVICE_PORT_NAME, "port": 80, "protocol": "TCP"}]},
    })
}

/// EndpointSlice `slice` of `service`: one ready endpoint 127.0.0.1 with `port` for the Service
/// port named `http`. A slice has one port list for all its endpoints, so backends on other
/// ports of 127.0.0.1 need slices of their own.
pub fn endpoint_slice(api_version: &str, service: &str, slice: &str, port: u16) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "EndpointSlice",
        "metadata": {"name": slice, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": SERVICE_PORT_NAME, "port": port, "protocol": "TCP"}],
    })
}

/// A short suffix unique to this process and call, for names on shared clusters.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = (u64::from(std::process::id()) << 20) ^ u64::from(nanos) ^ (n << 40);
    format!("{:x}", mixed & 0xff_ffff_ffff)
}
