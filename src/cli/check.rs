use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::gateway_report;
use crate::dag::gateway::status::GatewayOptions;
use crate::dag::{self, DagOptions, Validity, DEFAULT_INGRESS_CLASS};
use crate::source::manifest_dir::{Loaded, ManifestDir};
use crate::xds::translate::ListenerConfig;

/// `isobar check`: the statuses `serve` would write, offline.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Directory of Kubernetes YAML.
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// The flags of `serve` that change what the DAG holds, for the offline commands.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[arg(long, default_value = DEFAULT_INGRESS_CLASS)]
    pub ingress_class_name: String,
    #[arg(long, value_delimiter = ',')]
    pub ingressroute_root_namespaces: Vec<String>,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub gateway: gateway_report::GatewayArgs,
}

impl BuildArgs {
    /// The DAG's options, with Envoy's listeners where `listeners` puts them (a Gateway listener
    /// can't take their ports).
    pub fn options(self, listeners: &ListenerConfig) -> DagOptions {
        let mut gateway: GatewayOptions = self.gateway.into();
        gateway.reserved_ports = listeners.reserved_ports();
        DagOptions {
            ingress_class_name: self.ingress_class_name,
            root_namespaces: self.ingressroute_root_namespaces,
            limits: self.limits.into(),
            gateway,
        }
    }
}

/// How `check` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `isobar dag`: the DAG as Graphviz dot.
#[derive(Debug, Args)]
pub struct DagArgs {
    /// Directory of Kubernetes YAML.
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
    #[arg(long, default_value = DEFAULT_INGRESS_CLASS)]
    pub ingress_class_name: String,
}

/// Output formats of `dag`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Dot,
}

/// Reads DIR, reporting files that do not parse; exit code 2 when DIR itself can't be read.
pub(super) fn load(dir: &std::path::Path) -> Result<Loaded, ExitCode> {
    let loaded = ManifestDir::new(dir).load().map_err(|e| {
        eprintln!("isobar: error: {e}");
        ExitCode::from(2)
    })?;
    for e in &loaded.errors {
        eprintln!("isobar: {e}");
    }
    Ok(loaded)
}

/// Exit codes: 0 all valid, 1 any object not valid (or a file that does not parse), 2 DIR unreadable.
pub fn run_check(args: CheckArgs) -> ExitCode {
    let loaded = match load(&args.dir) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // The statuses `serve` would write with its listeners where they are by default.
    let options = args.build.options(&ListenerConfig::default());
    let (_, statuses) = dag::build(&loaded.snapshot, &options);
    let gateway_api = dag::gateway::status::gateway_api_status(&loaded.snapshot, &options.gateway);
    match args.output {
        Output::Text => {
            for s in &statuses {
                println!("{s}");
            }
            for line in gateway_report::lines(&gateway_api) {
                println!("{line}");
            }
        }
        Output::Json => {
            let objects: Vec<serde_json::Value> = statuses
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "kind": s.kind.to_string(),
                        "namespace": &*s.object.namespace,
                        "name": &*s.object.name,
                        "status": s.validity.to_string(),
                        "description": s.description,
                    })
                })
                .chain(gateway_report::objects(&gateway_api))
                .collect();
            println!("{}", serde_json::Value::Array(objects));
        }
    }
    if loaded.errors.is_empty()
        && statuses.iter().all(|s| s.validity == Validity::Valid)
        && gateway_report::all_good(&gateway_api)
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the DAG; exit 2 when DIR can't be read.
pub fn run_dag(args: DagArgs) -> ExitCode {
    let loaded = match load(&args.dir) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let options = DagOptions {
        ingress_class_name: args.ingress_class_name,
        ..DagOptions::default()
    };
    let (dag, _) = dag::build(&loaded.snapshot, &options);
    match args.format {
        Format::Dot => print!("{}", dag::dot(&dag)),
    }
    ExitCode::SUCCESS
}
