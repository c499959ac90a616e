//! The echo backend: answers every request with JSON describing the request it got.

mod backend;
mod cli;
mod server;

pub use backend::EchoBackend;
pub use cli::main_from_args;
pub use server::{echo_json, serve, ECHO_BACKEND_HEADER};
