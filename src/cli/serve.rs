use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::controller::{self, ServeConfig, SourceConfig};
use crate::dag::gateway::status::GatewayOptions;
use crate::dag::{DagOptions, DEFAULT_INGRESS_CLASS};
use crate::status::{ClientBudget, LeaderElection, StatusConfig, DEFAULT_BURST, DEFAULT_QPS};
use crate::store::ObjectKey;
use crate::tls::client_san::ClientSanAllowlist;
use crate::tls::server::TlsFiles;
use crate::xds::limits::XdsServerLimits;
use crate::xds::translate::ListenerConfig;

/// `isobar serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of Kubernetes YAML to serve (the file source). Without it, isobar watches Kubernetes.
    #[arg(long, conflicts_with_all = ["kubeconfig", "incluster"])]
    pub manifests: Option<PathBuf>,
    /// Kubeconfig of the cluster to watch. Without it (and without --manifests): the in-cluster service
    /// account, or KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Use the in-cluster service account (the default without --kubeconfig; accepted for Contour's
    /// command lines).
    #[arg(long)]
    pub incluster: bool,
    /// The address written into Ingress status.loadBalancer (an IP or host name). Without it, the load
    /// balancer addresses of Envoy's Service are used.
    #[arg(long)]
    pub ingress_status_address: Option<String>,
    /// Namespace of Envoy's Service, whose load balancer address Ingresses get.
    #[arg(long, default_value = "isobar-system")]
    pub envoy_service_namespace: String,
    /// Name of Envoy's Service.
    #[arg(long, default_value = "envoy")]
    pub envoy_service_name: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "isobar-system")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "isobar-leader")]
    pub leader_election_lease_name: String,
    /// Write statuses without electing a leader (only for a single replica).
    #[arg(long)]
    pub disable_leader_election: bool,
    /// Requests per second isobar's own writes to the API server (statuses, Events) may sustain.
    /// The watches are not counted.
    #[arg(long, default_value_t = DEFAULT_QPS)]
    pub kube_client_qps: f32,
    /// How many of those writes may start at once after a quiet spell; also the most in flight.
    #[arg(long, default_value_t = DEFAULT_BURST)]
    pub kube_client_burst: u32,
    /// Address the xDS server binds.
    #[arg(long, default_value = "127.0.0.1")]
    pub xds_address: IpAddr,
    #[arg(long, default_value_t = 8001)]
    pub xds_port: u16,
    /// CA that issued Envoy's client certificates.
    #[arg(long, visible_alias = "contour-cafile")]
    pub ca_file: Option<PathBuf>,
    /// isobar's serving certificate.
    #[arg(long, visible_alias = "contour-cert-file")]
    pub cert_file: Option<PathBuf>,
    /// isobar's serving key.
    #[arg(long, visible_alias = "contour-key-file")]
    pub key_file: Option<PathBuf>,
    /// Serve xDS in plaintext. Anyone who reaches the port gets the configuration, private keys included.
    #[arg(long)]
    pub insecure: bool,
    /// How often the TLS files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Accept only client certificates with one of these SAN DNS names (repeatable or
    /// comma-separated); by default any certificate the CA issued. certgen's Envoy certificate
    /// carries `envoy`, `envoy.NS`, `envoy.NS.svc` and `envoy.NS.svc.cluster.local`.
    #[arg(long, value_delimiter = ',')]
    pub xds_client_san: Vec<String>,
    /// TLS handshakes on the xDS port computed at once. A connection that has not sent its
    /// ClientHello does not count, so idle connections cannot lock Envoy out.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub xds_max_concurrent_handshakes: u32,
    /// How long an xDS connection has, from accept, to complete its TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub xds_handshake_timeout: Duration,
    /// HTTP/2 streams one xDS connection may have open at once (Envoy uses one).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub xds_max_streams_per_connection: u32,
    /// Largest gRPC request isobar accepts, in bytes (a DiscoveryRequest; 16 MiB holds the
    /// names of some 400,000 clusters). Responses are not limited.
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub xds_max_message_bytes: u64,
    #[command(flatten)]
    pub listeners: super::listeners::ListenerArgs,
    #[command(flatten)]
    pub gateway: super::gateway_report::GatewayArgs,
    /// Namespaces where root IngressRoutes may be defined (comma-separated); all when empty.
    #[arg(long, value_delimiter = ',')]
    pub ingressroute_root_namespaces: Vec<String>,
    /// Act on Ingresses of this class (and on those with no class).
    #[arg(long, default_value = DEFAULT_INGRESS_CLASS)]
    pub ingress_class_name: String,
    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, default_value = "0.0.0.0")]
    pub http_address: IpAddr,
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    /// Address of the debug server: the operator page (`/`), the admin gRPC API that `isobar status`
    /// and `isobar diff --against` read, and /debug/xds, /debug/status, /debug/dag. It shows every
    /// object and Envoy's errors: keep it on loopback unless the network is trusted.
    #[arg(long, default_value = "127.0.0.1")]
    pub debug_http_address: IpAddr,
    #[arg(long, default_value_t = 6060)]
    pub debug_http_port: u16,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms or 2s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?} is not a duration like 500ms or 2s")),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be longer than zero")),
        d => Ok(d),
    }
}

