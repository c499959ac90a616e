#![cfg(feature = "e2e")]
//! The production manifests of `deploy/`: each kustomization renders (kubectl's built-in
//! kustomize) into the split deployment, every object passes a server-side dry run on a real API
//! server, isobar runs with exactly the RBAC the e2e suite binds it with, and the Envoy
//! container's command line (with the init container's bootstrap) passes `envoy --mode validate`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use isobar_harness::envoy::envoy_binary;
use isobar_harness::isobar::certgen;
use isobar_harness::kube::{parse_yaml_documents, KubeCluster, KubeClusterOptions};
use isobar_harness::kube_stack::{ISOBAR_NAMESPACE, ISOBAR_SERVICE_ACCOUNT};
use serde_json::{json, Value};

use common::isobar_bin;
use common::kube::deploy_dir;

const BASE: &str = "deploy/base";
const HOSTNET: &str = "deploy/overlays/hostnet";
const OVERLAYS: [&str; 2] = [BASE, HOSTNET];
/// The Envoy version the DaemonSet runs (its kustomize `images:` entry).
const ENVOY_VERSION: &str = "1.40.0";
const KUBECTL_HINT: &str = "the deploy tests need kubectl >= 1.21 (built-in kustomize v4+): run \
     ci/install-prerequisites.sh, or `apt-get install kubectl`";

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs kubectl, panicking with an install hint when it is missing.
fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kubectl: {e}; {KUBECTL_HINT}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails loudly unless kubectl embeds a kustomize that knows `patches:` and directory resources.
fn require_modern_kustomize() {
    let out = kubectl(&["version", "--client"]);
    let stdout = text(&out.stdout);
    let major = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Kustomize Version: v"))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        out.status.success() && major.is_some_and(|m| m >= 4),
        "kubectl's kustomize is missing or too old ({}); {KUBECTL_HINT}",
        stdout.trim()
    );
}

/// `kubectl kustomize DIR`, parsed.
fn render(dir: &str) -> Vec<Value> {
    require_modern_kustomize();
    let path = repo_path(dir);
    let out = kubectl(&["kustomize", &path.to_string_lossy()]);
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        text(&out.stderr)
    );
    parse_yaml_documents(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("parsing the rendering of {dir}: {e}"))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod[list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} entry {name} in {pod}"))
}

/// `v` with integral floats as integers: kustomize re-emits crds.yaml's `minimum: 0.0` as `0`.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        _ => v.clone(),
    }
}

/// Asserts two objects are equal up to number representation, naming them (not dumping them).
fn assert_same(rendered: &Value, source: &Value, what: &str) {
    assert!(
        normalized(rendered) == normalized(source),
        "{what}: the rendered {} {} differs from its source",
        source["kind"],
        source["metadata"]["name"]
    );
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Non-root, seccomp, no privilege escalation, read-only root, no capabilities: for every
/// container and init container of every workload.
fn assert_hardened(objects: &[Value]) {
    for workload in objects
        .iter()
        .filter(|o| ["Deployment", "DaemonSet", "Job"].contains(&o["kind"].as_str().unwrap_or("")))
    {
        let pod = &workload["spec"]["template"]["spec"];
        let what = format!("{} {}", workload["kind"], workload["metadata"]["name"]);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{what}"
        );
        let containers = ["containers", "initContainers"]
            .iter()
            .flat_map(|l| pod[*l].as_array().cloned().unwrap_or_default());
        for c in containers {
            let sc = &c["securityContext"];
            let name = &c["name"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{what} {name}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{what} {name}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what} {name}");
            assert!(
                c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(),
                "{what} {name} has no resource requests and limits"
            );
        }
    }
}

