//! The kube workload's objects (IngressRoutes with their Service and EndpointSlice, unrelated
//! Secrets) and creating thousands of them concurrently.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use isobar_harness::kube::KubeClient;
use isobar_harness::kube_stack::{endpoint_slice, service};
use serde_json::{json, Value};

/// Creations in flight at once: enough to keep the API server busy, few enough that a 2-core
/// machine shared with isobar's build does not time requests out.
const CONCURRENCY: usize = 16;
/// Attempts per object: an API server under a bulk load sometimes answers 429 or 5xx.
const ATTEMPTS: usize = 3;
/// Bytes of random text in each unrelated Secret.
const SECRET_BYTES: usize = 4096;

pub const IR_API: &str = "contour.heptio.com/v1beta1";

/// The fqdn of IngressRoute `i`.
pub fn fqdn(i: usize) -> String {
    format!("r{i}.scale.test")
}

/// IngressRoute `r{i}`, a root for [`fqdn`]`(i)` routing `/` to Service `s{i}` port 80.
pub fn ingress_route(namespace: &str, i: usize) -> Value {
    json!({
        "apiVersion": IR_API,
        "kind": "IngressRoute",
        "metadata": {"name": format!("r{i}"), "namespace": namespace},
        "spec": {
            "virtualhost": {"fqdn": fqdn(i)},
            "routes": [{"match": "/", "services": [{"name": format!("s{i}"), "port": 80}]}],
        },
    })
}

/// Service `s{i}` and its EndpointSlice `s{i}-1` (127.0.0.1:`port`).
pub fn backend(namespace: &str, slice_api: &str, i: usize, port: u16) -> [Value; 2] {
    let name = format!("s{i}");
    let mut objects = [
        service(&name),
        endpoint_slice(slice_api, &name, &format!("{name}-1"), port),
    ];
    for o in &mut objects {
        o["metadata"]["namespace"] = json!(namespace);
    }
    objects
}

/// Opaque Secret `junk-{i}` holding 4 KB of random text nobody refers to.
pub fn unrelated_secret(namespace: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("junk-{i}"), "namespace": namespace},
        "type": "Opaque",
        "stringData": {"blob": random_text(i as u64, SECRET_BYTES)},
    })
}

/// `len` pseudo-random alphanumerics from `seed` (splitmix64): incompressible enough for a
/// memory figure, and the same on every run.
fn random_text(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            char::from(ALPHABET[(z % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// Creates one object (POST to its collection), retrying a refused or failed attempt; an object
/// that exists after a retry counts as created (the failed attempt may have gone through).
pub async fn create(client: &KubeClient, object: &Value) -> anyhow::Result<()> {
    let (api, kind) = (
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    );
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let path = client
        .resource_type(api, kind)
        .await?
        .collection_path(object["metadata"]["namespace"].as_str());
    let mut attempt = 1;
    loop {
        match client.post_json(&path, object).await {
            Ok(_) => return Ok(()),
            Err(isobar_harness::Error::KubeApi { status: 409, .. }) if attempt > 1 => return Ok(()),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => attempt += 1,
            Err(e) => return Err(e).with_context(|| format!("creating {kind} {name}")),
        }
    }
}

fn retryable(e: &isobar_harness::Error) -> bool {
    match e {
        isobar_harness::Error::KubeApi { status, .. } => *status == 429 || *status >= 500,
        // Transport errors (a reset connection, a timeout).
        _ => true,
    }
}

/// Creates every object, [`CONCURRENCY`] at a time; the first failure ends it.
pub async fn create_all(client: &KubeClient, objects: Vec<Value>) -> anyhow::Result<()> {
    futures::stream::iter(objects)
        .map(|o| async move { create(client, &o).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}
