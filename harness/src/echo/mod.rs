//! The echo backend: answers every request with JSON describing the request it got.

mod backend;
mod cli;
mod server;
mod websocket;

pub use backend::EchoBackend;
pub use cli::main_from_args;
pub use server::{
    echo_json, serve, ECHO_ATTEMPT_HEADER, ECHO_BACKEND_HEADER, ECHO_COUNT_PATH,
    ECHO_DELAY_MS_HEADER, ECHO_FAIL_TIMES_HEADER, ECHO_KEY_HEADER, ECHO_STATUS_HEADER,
};
pub use websocket::{websocket_echo, WebSocketOutcome};
