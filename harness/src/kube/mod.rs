//! A real Kubernetes API for e2e tests: etcd, kube-apiserver and kube-controller-manager as
//! local processes (or an existing cluster via `ISOBAR_E2E_KUBECONFIG`), a small client that
//! applies YAML with server-side apply, and network namespaces for backends at addresses
//! Endpoints accept.

mod binaries;
mod client;
mod cluster;
mod flags;
mod gateway_api;
mod kubeconfig;
mod local;
mod netns;
mod pki;
mod resources;
mod testnet;
mod transport;
mod watch;

pub use binaries::{kube_binaries, KubeBinaries, KUBE_BIN_DIR_ENV};
pub use client::{fill_apply_defaults, parse_yaml_documents, KubeClient, FIELD_MANAGER};
pub use cluster::{KubeCluster, E2E_KUBECONFIG_ENV};
pub use gateway_api::{
    gateway_api_bundle, gateway_api_dir, install_gateway_api_crds, GATEWAY_API_VERSION,
};
pub use kubeconfig::{KubeAuth, KubeEndpoint};
pub use local::{KubeClusterOptions, SERVICE_ACCOUNT_ISSUER};
pub use netns::NetnsBackendHost;
pub use pki::{ClusterPki, APISERVER_SANS};
pub use resources::{known_resource, ResourceType};
pub use watch::{AllReached, CollectionWatch, WatchEvent, WatchEvents};
