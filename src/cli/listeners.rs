//! The flags that say where Envoy's listeners bind, shared by `serve` and `diff` so a diff shows
//! exactly what `serve` would send.

use clap::Args;

use crate::xds::translate::ListenerConfig;

#[derive(Debug, Clone, Args)]
pub struct ListenerArgs {
    /// Address Envoy's HTTP listener binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub envoy_service_http_address: String,
    #[arg(long, default_value_t = 8080)]
    pub envoy_service_http_port: u16,
    /// Address Envoy's HTTPS listener binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub envoy_service_https_address: String,
    #[arg(long, default_value_t = 8443)]
    pub envoy_service_https_port: u16,
}

impl From<ListenerArgs> for ListenerConfig {
    fn from(args: ListenerArgs) -> Self {
        ListenerConfig {
            http_address: args.envoy_service_http_address,
            http_port: args.envoy_service_http_port,
            https_address: args.envoy_service_https_address,
            https_port: args.envoy_service_https_port,
        }
    }
}
