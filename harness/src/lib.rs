//! Test harness for isobar: real Envoy, real isobar, real kube-apiserver + etcd and echo
//! backend processes, HTTP(S) requests with chosen Host/SNI, and xDS probes with good and bad
//! TLS clients — all on 127.0.0.1 (backends that Endpoints must list: TEST-NET-1 addresses in
//! network namespaces), synchronised by polling conditions with deadlines (never by sleeping).

pub mod browser;
pub mod certinfo;
pub mod container;
pub mod echo;
pub mod envoy;
pub mod error;
pub mod http;
pub mod isobar;
pub mod kube;
pub mod kube_stack;
pub mod load;
pub mod manifests;
pub mod pki;
pub mod ports;
pub mod process;
pub mod stack;
pub mod tls;
pub mod wait;
pub mod xds_client;
pub mod xds_delta_client;

pub use error::{Error, Result};
pub use kube_stack::{KubeStack, KubeStackOptions};
pub use stack::{Stack, StackOptions, StackPorts};
pub use wait::{try_wait_for, wait_for, wait_for_async};
