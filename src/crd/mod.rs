//! Contour's custom resources isobar reads: IngressRoute and TLSCertificateDelegation
//! (`contour.heptio.com/v1beta1`). The CRD manifests in `deploy/` are generated from these types.

mod delegation;
pub mod gateway;
mod ingressroute;

pub use delegation::{
    CertificateDelegation, TLSCertificateDelegation, TLSCertificateDelegationSpec,
};
pub use ingressroute::{
    Delegate, HealthCheck, IngressRoute, IngressRouteSpec, IngressRouteStatus, RetryPolicy, Route,
    RouteService, TcpProxy, TimeoutPolicy, Tls, UpstreamValidation, VirtualHost,
};

use kube::CustomResourceExt;

/// The CustomResourceDefinitions, as multi-document YAML (what `deploy/base/crds.yaml` holds).
pub fn crds_yaml() -> String {
    let crds = [IngressRoute::crd(), TLSCertificateDelegation::crd()];
    let mut out = String::from(
        "# Generated from isobar's Rust types by `isobar crds`; a test fails when this file differs.\n",
    );
    for crd in crds {
        out.push_str("---\n");
        // Serialising a CRD can't fail: it is plain data.
        out.push_str(&serde_yaml_ng::to_string(&crd).unwrap_or_default());
    }
    out
}
