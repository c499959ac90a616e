//! Gateway API semantics (GatewayClass, Gateway, HTTPRoute, ReferenceGrant) as pure functions over
//! plain values: host-name intersection, the order of matches, and how Gateway listeners become
//! Envoy listeners. The builder that turns Gateway API objects into DAG contributions is built on
//! these.

pub mod attach;
pub mod backend_ref;
pub mod conditions;
pub mod grant;
pub mod hostname;
pub mod listener;
pub mod model;
pub mod precedence;
pub mod program;
pub mod routes;
pub mod schema;
pub mod status;
pub mod unserved;
pub mod validate;
