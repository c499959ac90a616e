//! Envoy's bootstrap for the split model: an admin listener, a static `isobar` cluster reached over
//! HTTP/2 with mutual TLS (client certificate, trusted CA, the server's SAN verified) and ADS for LDS and
//! CDS, state-of-the-world or delta. Everything else (routes, endpoints, secrets) follows over ADS.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::Result;

/// The name of the static cluster Envoy uses to reach isobar.
pub const XDS_CLUSTER: &str = "isobar";

/// Which variant of the xDS protocol Envoy's ADS stream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdsApi {
    /// State of the world (`GRPC`): every Envoy and every xDS client speaks it.
    #[default]
    Sotw,
    /// Incremental (`DELTA_GRPC`): only changed resources of every type travel, listeners and
    /// clusters included.
    Delta,
}

impl XdsApi {
    /// The value of `ads_config.api_type`.
    pub fn api_type(self) -> &'static str {
        match self {
            XdsApi::Sotw => "GRPC",
            XdsApi::Delta => "DELTA_GRPC",
        }
    }
}

/// What goes into the bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub xds_address: String,
    pub xds_port: u16,
    pub admin_address: String,
    pub admin_port: u16,
    /// The TLS files Envoy presents and trusts; `None` means plaintext xDS (only with `--insecure`).
    pub tls: Option<EnvoyTlsFiles>,
    /// The SAN Envoy requires in isobar's certificate; also sent as SNI.
    pub xds_server_name: String,
    pub node_id: String,
    pub node_cluster: String,
    /// With a directory, Envoy's client certificate and the CA are file-based SDS resources written
    /// there, which Envoy reloads when the certificate files change: rotation without restarting Envoy.
    pub resources_dir: Option<PathBuf>,
    /// State-of-the-world or delta ADS.
    pub xds_api: XdsApi,
}

/// Names of the file-based SDS secrets.
pub const CLIENT_CERT_SECRET: &str = "envoy-client-cert";
pub const XDS_CA_SECRET: &str = "xds-ca";

/// Envoy's side of the mTLS connection, as file paths Envoy reads.
#[derive(Debug, Clone)]
pub struct EnvoyTlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The bootstrap as JSON (Envoy v3).
pub fn render(options: &BootstrapOptions) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    let mut cluster = json!({
        "name": XDS_CLUSTER,
        "connect_timeout": "5s",
        "type": if options.xds_address.parse::<IpAddr>().is_ok() { "STATIC" } else { "STRICT_DNS" },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(&options.xds_address, options.xds_port)}}]}]
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    // Keep the xDS connection alive through idle NATs and detect a dead server.
                    "connection_keepalive": {"interval": "30s", "timeout": "5s"}
                }}
            }
        },
        // A restarting isobar should be found again quickly.
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 5}},
    });
    if let Some(tls) = &options.tls {
        let san = json!([{"san_type": "DNS", "matcher": {"exact": options.xds_server_name}}]);
        let common_tls_context = match &options.resources_dir {
            None => json!({
                "alpn_protocols": ["h2"],
                "tls_certificates": [{
                    "certificate_chain": {"filename": path(&tls.cert_file)},
                    "private_key": {"filename": path(&tls.key_file)}
                }],
                "validation_context": {
                    "trusted_ca": {"filename": path(&tls.ca_file)},
                    "match_typed_subject_alt_names": san
                }
            }),
            Some(dir) => json!({
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [{
                    "name": CLIENT_CERT_SECRET,
                    "sds_config": file_config_source(&dir.join(format!("{CLIENT_CERT_SECRET}.json")), dir)
                }],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": san},
                    "validation_context_sds_secret_config": {
                        "name": XDS_CA_SECRET,
                        "sds_config": file_config_source(&dir.join(format!("{XDS_CA_SECRET}.json")), dir)
                    }
                }
            }),
        };
        cluster["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": options.xds_server_name,
                "common_tls_context": common_tls_context
            }
        });
    }
    json!({
        "node": {"id": options.node_id, "cluster": options.node_cluster},
        "admin": {"address": socket_address(&options.admin_address, options.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": options.xds_api.api_type(),
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]
            },
            "lds_config": ads,
            "cds_config": ads
        },
        "static_resources": {"clusters": [cluster]},
        // isobar's listeners serve untrusted clients: bound the connections Envoy accepts.
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 50000
            }
        }]}
    })
}

/// A file-based config source Envoy reloads when an entry of `watched` is moved into place.
fn file_config_source(file: &Path, watched: &Path) -> Value {
    json!({
        "path_config_source": {"path": path(file), "watched_directory": {"path": path(watched)}},
        "resource_api_version": "V3"
    })
}

