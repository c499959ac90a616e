//! `isobar status`: a running isobar's objects and connected Envoys, read from its admin API.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};

use crate::admin::v1::{self, admin_client::AdminClient};

/// The debug address `serve` listens on by default.
pub const DEFAULT_DEBUG_ADDRESS: &str = "127.0.0.1:6060";

/// `isobar status`: objects that are not valid first, then connected Envoys and how far behind each
/// is. Exit 0 when every object is valid and every Envoy in sync, 1 otherwise, 2 when the admin API
/// can't be read.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The running isobar's debug address (`serve --debug-http-address/--debug-http-port`).
    #[arg(long, default_value = DEFAULT_DEBUG_ADDRESS)]
    pub debug_address: String,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Reads the admin snapshot at `address` (`HOST:PORT`).
pub async fn fetch_snapshot(address: &str) -> anyhow::Result<v1::Snapshot> {
    let mut client = connect(address).await?;
    Ok(client
        .get_snapshot(v1::GetSnapshotRequest {})
        .await?
        .into_inner())
}

/// A client of the admin API at `address` (`HOST:PORT`), plaintext HTTP/2 as the debug address
/// serves it.
pub async fn connect(address: &str) -> anyhow::Result<AdminClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!("can't reach isobar's admin API at {address}: {e} (is `isobar serve` running, with this --debug-http-port?)")
    })?;
    Ok(AdminClient::new(channel))
}

pub fn run(args: StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("isobar: error: {e}");
            return ExitCode::from(2);
        }
    };
    let snapshot = match runtime.block_on(fetch_snapshot(&args.debug_address)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("isobar: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        Output::Table => print!("{}", table(&snapshot, SystemTime::now())),
        Output::Json => match crate::admin::json::admin_snapshot(&snapshot) {
            Ok(json) => println!("{json:#}"),
            Err(e) => {
                eprintln!("isobar: error: {e}");
                return ExitCode::from(2);
            }
        },
    }
    let all_valid = snapshot
        .objects
        .iter()
        .all(|o| o.status == v1::Validity::Valid as i32);
    if all_valid && snapshot.envoys.iter().all(|e| e.in_sync) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The terminal view of `snapshot`, ages measured from `now`.
pub fn table(snapshot: &v1::Snapshot, now: SystemTime) -> String {
    let mut out = String::new();
    let not_valid = snapshot
        .objects
        .iter()
        .filter(|o| o.status != v1::Validity::Valid as i32)
        .count();
    out.push_str(&format!(
        "OBJECTS: {} ({} not valid)\n",
        snapshot.objects.len(),
        not_valid
    ));
    let rows: Vec<[String; 4]> = snapshot
        .objects
        .iter()
        .map(|o| {
            [
                validity(o.status).to_string(),
                o.kind.clone(),
                format!("{}/{}", o.namespace, o.name),
                o.reason.clone(),
            ]
        })
        .collect();
    columns(&mut out, ["STATUS", "KIND", "OBJECT", "REASON"], &rows);
    for e in &snapshot.source_errors {
        out.push_str(&format!("source error: {e}\n"));
    }
    out.push_str(&format!(
        "\nENVOYS: {} (cache generation {})\n",
        snapshot.envoys.len(),
        snapshot.cache_generation
    ));
    let rows: Vec<[String; 5]> = snapshot
        .envoys
        .iter()
        .map(|e| {
            [
                e.node_id.clone(),
                e.envoy_version.clone(),
                e.address.clone(),
                age(e.connected_since, now),
                lag(e),
            ]
        })
        .collect();
    columns(
        &mut out,
        ["NODE", "ENVOY", "ADDRESS", "CONNECTED", "STATE"],
        &rows,
    );
    if let Some(c) = &snapshot.counters {
        out.push_str(&format!(
            "\nrebuilds {}, ACKs {}, NACKs {}, refused TLS handshakes {}\n",
            c.rebuilds, c.acks, c.nacks, c.tls_handshake_failures
        ));
    }
    if let Some(n) = snapshot.nack_history.last() {
        out.push_str(&format!(
            "last NACK ({} ago, {} from {}): {}\n",
            age(n.at, now),
            n.r#type,
            n.node_id,
            n.message
        ));
    }
    out
}

fn validity(status: i32) -> &'static str {
    match v1::Validity::try_from(status) {
        Ok(v1::Validity::Valid) => "valid",
        Ok(v1::Validity::Invalid) => "invalid",
        Ok(v1::Validity::Orphaned) => "orphaned",
        _ => "unknown",
    }
}

/// `in sync`, or what an Envoy has not ACKed yet and what it rejected.
fn lag(e: &v1::ConnectedEnvoy) -> String {
    if e.in_sync {
        return "in sync".to_string();
    }
    let behind: Vec<String> = e
        .types
        .iter()
        .filter(|t| t.awaiting_ack || !t.last_nack.is_empty())
        .map(|t| {
            if t.last_nack.is_empty() {
                format!(
                    "{} awaiting ACK (sent {}, acked {})",
                    t.r#type, t.sent_version, t.acked_version
                )
            } else {
                format!(
                    "{} NACKed, keeps {}: {}",
                    t.r#type, t.acked_version, t.last_nack
                )
            }
        })
        .collect();
    behind.join("; ")
}

/// `3m12s` since `seconds` (Unix time).
fn age(seconds: i64, now: SystemTime) -> String {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let s = now.saturating_sub(seconds).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// Left-aligned columns, the last one unpadded.
fn columns<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table_puts_what_is_broken_where_it_is_seen() {
        let snapshot = v1::Snapshot {
            objects: vec![
                v1::Object {
                    kind: "IngressRoute".into(),
                    namespace: "team-a".into(),
                    name: "bad".into(),
                    status: v1::Validity::Invalid as i32,
                    reason: "port 70000 out of range".into(),
                },
                v1::Object {
                    kind: "Ingress".into(),
                    namespace: "team-b".into(),
                    name: "good".into(),
                    status: v1::Validity::Valid as i32,
                    reason: "valid Ingress".into(),
                },
            ],
            envoys: vec![v1::ConnectedEnvoy {
                node_id: "envoy-0".into(),
                envoy_version: "1.40.0".into(),
                address: "127.0.0.1:40000".into(),
                connected_since: 1_000,
                types: vec![v1::TypeState {
                    r#type: "route".into(),
                    sent_version: "b".into(),
                    acked_version: "a".into(),
                    awaiting_ack: true,
                    ..Default::default()
                }],
                in_sync: false,
            }],
            ..Default::default()
        };
        let text = table(&snapshot, UNIX_EPOCH + Duration::from_secs(1_192));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "OBJECTS: 2 (1 not valid)");
        assert_eq!(lines[1], "STATUS   KIND          OBJECT       REASON");
        assert_eq!(
            lines[2],
            "invalid  IngressRoute  team-a/bad   port 70000 out of range"
        );
        assert!(
            text.contains(
                "envoy-0  1.40.0  127.0.0.1:40000  3m12s      route awaiting ACK (sent b, acked a)"
            ),
            "{text}"
        );
    }
}
