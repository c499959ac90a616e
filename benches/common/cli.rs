//! What the bench binaries' command lines share (clap): `--quick` for CI's run, and the `--bench`
//! that `cargo bench` passes to each of them. Counts are read as `10000` or `10_000`; a value that
//! is not a count is refused with a message, never dropped.

#![allow(dead_code)] // each bench binary includes this file and uses part of it

use std::path::PathBuf;

/// The flags of a bench binary CI runs (`#[command(flatten)]`).
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Small sizes and few rounds: CI's run, which keeps the bench building and working (the
    /// figures come from full runs).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    cargo: CargoBench,
}

/// The `--bench` that `cargo bench` passes to every bench binary; it changes nothing.
#[derive(Debug, clap::Args)]
pub struct CargoBench {
    #[arg(long, hide = true)]
    bench: bool,
}

/// `--quick`, and the `--sizes` of a bench measured at several sizes (`#[command(flatten)]`).
#[derive(Debug, clap::Args)]
pub struct Sizes {
    #[command(flatten)]
    pub common: Common,
    /// Sizes to measure, e.g. 1000,10000 (default: the bench's own; small ones with --quick).
    #[arg(long = "sizes", value_name = "SIZES", value_delimiter = ',', value_parser = count)]
    given: Option<Vec<usize>>,
}

impl Sizes {
    /// The sizes given, else `quick` with `--quick`, else `full`.
    pub fn or(&self, full: &[usize], quick: &[usize]) -> Vec<usize> {
        match &self.given {
            Some(given) => given.clone(),
            None if self.common.quick => quick.to_vec(),
            None => full.to_vec(),
        }
    }
}

/// The command line of a bench that takes only `--quick` and `--sizes`; `about` is its `--help`.
pub fn sizes_only(about: &'static str) -> Sizes {
    use clap::{Args as _, FromArgMatches as _};
    // `about` after the flags: they bring their struct's own.
    let command = Sizes::augment_args(clap::Command::new(env!("CARGO_CRATE_NAME"))).about(about);
    Sizes::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// A count such as `10000` or `10_000`.
pub fn count(value: &str) -> Result<usize, String> {
    value
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|e| format!("{value:?} is not a count ({e})"))
}

/// The isobar binary a bench starts when not told: `ISOBAR_BIN` if set and not empty, else the one
/// cargo built with the bench.
pub fn default_isobar() -> PathBuf {
    std::env::var_os("ISOBAR_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_isobar")))
}
