//! The ops listeners' flags and defaults are Contour's: `/metrics` and health on 0.0.0.0:8000, and
//! `/debug/*` on 127.0.0.1:6060, off the network unless an operator moves it there.

use clap::Parser;
use isobar::cli::{Cli, Command};

fn serve_args(extra: &[&str]) -> Cli {
    let mut argv = vec!["isobar", "serve", "--manifests", "/tmp", "--insecure"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn debug_endpoints_default_to_loopback_6060_and_metrics_to_8000() {
    let Command::Serve(args) = serve_args(&[]).command else {
        panic!("not serve")
    };
    assert_eq!(args.debug_http_address.to_string(), "127.0.0.1");
    assert_eq!(args.debug_http_port, 6060);
    assert_eq!(args.http_address.to_string(), "0.0.0.0");
    assert_eq!(args.http_port, 8000);
}

#[test]
fn the_debug_listener_takes_contours_flags() {
    let cli = serve_args(&[
        "--debug-http-address",
        "10.0.0.1",
        "--debug-http-port",
        "7070",
    ]);
    let Command::Serve(args) = cli.command else {
        panic!("not serve")
    };
    assert_eq!(args.debug_http_address.to_string(), "10.0.0.1");
    assert_eq!(args.debug_http_port, 7070);
}
