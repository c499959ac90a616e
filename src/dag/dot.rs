//! The DAG in Graphviz dot: hosts → routes → clusters (and secure hosts → secrets), for `isobar dag` and
//! `/debug/dag`.

use std::fmt::Write;

use super::Dag;

/// Renders `dag` as a dot digraph. Deterministic: the same DAG gives the same text.
pub fn dot(dag: &Dag) -> String {
    let mut out = String::from("digraph DAG {\n  rankdir=\"LR\";\n  node [shape=box];\n");
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    for vhost in dag.virtual_hosts.values() {
        let id = q(&format!("http/{}", vhost.host));
        let _ = writeln!(
            out,
            "  {id} [label={}];",
            q(&format!("http://{}", vhost.host))
        );
        for route in &vhost.routes {
            route_edges(&mut out, &id, &format!("http/{}", vhost.host), route, &q);
        }
    }
    for vhost in dag.secure_virtual_hosts.values() {
        let id = q(&format!("https/{}", vhost.host));
        let _ = writeln!(
            out,
            "  {id} [label={}];",
            q(&format!("https://{}", vhost.host))
        );
        if let Some(secret) = &vhost.secret {
            let _ = writeln!(
                out,
                "  {id} -> {} [style=dashed];",
                q(&format!("secret/{secret}"))
            );
            let _ = writeln!(
                out,
                "  {} [shape=note, label={}];",
                q(&format!("secret/{secret}")),
                q(secret)
            );
        }
        if let Some(clusters) = &vhost.tcp_proxy {
            for c in clusters {
                let _ = writeln!(
                    out,
                    "  {id} -> {} [label={}];",
                    q(&format!("cluster/{}", c.name)),
                    q("tcp")
                );
            }
        }
        for route in &vhost.routes {
            route_edges(&mut out, &id, &format!("https/{}", vhost.host), route, &q);
        }
    }
    for cluster in dag.clusters.values() {
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, label={}];",
            q(&format!("cluster/{}", cluster.name)),
            q(&cluster.name)
        );
    }
    out.push_str("}\n");
    out
}

fn route_edges(
    out: &mut String,
    host_id: &str,
    prefix: &str,
    route: &super::Route,
    q: &dyn Fn(&str) -> String,
) {
    let route_id = q(&format!("{prefix}{}", route.path.path()));
    let _ = writeln!(
        out,
        "  {route_id} [label={}];",
        q(&format!("{:?}", route.path))
    );
    let _ = writeln!(out, "  {host_id} -> {route_id};");
    for c in &route.clusters {
        let _ = writeln!(
            out,
            "  {route_id} -> {} [label={}];",
            q(&format!("cluster/{}", c.name)),
            q(&c.weight.to_string())
        );
    }
}
