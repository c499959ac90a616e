//! Real Envoy: provisioning the binary and running it.

mod admin;
pub(crate) mod provision;
mod running;

pub use admin::percent_encode;
pub use provision::{
    cache_dir, default_envoy_version, envoy_binary, reported_version, DEFAULT_ENVOY_VERSION,
    ENVOY_BIN_ENV, ENVOY_VERSION_ENV,
};
pub use running::{Envoy, EnvoyOptions, UnknownFields};
