//! Cluster names that stay the same across isobar builds and Rust releases.
//!
//! A cluster's name is part of the configuration Envoy holds: if the same input produced another name
//! after an upgrade, every cluster would be replaced (and its connections drained) for nothing, and two
//! replicas built by different compilers would disagree. So the name is derived from a documented
//! encoding hashed with SHA-256, never from `std`'s `DefaultHasher` (whose algorithm is unspecified).

use sha2::{Digest, Sha256};

use super::{
    HealthCheck, LbPolicy, Limits, UpstreamProtocol, UpstreamSettings, UpstreamValidation,
};

/// How many hex characters of the digest a name carries (40 bits: a collision needs two differently
/// configured clusters of the same Service port, of which there are a handful).
const DIGEST_HEX_CHARS: usize = 10;

/// The name of the cluster for port `port` of Service `namespace/service` with `settings`.
///
/// * Default settings: `NAMESPACE/SERVICE/PORT`, e.g. `default/web/80`.
/// * Otherwise: `NAMESPACE/SERVICE/PORT/DIGEST`, where DIGEST is the first 10 lower-case hex characters
///   of SHA-256 over [`settings_encoding`] of the settings, e.g. `default/web/80/a9c5f36521` for
///   HTTP/2 with everything else at its default.
///
/// Changing this function or the encoding renames clusters in every running Envoy: the unit tests
/// below pin names literally so that such a change is deliberate.
pub fn cluster_name(
    namespace: &str,
    service: &str,
    port: i32,
    settings: &UpstreamSettings,
) -> String {
    let plain = *settings == UpstreamSettings::default();
    let digest_len = if plain { 0 } else { 1 + DIGEST_HEX_CHARS };
    let mut name = service_port_name(
        namespace,
        service,
        itoa::Buffer::new().format(port),
        digest_len,
    );
    if !plain {
        let digest = Sha256::digest(settings_encoding(settings));
        name.push('/');
        name.push_str(&hex::encode(digest)[..DIGEST_HEX_CHARS]);
    }
    name
}

/// `NAMESPACE/SERVICE/PORT`, with room for `extra` bytes more. Written piece by piece: the `format!`s
/// of a cluster name and an EDS name per backend were 6.6 % of the memoised DAG build's samples at
/// 10,000 Ingresses, and `resolve_port` runs 0.62× the instructions without them.
pub fn service_port_name(namespace: &str, service: &str, port: &str, extra: usize) -> String {
    let mut name = String::with_capacity(namespace.len() + service.len() + port.len() + 2 + extra);
    name.push_str(namespace);
    name.push('/');
    name.push_str(service);
    name.push('/');
    name.push_str(port);
    name
}

/// The bytes hashed into a cluster name: five lines, each `KEY=VALUE\n`, in this order:
///
/// ```text
/// protocol=http1|h2|h2c|tls
/// lb_policy=round_robin|weighted_least_request|random|cookie
/// health_check=none | health_check=PATH,HOST,INTERVAL_NS,TIMEOUT_NS,UNHEALTHY,HEALTHY
/// validation=none | validation=SUBJECT_NAME,CA_PEM
/// limits=MAX_CONNECTIONS,MAX_PENDING_REQUESTS,MAX_REQUESTS,MAX_RETRIES
/// ```
///
/// Strings (PATH, HOST, SUBJECT_NAME, CA_PEM) are written as `LEN:BYTES` (LEN in decimal bytes), so
/// no value can imitate a separator; durations are whole nanoseconds; an unset limit is `-`.
pub fn settings_encoding(settings: &UpstreamSettings) -> Vec<u8> {
    // Destructured without `..`: a new field fails to compile here until the encoding covers it.
    let UpstreamSettings {
        protocol,
        lb_policy,
        health_check,
        validation,
        limits,
    } = settings;
    let mut out = Vec::new();
    line(&mut out, "protocol", protocol_text(*protocol).as_bytes());
    line(&mut out, "lb_policy", lb_policy_text(*lb_policy).as_bytes());
    line(
        &mut out,
        "health_check",
        &health_check_value(health_check.as_ref()),
    );
    line(
        &mut out,
        "validation",
        &validation_value(validation.as_ref()),
    );
    line(&mut out, "limits", limits_value(limits).as_bytes());
    out
}

fn line(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

fn protocol_text(protocol: UpstreamProtocol) -> &'static str {
    match protocol {
        UpstreamProtocol::Http1 => "http1",
        UpstreamProtocol::H2 => "h2",
        UpstreamProtocol::H2c => "h2c",
        UpstreamProtocol::Tls => "tls",
    }
}

