//! The bench's file-source fixture: N Services, each with Endpoints of a few addresses and an Ingress
//! routing its own host, plus the two small files the measured changes rewrite.

use std::path::Path;

use isobar_harness::manifests::write_manifest;
use isobar_harness::Result;

/// The namespace of every object.
pub const NS: &str = "bench";
/// Services per bulk file.
const PER_FILE: usize = 1_000;
/// The Service whose Endpoints change (its own file).
pub const CHANGED_SERVICE: usize = 1;
/// The host of the Ingress whose backend changes (its own file).
pub const CHANGED_HOST: &str = "change.example.com";
/// File of the changing Endpoints.
const ENDPOINTS_FILE: &str = "changing-endpoints.yaml";
/// File of the changing Ingress.
const INGRESS_FILE: &str = "changing-ingress.yaml";

/// The host of Service `i`'s Ingress.
pub fn host(i: usize) -> String {
    format!("h{i}.example.com")
}

/// The name of Service `i`'s cluster (isobar's `NAMESPACE/SERVICE/PORT`).
pub fn cluster(i: usize) -> String {
    format!("{NS}/s{i}/80")
}

fn service(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: {NS}}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n"
    )
}

/// Endpoints of Service `i`: `ips` on port `port`.
fn endpoints(i: usize, ips: &[String], port: u16) -> String {
    let addresses: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: s{i}, namespace: {NS}}}\n\
         subsets: [{{addresses: [{}], ports: [{{name: http, port: {port}}}]}}]\n---\n",
        addresses.join(", ")
    )
}

/// Three loopback addresses per Service that nothing listens on: no request is ever sent to them
/// (only Service 0, backed by the echo server, is requested), so they only weigh on EDS.
fn idle_ips(i: usize, extra: usize) -> Vec<String> {
    (0..3 + extra)
        .map(|k| format!("127.{}.{}.{}", 1 + k, (i >> 8) & 255, i & 255))
        .collect()
}

fn ingress(name: &str, host: &str, service: usize) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {NS}}}\n\
         spec: {{rules: [{{host: \"{host}\", http: {{paths: [{{path: /, pathType: Prefix, \
         backend: {{service: {{name: s{service}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
    )
}

/// Writes the fixture for `services` Services into `dir`; Service 0 is served by the echo backend on
/// 127.0.0.1:`echo_port`, the changing Ingress routes to Service [`CHANGED_SERVICE`].
pub fn write_fixture(dir: &Path, services: usize, echo_port: u16) -> Result<()> {
    assert!(
        services > CHANGED_SERVICE + 1,
        "the bench needs 3 Services at least"
    );
    for (chunk, start) in (0..services).step_by(PER_FILE).enumerate() {
        let mut yaml = String::new();
        for i in start..(start + PER_FILE).min(services) {
            yaml.push_str(&service(i));
            yaml.push_str(&ingress(&format!("i{i}"), &host(i), i));
            match i {
                0 => yaml.push_str(&endpoints(0, &["127.0.0.1".to_string()], echo_port)),
                CHANGED_SERVICE => {}
                _ => yaml.push_str(&endpoints(i, &idle_ips(i, 0), 8080)),
            }
        }
        write_manifest(dir, &format!("services-{chunk:03}.yaml"), &yaml)?;
    }
    set_endpoints(dir, false)?;
    set_route(dir, CHANGED_SERVICE)
}

/// Rewrites the changing Endpoints: three addresses, or four with `added`.
pub fn set_endpoints(dir: &Path, added: bool) -> Result<()> {
    let i = CHANGED_SERVICE;
    let ips = idle_ips(i, usize::from(added));
    write_manifest(dir, ENDPOINTS_FILE, &endpoints(i, &ips, 8080)).map(|_| ())
}

/// How many addresses the changing Endpoints list.
pub fn endpoint_count(added: bool) -> usize {
    3 + usize::from(added)
}

/// Rewrites the changing Ingress to route [`CHANGED_HOST`] to Service `service`.
pub fn set_route(dir: &Path, service: usize) -> Result<()> {
    write_manifest(dir, INGRESS_FILE, &ingress("change", CHANGED_HOST, service)).map(|_| ())
}
