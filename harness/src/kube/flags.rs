//! Command lines of kube-apiserver and kube-controller-manager (as in the reference scripts:
//! loopback only, RBAC, service-account issuer and keys, client-certificate authentication).

use std::path::Path;

use super::local::{KubeClusterOptions, SERVICE_ACCOUNT_ISSUER};
use super::pki::ClusterPki;

pub(crate) fn apiserver_args(
    dir: &Path,
    pki: &ClusterPki,
    etcd_url: &str,
    port: u16,
    opts: &KubeClusterOptions,
    insecure_port_flag: bool,
) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let mut args = vec![
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--etcd-servers={etcd_url}"),
        format!("--tls-cert-file={}", p(&pki.apiserver_cert)),
        format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        format!("--service-account-key-file={}", p(&pki.sa_pub)),
        format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--authorization-mode=RBAC".into(),
        "--allow-privileged=true".into(),
        format!("--cert-dir={}", p(&dir.join("apiserver-certs"))),
    ];
    if insecure_port_flag {
        args.push("--insecure-port=0".into());
    }
    if opts.static_admin_token {
        args.push(format!(
            "--token-auth-file={}",
            p(&dir.join("pki/tokens.csv"))
        ));
    }
    args.extend(opts.extra_apiserver_args.iter().cloned());
    args
}

pub(crate) fn kcm_args(dir: &Path, pki: &ClusterPki, kubeconfig: &Path, port: u16) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let kc = p(kubeconfig);
    vec![
        format!("--kubeconfig={kc}"),
        format!("--authentication-kubeconfig={kc}"),
        format!("--authorization-kubeconfig={kc}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--port=0".into(),
        "--leader-elect=false".into(),
        format!("--cert-dir={}", p(&dir.join("kcm-certs"))),
        format!("--service-account-private-key-file={}", p(&pki.sa_key)),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
        format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
        "--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token".into(),
    ]
}

/// `--insecure-port` exists up to 1.23 (and must be 0 there); later versions reject it.
pub(crate) async fn has_insecure_port_flag(apiserver: &Path) -> bool {
    let out = tokio::process::Command::new(apiserver)
        .arg("--help")
        .output()
        .await;
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).contains("--insecure-port")
            || String::from_utf8_lossy(&o.stderr).contains("--insecure-port")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apiserver_listens_on_loopback_with_rbac_and_the_token_file_only_if_asked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::generate(dir.path()).unwrap();
        let opts = KubeClusterOptions::default();
        let args = apiserver_args(dir.path(), &pki, "http://127.0.0.1:1", 6443, &opts, true);
        for want in [
            "--bind-address=127.0.0.1",
            "--secure-port=6443",
            "--insecure-port=0",
            "--authorization-mode=RBAC",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a.starts_with("--token-auth-file")));
        let opts = KubeClusterOptions {
            static_admin_token: true,
            ..opts
        };
        let args = apiserver_args(dir.path(), &pki, "http://127.0.0.1:1", 6443, &opts, false);
        assert!(args.iter().any(|a| a.starts_with("--token-auth-file=")));
        assert!(!args.iter().any(|a| a.starts_with("--insecure-port")));
    }
}