/// What both overlays share: everything but the Envoy DaemonSet's network and Envoy's Service.
fn assert_split_deployment(objects: &[Value]) {
    assert_eq!(
        find(objects, "Namespace", ISOBAR_NAMESPACE)["kind"],
        "Namespace"
    );
    let crds = std::fs::read_to_string(deploy_dir().join("crds.yaml")).expect("crds.yaml");
    for crd in parse_yaml_documents(&crds).expect("parsing crds.yaml") {
        let name = crd["metadata"]["name"].as_str().expect("CRD name");
        assert_same(
            find(objects, "CustomResourceDefinition", name),
            &crd,
            "crds.yaml",
        );
    }
    for o in objects.iter().filter(|o| {
        ![
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ]
        .contains(&o["kind"].as_str().unwrap_or(""))
    }) {
        assert_eq!(
            o["metadata"]["namespace"], ISOBAR_NAMESPACE,
            "{} {}",
            o["kind"], o["metadata"]["name"]
        );
    }
    assert_hardened(objects);

    // certgen: its own ServiceAccount, Secrets of isobar-system only.
    let job = find(objects, "Job", "isobar-certgen");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "isobar-certgen");
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_u64().is_some());
    let certgen = container(pod, "containers", "certgen");
    assert_eq!(certgen["image"], "ghcr.io/isobar-dev/isobar:0.1.0");
    assert_eq!(
        strings(&certgen["args"]),
        ["certgen", "--kube", "--namespace=isobar-system"]
    );
    assert_eq!(
        find(objects, "Role", "isobar-certgen")["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update", "patch"]}])
    );
    let binding = find(objects, "RoleBinding", "isobar-certgen");
    assert_eq!(binding["roleRef"]["name"], "isobar-certgen");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "isobar-certgen", "namespace": ISOBAR_NAMESPACE}])
    );

    // isobar: two replicas serving mTLS xDS, in-cluster config.
    let deployment = find(objects, "Deployment", "isobar");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], ISOBAR_SERVICE_ACCOUNT);
    assert!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            .is_array()
    );
    let isobar = container(pod, "containers", "isobar");
    assert_eq!(isobar["image"], "ghcr.io/isobar-dev/isobar:0.1.0");
    let args = strings(&isobar["args"]);
    assert_eq!(
        args,
        [
            "serve",
            "--xds-address=0.0.0.0",
            "--xds-port=8001",
            "--ca-file=/certs/ca.crt",
            "--cert-file=/certs/tls.crt",
            "--key-file=/certs/tls.key",
            "--http-address=0.0.0.0",
            "--http-port=8000",
            "--envoy-service-namespace=isobar-system",
            "--envoy-service-name=envoy",
            "--leader-election-namespace=isobar-system",
        ]
    );
    assert!(!args.iter().any(|a| a.contains("kubeconfig")));
    assert_eq!(
        isobar["env"],
        json!([{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    );
    // Liveness: no isobar task died; readiness: the first complete configuration is served.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(isobar[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(isobar[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // /debug/* stays on the pod's loopback (the default --debug-http-address) and is not exposed.
    assert!(
        !args.iter().any(|a| a.starts_with("--debug-http")),
        "the debug listener must keep its loopback default: {args:?}"
    );
    assert_eq!(
        isobar["ports"],
        json!([
            {"name": "xds", "containerPort": 8001, "protocol": "TCP"},
            {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        ])
    );
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8000");
    assert_eq!(
        isobar["volumeMounts"],
        json!([{"name": "certs", "mountPath": "/certs", "readOnly": true}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "certs", "secret": {"secretName": "isobar-cert", "defaultMode": 0o440}}])
    );
    let xds = find(objects, "Service", "isobar");
    assert_eq!(xds["spec"]["type"], "ClusterIP");
    assert_eq!(
        xds["spec"]["ports"],
        json!([{"name": "xds", "port": 8001, "targetPort": "xds", "protocol": "TCP"}])
    );

    // Envoy: its own permission-less ServiceAccount; bootstrap written by an init container.
    assert_eq!(
        find(objects, "ServiceAccount", "envoy")["automountServiceAccountToken"],
        false
    );
    assert!(
        !objects.iter().any(|o| o["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "envoy"))),
        "nothing may grant permissions to ServiceAccount envoy"
    );
    let daemonset = find(objects, "DaemonSet", "envoy");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "envoy");
    let init = container(pod, "initContainers", "bootstrap");
    assert_eq!(init["image"], "ghcr.io/isobar-dev/isobar:0.1.0");
    assert_eq!(
        strings(&init["args"]),
        [
            "bootstrap",
            "/config/envoy.json",
            "--xds-address=isobar.isobar-system.svc",
            "--xds-port=8001",
            "--envoy-cafile=/certs/ca.crt",
            "--envoy-cert-file=/certs/tls.crt",
            "--envoy-key-file=/certs/tls.key",
            "--admin-address=127.0.0.1",
            "--admin-port=9001",
            "--resources-dir=/config/sds",
        ]
    );
    let envoy = container(pod, "containers", "envoy");
    assert_eq!(envoy["image"], format!("envoyproxy/envoy:v{ENVOY_VERSION}"));
    assert_eq!(strings(&envoy["command"]), ["envoy"]);
    let args = strings(&envoy["args"]);
    assert_eq!(
        args[..8],
        [
            "-c",
            "/config/envoy.json",
            "--service-cluster",
            "isobar",
            "--service-node",
            "$(POD_NAME)",
            "--log-level",
            "info"
        ]
    );
    // Deployed Envoys skip the search for unknown fields; the conformance suite's Envoys, which
    // refuse them, prove there are none.
    assert!(
        args.contains(&"--ignore-unknown-dynamic-fields"),
        "Envoy's args: {args:?}"
    );
    let ports: Vec<(&str, u64)> = envoy["ports"]
        .as_array()
        .expect("Envoy's ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["containerPort"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(ports, [("http", 8080), ("https", 8443), ("health", 8002)]);
    assert_eq!(envoy["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(envoy["readinessProbe"]["httpGet"]["port"], "health");
    let pre_stop = strings(&envoy["lifecycle"]["preStop"]["exec"]["command"]);
    assert!(
        pre_stop
            .last()
            .is_some_and(|s| s.contains("POST /healthcheck/fail")
                && s.contains("/dev/tcp/127.0.0.1/9001")
                && s.contains("sleep 30")),
        "preStop must fail Envoy's health checks, then wait: {pre_stop:?}"
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > 30,
        "the grace period {grace}s must outlast the 30 s drain"
    );
    let mounts: Vec<&str> = envoy["volumeMounts"]
        .as_array()
        .expect("Envoy's mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert_eq!(mounts, ["/config", "/certs"]);
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "config", "emptyDir": {}},
            {"name": "certs", "secret": {"secretName": "envoy-cert", "defaultMode": 0o440}},
        ])
    );
}

#[test]
fn base_renders_the_split_deployment_behind_a_load_balancer() {
    let objects = render(BASE);
    assert_split_deployment(&objects);
    let pod = &find(&objects, "DaemonSet", "envoy")["spec"]["template"]["spec"];
    assert!(pod["hostNetwork"].is_null());
    let service = find(&objects, "Service", "envoy");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
        ])
    );
}

