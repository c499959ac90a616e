//! From the DAG to Envoy: translation (pure), the versioned cache, and the ADS server.

pub mod cache;
mod cluster_eds;
pub mod content_hash;
mod delta;
pub mod limits;
pub(crate) mod report;
pub mod sequence;
pub mod server;
mod sotw;
pub mod stats;
mod stream;
pub mod tls_incoming;
pub mod translate;
pub mod type_url;
