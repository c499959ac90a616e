//! Driving the isobar binary through its command line.

mod cli;
mod running;

pub use cli::{
    add_xds_endpoints, certgen, write_bootstrap, BootstrapArgs, CertPaths, XdsApi, XDS_API_ENV,
};
pub use running::{Isobar, IsobarOptions, IsobarSource};
