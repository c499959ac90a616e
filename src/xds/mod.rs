//! From the DAG to Envoy: translation (pure), the versioned cache, and the ADS server.

pub mod cache;
pub mod limits;
pub mod server;
pub mod stats;
mod stream;
pub mod tls_incoming;
pub mod translate;
pub mod type_url;
