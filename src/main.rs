use clap::Parser;

#[global_allocator]
static GLOBAL: isobar::allocator::Global = isobar::allocator::Global;

fn main() -> std::process::ExitCode {
    let cli = isobar::cli::Cli::parse();
    isobar::cli::init_tracing(cli.log_format, &cli.log_level);
    isobar::tls::install_default_provider();
    match isobar::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("isobar: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
