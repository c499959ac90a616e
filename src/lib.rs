//! isobar: an ingress controller for Kubernetes that programs Envoy over mutually-authenticated xDS.
//!
//! Data flows one way: a source fills a [`store::Snapshot`]; [`dag::build`] turns it into a routing
//! model and per-object statuses; [`xds::translate`] turns that into Envoy resources; the
//! [`xds::cache`] versions them by content; the [`xds::server`] serves them over ADS with mTLS. The
//! [`pipeline`] runs those steps on a builder thread, reusing what did not change ([`dag::Memo`],
//! [`xds::translate::TranslationMemo`]) and handing the cache a diff. [`admin`] shows all of it to
//! operators: the admin gRPC API of `proto/isobar/admin/v1`, `isobar status`, the operator page
//! ([`ops`]) and `isobar diff`.

pub mod admin;
pub mod allocator;
pub mod bootstrap;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod dag;
mod error;
pub mod health;
pub mod heap_trim;
pub mod isolation;
pub mod latency;
pub mod ops;
pub mod parallel;
pub mod pipeline;
#[cfg(test)]
mod proptest_cases;
pub mod source;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tls;
pub mod xds;

pub use error::{Error, Result};
