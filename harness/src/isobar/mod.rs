//! Driving the isobar binary through its command line.

mod cli;
mod running;

pub use cli::{certgen, write_bootstrap, BootstrapArgs, CertPaths, XdsApi, XDS_API_ENV};
pub use running::{Isobar, IsobarOptions, IsobarSource};