#[test]
fn hostnet_overlay_puts_envoy_on_the_node_network() {
    let objects = render(HOSTNET);
    assert_split_deployment(&objects);
    let pod = &find(&objects, "DaemonSet", "envoy")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let service = find(&objects, "Service", "envoy");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert!(service["spec"]["externalTrafficPolicy"].is_null());
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"},
        ])
    );
    // Everything else is the base's.
    let base = render(BASE);
    assert_eq!(objects.len(), base.len());
    for o in base.iter().filter(|o| o["metadata"]["name"] != "envoy") {
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        assert_same(
            find(&objects, o["kind"].as_str().unwrap_or(""), name),
            o,
            HOSTNET,
        );
    }
}

/// isobar's Deployment runs as the ServiceAccount the e2e suite binds, and each overlay carries
/// exactly the RBAC objects the suite applies (`harness/src/kube_stack.rs` applies
/// `rbac.yaml` of [`deploy_dir`]), and nothing else grants isobar anything.
#[test]
fn isobar_runs_with_the_rbac_the_e2e_suite_binds() {
    let path = deploy_dir().join("rbac.yaml");
    let applied = parse_yaml_documents(&std::fs::read_to_string(&path).expect("rbac.yaml"))
        .expect("parsing rbac.yaml");
    let cluster_role = applied
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("a ClusterRole in rbac.yaml");
    for dir in OVERLAYS {
        let objects = render(dir);
        let pod = &find(&objects, "Deployment", "isobar")["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], ISOBAR_SERVICE_ACCOUNT, "{dir}");
        let name = cluster_role["metadata"]["name"].as_str().expect("name");
        assert_eq!(
            find(&objects, "ClusterRole", name)["rules"],
            cluster_role["rules"],
            "{dir}"
        );
        for o in &applied {
            let kind = o["kind"].as_str().expect("kind");
            let name = o["metadata"]["name"].as_str().expect("name");
            assert_same(find(&objects, kind, name), o, dir);
        }
        let grants_isobar: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["subjects"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["kind"] == "ServiceAccount"
                            && s["name"] == ISOBAR_SERVICE_ACCOUNT
                            && s["namespace"] == ISOBAR_NAMESPACE
                    })
                })
            })
            .collect();
        let from_rbac_yaml = applied.iter().filter(|o| o["subjects"].is_array()).count();
        assert_eq!(
            grants_isobar.len(),
            from_rbac_yaml,
            "{dir}: {grants_isobar:?}"
        );
    }
}

