//! Starts a local etcd + kube-apiserver (as the e2e suite does) and keeps it running until
//! Ctrl-C, printing its admin kubeconfig: point `ISOBAR_E2E_KUBECONFIG` at it to run the suite
//! against an existing cluster, or use it with kubectl.
//!
//! `cargo run -p isobar-harness --example kube-cluster [-- --controller-manager]`

use isobar_harness::kube::{KubeCluster, KubeClusterOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let controller_manager = std::env::args().any(|a| a == "--controller-manager");
    let cluster = KubeCluster::start(KubeClusterOptions {
        controller_manager,
        ..Default::default()
    })
    .await?;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    println!("kube-apiserver {} ready", cluster.server_url());
    println!("export ISOBAR_E2E_KUBECONFIG={}", kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    drop(cluster);
    Ok(())
}
