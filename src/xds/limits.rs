//! What one client of the xDS port can make isobar spend. The port is reachable by anything that can
//! reach the controller's pod, so these bounds hold before a client has proven who it is.

use std::time::Duration;

/// Bounds on the xDS server (`isobar serve --xds-*`); [`Default`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsServerLimits {
    /// TLS handshakes computed at once (`--xds-max-concurrent-handshakes`, default 64): from a
    /// complete ClientHello to the end of the handshake, where the CPU goes (key exchange,
    /// signatures, chain verification). A connection that has not sent its ClientHello holds no slot,
    /// so idle connections cannot keep a real Envoy out; they cost a socket until the timeout.
    pub max_concurrent_handshakes: usize,
    /// How long a connection has, from accept, to complete its TLS handshake, including any wait for
    /// a handshake slot (`--xds-handshake-timeout`, default 10s).
    pub handshake_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once (`--xds-max-streams-per-connection`,
    /// default 16). Envoy opens one ADS stream per connection.
    pub max_streams_per_connection: u32,
    /// Largest gRPC message isobar accepts, i.e. a DiscoveryRequest (`--xds-max-message-bytes`,
    /// default 16 MiB: the resource names of some 400,000 clusters). Responses are not limited:
    /// their size is the configuration's.
    pub max_message_bytes: usize,
}

impl Default for XdsServerLimits {
    fn default() -> Self {
        XdsServerLimits {
            max_concurrent_handshakes: 64,
            handshake_timeout: Duration::from_secs(10),
            max_streams_per_connection: 16,
            max_message_bytes: 16 << 20,
        }
    }
}