/// Every object of each overlay passes `kubectl apply --dry-run=server` on a real API server
/// (1.20.2, or `$ISOBAR_E2E_KUBECONFIG`'s). The namespace is created for real first: a dry run
/// creates nothing, and namespaced objects need their namespace.
#[tokio::test]
async fn every_object_passes_a_server_side_dry_run() {
    let cluster = KubeCluster::from_env_or_start(KubeClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("starting the API server: {e}"));
    cluster
        .client()
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISOBAR_NAMESPACE}}))
        .await
        .unwrap_or_else(|e| panic!("creating {ISOBAR_NAMESPACE}: {e}"));
    let kubeconfig = cluster.kubeconfig_path().to_string_lossy().into_owned();
    for dir in OVERLAYS {
        let rendered = render(dir);
        let path = repo_path(dir).to_string_lossy().into_owned();
        let out = kubectl(&[
            "apply",
            "--dry-run=server",
            "-k",
            &path,
            "--kubeconfig",
            &kubeconfig,
        ]);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert!(
            out.status.success(),
            "dry run of {dir} failed:\n{stdout}{stderr}\n{}",
            cluster.log_tails(20)
        );
        let accepted: Vec<&str> = stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .collect();
        eprintln!(
            "{dir}: {} of {} objects accepted by the server's dry run\n{}{stderr}",
            accepted.len(),
            rendered.len(),
            accepted.join("\n")
        );
        assert_eq!(accepted.len(), rendered.len(), "{dir}:\n{stdout}{stderr}");
        for o in &rendered {
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            let kind = o["kind"].as_str().unwrap_or("").to_lowercase();
            assert!(
                accepted
                    .iter()
                    .any(|l| l.starts_with(kind.as_str()) && l.contains(&format!("/{name} "))),
                "{dir}: {kind} {name} not in the dry run's output:\n{stdout}"
            );
        }
    }
}

/// The init container's `isobar bootstrap` plus the Envoy container's arguments (including the
/// health listener merged with `--config-yaml`) make a configuration the DaemonSet's Envoy
/// version accepts. Paths under /certs and /config are mapped to a temp dir.
#[test]
fn envoy_command_line_validates_on_real_envoy() {
    let objects = render(BASE);
    let pod = &find(&objects, "DaemonSet", "envoy")["spec"]["template"]["spec"];
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = certgen(&isobar_bin(), &dir.path().join("certs")).expect("isobar certgen");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let map = |arg: &str| -> String {
        [
            ("/certs/ca.crt", &certs.ca_cert),
            ("/certs/tls.crt", &certs.envoy_cert),
            ("/certs/tls.key", &certs.envoy_key),
            ("/config", &config),
        ]
        .iter()
        .fold(arg.to_string(), |a, (from, to)| {
            a.replace(from, &to.to_string_lossy())
        })
        .replace("$(POD_NAME)", "envoy-test")
    };

    let init = container(pod, "initContainers", "bootstrap");
    let out = Command::new(isobar_bin())
        .args(strings(&init["args"]).into_iter().map(map))
        .output()
        .expect("running isobar bootstrap");
    assert!(
        out.status.success(),
        "isobar bootstrap: {}",
        text(&out.stderr)
    );

    let envoy = container(pod, "containers", "envoy");
    let bin = envoy_binary(ENVOY_VERSION).unwrap_or_else(|e| panic!("provisioning Envoy: {e}"));
    let out = Command::new(&bin)
        .args(["--mode", "validate"])
        .args(strings(&envoy["args"]).into_iter().map(map))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && log.lines().any(|l| l.trim_end().ends_with("OK")),
        "Envoy rejected the DaemonSet's command line: {log}"
    );
}
