//! What an Envoy received over xDS, from its admin `/stats`: the bytes read on the `isobar` cluster's
//! connection and the xDS update counters of CDS, LDS, RDS and every cluster's EDS subscription.

use isobar_harness::envoy::{percent_encode, Envoy};
use isobar_harness::{Error, Result};

/// One `/stats` read: everything the bench counts, in one (anchored RE2) filter, so Envoy walks
/// its stats once. EDS counters are per cluster (`cluster.NAME.update_*`), the static `isobar`
/// cluster's stay at 0.
const FILTER: &str = r"^(cluster\.isobar\.upstream_cx_rx_bytes_total|cluster_manager\.(cds\.update_(attempt|success|rejected)|cluster_(added|modified|removed))|listener_manager\.(lds\.update_(attempt|success|rejected)|listener_(added|modified|removed))|http\.ingress_http\.rds\.[^.]+\.(update_(attempt|success|rejected)|config_reload)|cluster\.[^.]+\.update_(attempt|success|rejected|no_rebuild))$";

/// The three counters of an xDS subscription.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Updates {
    /// `update_attempt`: responses (or, for EDS, clusters a response touched) taken in.
    pub attempt: u64,
    /// `update_success`
    pub success: u64,
    /// `update_rejected`
    pub rejected: u64,
}

impl Updates {
    fn since(self, b: Updates) -> Updates {
        Updates {
            attempt: self.attempt.saturating_sub(b.attempt),
            success: self.success.saturating_sub(b.success),
            rejected: self.rejected.saturating_sub(b.rejected),
        }
    }
}

/// An Envoy's counters (or their difference over a change).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `cluster.isobar.upstream_cx_rx_bytes_total`: bytes read from isobar (TLS, HTTP/2, gRPC).
    pub rx_bytes: u64,
    /// `cluster_manager.cds.*`
    pub cds: Updates,
    /// `listener_manager.lds.*`
    pub lds: Updates,
    /// `http.ingress_http.rds.*.*`, summed over route configurations.
    pub rds: Updates,
    /// `http.ingress_http.rds.*.config_reload`
    pub rds_reloads: u64,
    /// `cluster.*.update_*`, summed over clusters: EDS.
    pub eds: Updates,
    /// `cluster.*.update_no_rebuild`: EDS updates that changed nothing.
    pub eds_no_rebuild: u64,
    /// `cluster_manager.cluster_added + cluster_modified + cluster_removed`
    pub clusters_changed: u64,
    /// `listener_manager.listener_added + listener_modified + listener_removed`
    pub listeners_changed: u64,
}

impl Counts {
    /// `self - before`.
    pub fn since(self, b: Counts) -> Counts {
        Counts {
            rx_bytes: self.rx_bytes.saturating_sub(b.rx_bytes),
            cds: self.cds.since(b.cds),
            lds: self.lds.since(b.lds),
            rds: self.rds.since(b.rds),
            rds_reloads: self.rds_reloads.saturating_sub(b.rds_reloads),
            eds: self.eds.since(b.eds),
            eds_no_rebuild: self.eds_no_rebuild.saturating_sub(b.eds_no_rebuild),
            clusters_changed: self.clusters_changed.saturating_sub(b.clusters_changed),
            listeners_changed: self.listeners_changed.saturating_sub(b.listeners_changed),
        }
    }

    /// Update attempts of all types: what the Envoy took in.
    pub fn updates(&self) -> u64 {
        self.cds.attempt + self.lds.attempt + self.rds.attempt + self.eds.attempt
    }

    fn add(&mut self, name: &str, value: u64) {
        let counter = |u: &mut Updates, field: &str| match field {
            "update_attempt" => u.attempt += value,
            "update_success" => u.success += value,
            "update_rejected" => u.rejected += value,
            _ => {}
        };
        let last = name.rsplit('.').next().unwrap_or_default();
        if name == "cluster.isobar.upstream_cx_rx_bytes_total" {
            self.rx_bytes += value;
        } else if let Some(rest) = name.strip_prefix("cluster_manager.") {
            if rest.starts_with("cds.") {
                counter(&mut self.cds, last);
            } else {
                self.clusters_changed += value;
            }
        } else if let Some(rest) = name.strip_prefix("listener_manager.") {
            if rest.starts_with("lds.") {
                counter(&mut self.lds, last);
            } else {
                self.listeners_changed += value;
            }
        } else if name.starts_with("http.ingress_http.rds.") {
            if last == "config_reload" {
                self.rds_reloads += value;
            } else {
                counter(&mut self.rds, last);
            }
        } else if name.starts_with("cluster.") {
            if last == "update_no_rebuild" {
                self.eds_no_rebuild += value;
            } else {
                counter(&mut self.eds, last);
            }
        }
    }
}

/// Reads `envoy`'s counters.
pub async fn read(envoy: &Envoy) -> Result<Counts> {
    let body = envoy
        .admin_get(&format!("/stats?filter={}", percent_encode(FILTER)))
        .await?;
    let mut counts = Counts::default();
    for line in body.lines() {
        let Some((name, value)) = line.rsplit_once(": ") else {
            continue;
        };
        let value: u64 = value
            .trim()
            .parse()
            .map_err(|_| Error::Invalid(format!("Envoy /stats line {line:?}")))?;
        counts.add(name, value);
    }
    Ok(counts)
}

/// The value of one stat (0 when Envoy has none by that name yet).
pub async fn stat(envoy: &Envoy, name: &str) -> Result<u64> {
    Ok(envoy.stat(name).await?.unwrap_or(0))
}

/// Envoy's stat name of a cluster: its `alt_stat_name`, which isobar derives with `/` → `_`.
pub fn cluster_stat_name(cluster: &str) -> String {
    cluster.replace('/', "_")
}
