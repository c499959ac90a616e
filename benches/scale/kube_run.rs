//! The Kubernetes workload: a local API server holding N IngressRoutes (each with its Service and
//! EndpointSlice) and M unrelated Secrets before isobar starts; then the time until every
//! IngressRoute has its status, isobar's memory, and new IngressRoutes timed from their creation to
//! the first 200 through Envoy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use isobar_harness::isobar::IsobarSource;
use isobar_harness::kube::{KubeCluster, KubeClusterOptions};
use isobar_harness::kube_stack::{
    endpoint_slice_api_version, install_deploy, ISOBAR_NAMESPACE, ISOBAR_SERVICE_ACCOUNT,
};
use serde_json::json;

use crate::args::Args;
use crate::kube_objects::{
    backend, create, create_all, fqdn, ingress_route, unrelated_secret, IR_API,
};
use crate::measure::{until_200, Percentiles};
use crate::proxy::Proxy;
use crate::rss::{settled_rss, Rss};

/// The namespace of the IngressRoutes and their backends.
const NS: &str = "scale";
/// The namespace of the unrelated Secrets.
const SECRETS_NS: &str = "scale-secrets";
/// Written into Ingress status (a name that resolves nowhere), as the e2e tests do.
const STATUS_ADDRESS: &str = "lb.isobar.test";

/// What the kube run measured.
pub struct KubeFigures {
    pub ingressroutes: usize,
    pub secrets: usize,
    /// Objects created before isobar starts, and how long that took (informational).
    pub objects: usize,
    pub setup: Duration,
    /// From isobar's start until every IngressRoute has `status.currentStatus`.
    pub statuses: Duration,
    /// From isobar's start until the first has it: what isobar's start (lists, first build) took
    /// of `statuses`. The rest is the writes: isobar sending them within its client budget, and
    /// the API server applying each and telling isobar's watch of it.
    pub first_status: Duration,
    pub rss: Rss,
    pub new_route: Percentiles,
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base"))
}

pub async fn run(
    args: &Args,
    envoy_bin: &Path,
    backends: &[u16],
    work: &Path,
) -> anyhow::Result<KubeFigures> {
    let (n, secrets) = (args.ingressroutes, args.secrets);
    let samples = args.samples_for(n);
    // A local API server of its own: the figures are this machine's, and nothing else's objects
    // are in the watches.
    let cluster = KubeCluster::start(KubeClusterOptions::default())
        .await
        .context("starting the local API server")?;
    let admin = cluster.client();
    install_deploy(admin, &deploy_dir()).await?;
    let token = admin
        .service_account_token(ISOBAR_NAMESPACE, ISOBAR_SERVICE_ACCOUNT)
        .await?;
    let kubeconfig = work.join("isobar.kubeconfig");
    std::fs::create_dir_all(work)?;
    cluster.write_kubeconfig_for_token(&kubeconfig, &token)?;
    for ns in [NS, SECRETS_NS] {
        admin
            .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .await?;
    }
    let slice_api = endpoint_slice_api_version(admin).await?;

    let setup_start = Instant::now();
    // The samples' backends exist from the start: a sample times its IngressRoute only.
    let mut objects: Vec<_> = (0..n + samples)
        .flat_map(|i| backend(NS, &slice_api, i, backends[i % backends.len()]))
        .collect();
    objects.extend((0..n).map(|i| ingress_route(NS, i)));
    objects.extend((0..secrets).map(|i| unrelated_secret(SECRETS_NS, i)));
    let count = objects.len();
    create_all(admin, objects).await.with_context(|| {
        format!(
            "creating the objects; the API server's logs:\n{}",
            cluster.log_tails(10)
        )
    })?;
    let setup = setup_start.elapsed();
    eprintln!("  created {count} objects in {setup:.1?}");

    let mut isobar_args = vec![
        "--ingress-status-address".to_string(),
        STATUS_ADDRESS.into(),
    ];
    isobar_args.extend(args.isobar_args.iter().cloned());
    let ready = Duration::from_secs(60) + Duration::from_millis(30) * n as u32;
    let status_timeout = Duration::from_secs(120) + Duration::from_millis(100) * n as u32;
    let proxy_work = work.join("proxy");
    // Statuses are seen through a watch opened before isobar starts: polling lists of thousands
    // of IngressRoutes would take the API server's cores from the status writes being timed.
    let collection = format!("/apis/{IR_API}/namespaces/{NS}/ingressroutes");
    let watch = admin.watch_collection(&collection, valid_status).await?;
    let started = Instant::now();
    // Statuses are awaited while Envoy starts: they do not depend on it.
    let (proxy, statuses) = tokio::try_join!(
        Proxy::start(
            &args.isobar,
            envoy_bin,
            IsobarSource::Kubeconfig(kubeconfig),
            isobar_args,
            ready,
            &proxy_work,
        ),
        async { anyhow::Ok(watch.wait_for_all(n, started, status_timeout).await?) },
    )?;
    eprintln!(
        "  all {n} IngressRoute statuses written {:.1?} after isobar's start (the first after {:.1?})",
        statuses.all, statuses.first
    );
    for i in [0, n - 1] {
        until_200(&proxy, &fqdn(i), "/", started, ready).await?;
    }
    let rss = settled_rss(&proxy).await?;

    let timeout = Duration::from_secs(60) + Duration::from_millis(10) * n as u32;
    let mut latencies = Vec::new();
    for k in 0..samples {
        let i = n + k;
        let created = Instant::now();
        create(admin, &ingress_route(NS, i)).await?;
        let took = until_200(&proxy, &fqdn(i), "/", created, timeout)
            .await
            .with_context(|| format!("new IngressRoute {k} with {n} present"))?;
        latencies.push(took);
    }
    let new_route = Percentiles::of(latencies);
    eprintln!("  new IngressRoute → 200: {}", new_route.cell());
    drop(proxy);
    Ok(KubeFigures {
        ingressroutes: n,
        secrets,
        objects: count,
        setup,
        statuses: statuses.all,
        first_status: statuses.first,
        rss,
        new_route,
    })
}

/// Whether an IngressRoute has its status; one that is not `valid` fails the run: the fixture is
/// wrong.
fn valid_status(route: &serde_json::Value) -> Result<bool, String> {
    match route["status"]["currentStatus"].as_str() {
        None | Some("") => Ok(false),
        Some("valid") => Ok(true),
        Some(other) => Err(format!(
            "IngressRoute {} is {other}: {}",
            route["metadata"]["name"], route["status"]["description"]
        )),
    }
}