fn lb_policy_text(policy: LbPolicy) -> &'static str {
    match policy {
        LbPolicy::RoundRobin => "round_robin",
        LbPolicy::WeightedLeastRequest => "weighted_least_request",
        LbPolicy::Random => "random",
        LbPolicy::Cookie => "cookie",
    }
}

fn health_check_value(health_check: Option<&HealthCheck>) -> Vec<u8> {
    let Some(HealthCheck {
        path,
        host,
        interval,
        timeout,
        unhealthy_threshold,
        healthy_threshold,
    }) = health_check
    else {
        return b"none".to_vec();
    };
    let mut out = Vec::new();
    length_prefixed(&mut out, path.as_bytes());
    out.push(b',');
    length_prefixed(&mut out, host.as_bytes());
    let numbers = format!(
        ",{},{},{unhealthy_threshold},{healthy_threshold}",
        interval.as_nanos(),
        timeout.as_nanos()
    );
    out.extend_from_slice(numbers.as_bytes());
    out
}

fn validation_value(validation: Option<&UpstreamValidation>) -> Vec<u8> {
    let Some(UpstreamValidation {
        ca_pem,
        subject_name,
    }) = validation
    else {
        return b"none".to_vec();
    };
    let mut out = Vec::new();
    length_prefixed(&mut out, subject_name.as_bytes());
    out.push(b',');
    length_prefixed(&mut out, ca_pem);
    out
}

fn limits_value(limits: &Limits) -> String {
    let Limits {
        max_connections,
        max_pending_requests,
        max_requests,
        max_retries,
    } = limits;
    let text = |v: &Option<u32>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    format!(
        "{},{},{},{}",
        text(max_connections),
        text(max_pending_requests),
        text(max_requests),
        text(max_retries)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn h2() -> UpstreamSettings {
        UpstreamSettings {
            protocol: UpstreamProtocol::H2,
            ..UpstreamSettings::default()
        }
    }

    #[test]
    fn default_settings_name_the_service_port_only() {
        assert_eq!(
            cluster_name("default", "web", 80, &UpstreamSettings::default()),
            "default/web/80"
        );
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        assert_eq!(
            String::from_utf8(settings_encoding(&h2())).unwrap(),
            "protocol=h2\nlb_policy=round_robin\nhealth_check=none\nvalidation=none\nlimits=-,-,-,-\n"
        );
        let full = UpstreamSettings {
            protocol: UpstreamProtocol::Tls,
            lb_policy: LbPolicy::Cookie,
            health_check: Some(HealthCheck {
                path: "/healthz".into(),
                host: "web".into(),
                interval: Duration::from_secs(5),
                timeout: Duration::from_millis(1500),
                unhealthy_threshold: 3,
                healthy_threshold: 2,
            }),
            validation: Some(UpstreamValidation {
                ca_pem: b"CA".to_vec(),
                subject_name: "web.default".into(),
            }),
            limits: Limits {
                max_connections: Some(10),
                max_pending_requests: None,
                max_requests: Some(0),
                max_retries: None,
            },
        };
        assert_eq!(
            String::from_utf8(settings_encoding(&full)).unwrap(),
            "protocol=tls\nlb_policy=cookie\n\
             health_check=8:/healthz,3:web,5000000000,1500000000,3,2\n\
             validation=11:web.default,2:CA\nlimits=10,-,0,-\n"
        );
    }

    /// Pinned literally (computed with `printf ENCODING | sha256sum`): these names live in running
    /// Envoys, so a change here must be deliberate.
    #[test]
    fn names_are_pinned() {
        assert_eq!(
            cluster_name("default", "web", 80, &h2()),
            "default/web/80/a9c5f36521"
        );
        let lb = UpstreamSettings {
            lb_policy: LbPolicy::Random,
            ..UpstreamSettings::default()
        };
        assert_eq!(
            cluster_name("prod", "api", 8443, &lb),
            "prod/api/8443/9821de0849"
        );
        let limits = UpstreamSettings {
            limits: Limits {
                max_connections: Some(100),
                ..Limits::default()
            },
            ..UpstreamSettings::default()
        };
        assert_eq!(
            cluster_name("default", "web", 80, &limits),
            "default/web/80/458da22f48"
        );
    }

    #[test]
    fn values_cannot_imitate_separators() {
        let check = |path: &str, host: &str| UpstreamSettings {
            health_check: Some(HealthCheck {
                path: path.into(),
                host: host.into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                unhealthy_threshold: 1,
                healthy_threshold: 1,
            }),
            ..UpstreamSettings::default()
        };
        assert_ne!(
            cluster_name("ns", "svc", 80, &check("/a,b", "c")),
            cluster_name("ns", "svc", 80, &check("/a", "b,c"))
        );
    }
}