fn xds_limits(args: &ServeArgs) -> anyhow::Result<XdsServerLimits> {
    Ok(XdsServerLimits {
        max_concurrent_handshakes: usize::try_from(args.xds_max_concurrent_handshakes)?,
        handshake_timeout: args.xds_handshake_timeout,
        max_streams_per_connection: args.xds_max_streams_per_connection,
        max_message_bytes: usize::try_from(args.xds_max_message_bytes)
            .context("--xds-max-message-bytes does not fit this platform's memory")?,
    })
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let xds_client_sans = ClientSanAllowlist::new(&args.xds_client_san)?;
    let xds_limits = xds_limits(&args)?;
    let tls = match (args.ca_file, args.cert_file, args.key_file, args.insecure) {
        (Some(ca), Some(cert), Some(key), false) => Some(TlsFiles { ca, cert, key }),
        (None, None, None, true) => None,
        (_, _, _, true) => bail!("--insecure can't be combined with --ca-file/--cert-file/--key-file"),
        (None, None, None, false) => bail!(
            "xDS must be secured: give --ca-file, --cert-file and --key-file (see `isobar certgen`), or --insecure to serve plaintext"
        ),
        _ => bail!("give all three of --ca-file, --cert-file and --key-file"),
    };
    if tls.is_none() && !xds_client_sans.allows_any() {
        bail!("--xds-client-san needs TLS: it can't be combined with --insecure");
    }
    let budget = ClientBudget::new(args.kube_client_qps, args.kube_client_burst)?;
    let identity = identity();
    let source = match args.manifests {
        Some(dir) => SourceConfig::Manifests(dir),
        None => SourceConfig::Kube {
            kubeconfig: args.kubeconfig,
            status: StatusConfig {
                ingress_status_address: args.ingress_status_address,
                envoy_service: ObjectKey::new(
                    args.envoy_service_namespace,
                    args.envoy_service_name,
                ),
                // The Lease holder's name, so an Event says which replica published it.
                reporting_instance: Some(identity.clone()),
                budget,
            },
            leader_election: (!args.disable_leader_election).then_some(LeaderElection {
                namespace: args.leader_election_namespace,
                lease_name: args.leader_election_lease_name,
                identity,
            }),
        },
    };
    let listeners: ListenerConfig = args.listeners.into();
    let config = ServeConfig {
        source,
        xds_address: SocketAddr::new(args.xds_address, args.xds_port),
        tls,
        tls_reload_interval: args.tls_reload_interval,
        xds_client_sans,
        xds_limits,
        dag: DagOptions {
            ingress_class_name: args.ingress_class_name,
            root_namespaces: args.ingressroute_root_namespaces,
            limits: args.limits.into(),
            gateway: GatewayOptions {
                reserved_ports: listeners.reserved_ports(),
                ..args.gateway.into()
            },
        },
        listeners,
        http_address: SocketAddr::new(args.http_address, args.http_port),
        debug_http_address: SocketAddr::new(args.debug_http_address, args.debug_http_port),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(controller::run(config, shutdown_signal()))?;
    Ok(())
}

/// This process's name in the leader-election Lease: the pod name where there is one.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "isobar".to_string());
    format!("{host}-{}", std::process::id())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM handler not installed");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let argv = ["isobar", "serve", "--insecure"].iter().chain(flags);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Serve(args)) => *args,
            other => panic!("{flags:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn the_xds_limit_flags_default_to_the_documented_limits() {
        assert_eq!(
            xds_limits(&serve_args(&[])).unwrap(),
            XdsServerLimits::default()
        );
    }

    #[test]
    fn the_xds_limit_flags_set_the_limits() {
        let args = serve_args(&[
            "--xds-max-concurrent-handshakes=3",
            "--xds-handshake-timeout=1500ms",
            "--xds-max-streams-per-connection=2",
            "--xds-max-message-bytes=4096",
        ]);
        assert_eq!(
            xds_limits(&args).unwrap(),
            XdsServerLimits {
                max_concurrent_handshakes: 3,
                handshake_timeout: Duration::from_millis(1500),
                max_streams_per_connection: 2,
                max_message_bytes: 4096,
            }
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        for flag in [
            "--xds-max-concurrent-handshakes=0",
            "--xds-handshake-timeout=0s",
            "--xds-max-streams-per-connection=0",
            "--xds-max-message-bytes=0",
        ] {
            let argv = ["isobar", "serve", "--insecure", flag];
            assert!(Cli::try_parse_from(argv).is_err(), "{flag} accepted");
        }
    }

    #[test]
    fn client_sans_are_repeatable_and_comma_separated() {
        let args = serve_args(&[
            "--xds-client-san",
            "envoy,envoy.ns",
            "--xds-client-san=envoy.ns.svc",
        ]);
        assert_eq!(args.xds_client_san, ["envoy", "envoy.ns", "envoy.ns.svc"]);
    }

    #[test]
    fn the_kube_client_budget_flags_set_the_budget() {
        let budget =
            |args: ServeArgs| ClientBudget::new(args.kube_client_qps, args.kube_client_burst);
        assert_eq!(budget(serve_args(&[])).unwrap(), ClientBudget::default());
        let args = serve_args(&["--kube-client-qps=2.5", "--kube-client-burst=7"]);
        assert_eq!(budget(args).unwrap(), ClientBudget::new(2.5, 7).unwrap());
        assert!(budget(serve_args(&["--kube-client-qps=0"])).is_err());
        assert!(budget(serve_args(&["--kube-client-burst=0"])).is_err());
    }
}