/// The file-based SDS resources `--resources-dir` needs: Envoy's client certificate and the CA it
/// trusts, each pointing at the certificate files (whose directory Envoy watches, so a Kubernetes
/// Secret volume update or an atomic rename reloads them).
pub fn sds_resources(tls: &EnvoyTlsFiles, dir: &Path) -> Vec<(PathBuf, Value)> {
    let parent = |p: &Path| p.parent().map(path).unwrap_or_else(|| ".".to_string());
    let secret = |body: Value| json!({"resources": [body]});
    vec![
        (
            dir.join(format!("{CLIENT_CERT_SECRET}.json")),
            secret(json!({
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": CLIENT_CERT_SECRET,
                "tls_certificate": {
                    "certificate_chain": {"filename": path(&tls.cert_file)},
                    "private_key": {"filename": path(&tls.key_file)},
                    "watched_directory": {"path": parent(&tls.cert_file)}
                }
            })),
        ),
        (
            dir.join(format!("{XDS_CA_SECRET}.json")),
            secret(json!({
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": XDS_CA_SECRET,
                "validation_context": {
                    "trusted_ca": {"filename": path(&tls.ca_file)},
                    "watched_directory": {"path": parent(&tls.ca_file)}
                }
            })),
        ),
    ]
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Writes the bootstrap to `out` (pretty JSON), and the SDS resources when `resources_dir` is set.
pub fn write(options: &BootstrapOptions, out: &Path) -> Result<()> {
    if let (Some(dir), Some(tls)) = (&options.resources_dir, &options.tls) {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        for (file, resource) in sds_resources(tls, dir) {
            let mut text = serde_json::to_string_pretty(&resource)?;
            text.push('\n');
            crate::tls::certgen::write_atomically(&file, text.as_bytes(), 0o644)?;
        }
    }
    let mut text = serde_json::to_string_pretty(&render(options))?;
    text.push('\n');
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| crate::Error::io(parent, e))?;
    }
    std::fs::write(out, text).map_err(|e| crate::Error::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BootstrapOptions {
        BootstrapOptions {
            xds_address: "127.0.0.1".into(),
            xds_port: 8001,
            admin_address: "127.0.0.1".into(),
            admin_port: 9001,
            tls: Some(EnvoyTlsFiles {
                ca_file: "/certs/ca.crt".into(),
                cert_file: "/certs/envoy.crt".into(),
                key_file: "/certs/envoy.key".into(),
            }),
            xds_server_name: "isobar".into(),
            node_id: "envoy".into(),
            node_cluster: "isobar".into(),
            resources_dir: None,
            xds_api: XdsApi::default(),
        }
    }

    /// The whole `ads_config` as written, for both variants: only `api_type` differs.
    #[test]
    fn ads_config_names_the_api_type_of_the_chosen_variant() {
        let ads_config = |api: XdsApi| {
            let mut o = options();
            o.xds_api = api;
            render(&o)["dynamic_resources"]["ads_config"].clone()
        };
        let expected = |api_type: &str| {
            json!({
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "isobar"}}]
            })
        };
        assert_eq!(ads_config(XdsApi::Sotw), expected("GRPC"));
        assert_eq!(ads_config(XdsApi::Delta), expected("DELTA_GRPC"));
        assert_eq!(XdsApi::default(), XdsApi::Sotw);
        // LDS and CDS come over ADS either way.
        let mut o = options();
        o.xds_api = XdsApi::Delta;
        let b = render(&o);
        for config in ["lds_config", "cds_config"] {
            assert_eq!(
                b["dynamic_resources"][config],
                json!({"ads": {}, "resource_api_version": "V3"}),
                "{config}"
            );
        }
    }

    #[test]
    fn tls_bootstrap_presents_the_client_cert_and_verifies_the_server_san() {
        let b = render(&options());
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STATIC");
        let ctx = &cluster["transport_socket"]["typed_config"];
        assert_eq!(ctx["sni"], "isobar");
        let common = &ctx["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            "/certs/envoy.crt"
        );
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            "/certs/envoy.key"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/certs/ca.crt"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "isobar"
        );
        assert_eq!(b["dynamic_resources"]["lds_config"]["ads"], json!({}));
        assert_eq!(b["dynamic_resources"]["cds_config"]["ads"], json!({}));
    }

    #[test]
    fn plaintext_bootstrap_has_no_transport_socket_and_hostnames_use_dns() {
        let mut o = options();
        o.tls = None;
        o.xds_address = "isobar.isobar-system".into();
        let b = render(&o);
        let cluster = &b["static_resources"]["clusters"][0];
        assert!(cluster.get("transport_socket").is_none());
        assert_eq!(cluster["type"], "STRICT_DNS");
    }
}
