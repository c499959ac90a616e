//! The command line: `isobar serve | bootstrap | certgen | version`. Flag names follow Contour's, with
//! Contour's spellings accepted as aliases.

mod bootstrap;
mod certgen;
mod check;
mod diff;
mod gateway_report;
mod limits;
mod listeners;
mod serve;
pub mod status;

use clap::{Parser, Subcommand, ValueEnum};

/// isobar: an ingress controller that programs Envoy over mutually-authenticated xDS.
#[derive(Debug, Parser)]
#[command(name = "isobar", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `isobar=debug`. Also read from RUST_LOG.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: watch a source and serve Envoy over xDS.
    // Boxed: its many flags make it far larger than the other subcommands.
    Serve(Box<serve::ServeArgs>),
    /// Write Envoy's bootstrap configuration.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Generate the CA, isobar's serving certificate and Envoy's client certificate.
    Certgen(certgen::CertgenArgs),
    /// Offline: build the DAG from a directory of YAML and print each object's status (exit 0 when all
    /// are valid, 1 otherwise, 2 when the directory can't be read).
    Check(check::CheckArgs),
    /// Offline: print the DAG built from a directory of YAML, as Graphviz dot.
    Dag(check::DagArgs),
    /// Offline: the Envoy configuration and status changes from OLD_DIR to NEW_DIR (or from what a
    /// running isobar serves, with --against HOST:PORT), per resource, with a unified diff of its
    /// JSON (exit 0 no change, 1 changes, 2 error).
    Diff(diff::DiffArgs),
    /// Ask a running isobar (its admin API on the debug address) which objects are not valid and
    /// how far behind each connected Envoy is (exit 0 when all is valid and in sync, 1 otherwise,
    /// 2 when it can't be asked).
    Status(status::StatusArgs),
    /// Print the CustomResourceDefinitions isobar reads (IngressRoute, TLSCertificateDelegation) as YAML.
    Crds,
    /// Print the version.
    Version,
}

/// Sets up tracing once, for the whole process.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the chosen command.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let done = std::process::ExitCode::SUCCESS;
    match cli.command {
        Command::Serve(args) => serve::run(*args).map(|()| done),
        Command::Bootstrap(args) => bootstrap::run(args).map(|()| done),
        Command::Certgen(args) => certgen::run(args).map(|()| done),
        Command::Check(args) => Ok(check::run_check(args)),
        Command::Dag(args) => Ok(check::run_dag(args)),
        Command::Status(args) => Ok(status::run(args)),
        Command::Diff(args) => Ok(diff::run(args)),
        Command::Crds => {
            print!("{}", crate::crd::crds_yaml());
            Ok(done)
        }
        Command::Version => {
            println!("isobar {}", env!("CARGO_PKG_VERSION"));
            Ok(done)
        }
    }
}
