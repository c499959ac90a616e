//! isobar (mTLS xDS) and one Envoy, started the way the other benches and the e2e stack do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isobar_harness::envoy::{Envoy, EnvoyOptions};
use isobar_harness::isobar::{
    certgen, write_bootstrap, BootstrapArgs, Isobar, IsobarOptions, IsobarSource, XdsApi,
};
use isobar_harness::ports::free_port;

/// isobar and its Envoy; fields drop in order: Envoy, then isobar.
pub struct Proxy {
    pub envoy: Envoy,
    pub isobar: Isobar,
    /// Envoy's plain HTTP listener.
    pub http: SocketAddr,
}

impl Proxy {
    /// Starts `isobar serve` on `source` (waiting up to `ready` for `/readyz`), then Envoy
    /// bootstrapped to it, with everything under `work`.
    pub async fn start(
        isobar_bin: &Path,
        envoy_bin: &Path,
        source: IsobarSource,
        extra_args: Vec<String>,
        ready: Duration,
        work: &Path,
    ) -> anyhow::Result<Proxy> {
        let certs = certgen(isobar_bin, &work.join("certs"))?;
        let (xds, http) = (free_port()?, free_port()?);
        let isobar = Isobar::start(IsobarOptions {
            bin: isobar_bin.to_path_buf(),
            source,
            certs: Some(certs.clone()),
            xds_port: xds,
            http_port: free_port()?,
            debug_port: free_port()?,
            envoy_http_port: http,
            envoy_https_port: free_port()?,
            work_dir: work.join("isobar"),
            extra_args,
        })
        .await?;
        isobar
            .wait_ready(ready)
            .await
            .map_err(|e| e.with_log(isobar.log_tail(20)))?;
        let bootstrap = work.join("envoy-bootstrap.json");
        // State of the world unless `$ISOBAR_XDS_API` says delta, as for the harness's stacks.
        let mut bootstrap_args = BootstrapArgs::mtls(xds, &certs);
        bootstrap_args.xds_api = XdsApi::from_env()?;
        write_bootstrap(isobar_bin, &bootstrap, &bootstrap_args)?;
        let envoy = Envoy::start(EnvoyOptions::new(
            PathBuf::from(envoy_bin),
            bootstrap,
            work.join("envoy"),
        ))
        .await?;
        Ok(Proxy {
            envoy,
            isobar,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
        })
    }

    /// Fails with the log tail if isobar or Envoy has exited.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        self.isobar.process().ensure_running()?;
        self.envoy.process().ensure_running()?;
        Ok(())
    }

    /// isobar's resident memory, MiB.
    pub fn isobar_rss_mib(&self) -> anyhow::Result<f64> {
        self.isobar.process().ensure_running()?;
        crate::measure::rss_mib(self.isobar.process().pid())
    }
}
