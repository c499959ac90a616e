//! `isobar diff`: the Envoy configuration change an edit of a directory of manifests causes, per
//! resource, plus the status changes: made for GitOps review in CI.
//!
//! Both sides go through the same build and translation `serve` uses; `--against` takes the old
//! side from a running isobar's admin API instead of a directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use similar::TextDiff;

use super::check::{load, BuildArgs};
use super::listeners::ListenerArgs;
use crate::admin::{json, v1};
use crate::dag::gateway::status::{gateway_api_status, GatewayApiStatus};
use crate::dag::{self, DagOptions, ObjectStatus};
use crate::xds::translate::{self, ListenerConfig};
use crate::xds::type_url;

/// `isobar diff OLD_DIR NEW_DIR`, or `isobar diff --against HOST:PORT NEW_DIR`. Exit 0 when nothing
/// changes, 1 when something does, 2 on an error (a directory or a file that can't be read, an
/// admin API that can't be reached).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// OLD_DIR NEW_DIR, or only NEW_DIR with --against.
    #[arg(num_args = 1..=2, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Compare NEW_DIR with what the isobar whose debug address this is serves now.
    #[arg(long, value_name = "HOST:PORT")]
    pub against: Option<String>,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub listeners: ListenerArgs,
}

/// Resources by (type order, type URL, name): encoded messages.
type ResourceSet = BTreeMap<(usize, &'static str, String), Vec<u8>>;
/// Statuses by `Kind namespace/name`: (status, reason).
type Statuses = BTreeMap<String, (String, String)>;

/// One side of a diff.
#[derive(Debug, Default)]
pub struct Side {
    resources: ResourceSet,
    statuses: Statuses,
}

/// Envoy's order of dependency, as a reviewer reads it: listeners, routes, clusters, endpoints,
/// secrets.
const ORDER: [&str; 5] = [
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::SECRET,
];

fn type_key(url: &str) -> Option<(usize, &'static str)> {
    ORDER.iter().position(|t| *t == url).map(|i| (i, ORDER[i]))
}

impl Side {
    /// What `serve` would hold for `snapshot`.
    pub fn built(
        snapshot: &crate::store::Snapshot,
        options: &DagOptions,
        listeners: &ListenerConfig,
    ) -> Side {
        let (dag, statuses) = dag::build(snapshot, options);
        let resources = translate::translate(&dag, snapshot, listeners)
            .by_type()
            .into_iter()
            .flat_map(|(url, named)| {
                named.into_iter().filter_map(move |(name, any)| {
                    let (i, t) = type_key(url)?;
                    // As the admin API serves them, so both kinds of old side compare alike.
                    let bytes = json::redacted(url, &any.value).unwrap_or(any.value);
                    Some(((i, t, name), bytes))
                })
            })
            .collect();
        let mut statuses = statuses_of(&statuses);
        statuses.extend(gateway_statuses(&gateway_api_status(
            snapshot,
            &options.gateway,
        )));
        Side {
            resources,
            statuses,
        }
    }

    /// What a running isobar serves, as its admin API says.
    pub fn served(resources: v1::Resources, snapshot: &v1::Snapshot) -> Side {
        let resources = resources
            .resources
            .into_iter()
            .filter_map(|r| {
                let (i, t) = type_key(&r.type_url)?;
                Some(((i, t, r.name), r.value))
            })
            .collect();
        let statuses = snapshot
            .objects
            .iter()
            .map(|o| {
                let status = v1::Validity::try_from(o.status)
                    .map(|v| v.as_str_name().to_lowercase())
                    .unwrap_or_default();
                (
                    format!("{} {}/{}", o.kind, o.namespace, o.name),
                    (status, o.reason.clone()),
                )
            })
            .collect();
        Side {
            resources,
            statuses,
        }
    }
}

/// The Gateway API objects' statuses as the admin API lists them (so a diff `--against` a running
/// isobar compares them alike): valid when every condition is in a good state.
fn gateway_statuses(status: &GatewayApiStatus) -> Statuses {
    status
        .summaries()
        .into_iter()
        .map(|s| {
            let validity = if s.good { "valid" } else { "invalid" };
            (
                format!("{} {}/{}", s.kind, s.key.namespace, s.key.name),
                (validity.to_string(), s.reason),
            )
        })
        .collect()
}

fn statuses_of(statuses: &[ObjectStatus]) -> Statuses {
    statuses
        .iter()
        .map(|s| {
            (
                format!("{} {}", s.kind, s.object),
                (s.validity.to_string(), s.description.clone()),
            )
        })
        .collect()
}

/// The report of what changes from `old` to `new`, empty when nothing does.
pub fn report(old: &Side, new: &Side) -> String {
    let mut out = String::new();
    let keys: std::collections::BTreeSet<_> =
        old.resources.keys().chain(new.resources.keys()).collect();
    for key in keys {
        let (_, url, name) = key;
        let before = old.resources.get(key);
        let after = new.resources.get(key);
        if before == after {
            continue;
        }
        let kind = type_url::kind_name(url);
        let sign = match (before, after) {
            (None, Some(_)) => "+",
            (Some(_), None) => "-",
            _ => "~",
        };
        let render = |bytes: Option<&Vec<u8>>| -> String {
            bytes.map_or_else(String::new, |b| match json::envoy_resource(url, b) {
                Ok(v) => format!("{v:#}\n"),
                Err(e) => format!("<{e}>\n"),
            })
        };
        let (a, b) = (render(before), render(after));
        out.push_str(&format!("{sign} {kind} {name}\n"));
        if a == b {
            // Different bytes, same JSON: only field order or unknown fields differ.
            out.push_str("  (the same configuration, encoded differently)\n");
            continue;
        }
        let diff = TextDiff::from_lines(&a, &b);
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("old/{kind}/{name}"), &format!("new/{kind}/{name}"))
            .to_string();
        out.push_str(&text);
    }
    let objects: std::collections::BTreeSet<&String> =
        old.statuses.keys().chain(new.statuses.keys()).collect();
    let mut status_lines = Vec::new();
    for object in objects {
        let (before, after) = (old.statuses.get(object), new.statuses.get(object));
        if before == after {
            continue;
        }
        let show = |s: Option<&(String, String)>| {
            s.map_or_else(|| "absent".to_string(), |(v, r)| format!("{v} ({r})"))
        };
        status_lines.push(format!("  {object}: {} → {}\n", show(before), show(after)));
    }
    if !status_lines.is_empty() {
        out.push_str("status changes:\n");
        out.extend(status_lines);
    }
    out
}

pub fn run(args: DiffArgs) -> ExitCode {
    match sides(args) {
        Ok((old, new)) => {
            let text = report(&old, &new);
            print!("{text}");
            if text.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(code) => code,
    }
}

fn sides(args: DiffArgs) -> Result<(Side, Side), ExitCode> {
    let listeners: ListenerConfig = args.listeners.into();
    let options: DagOptions = args.build.options(&listeners);
    let from_dir = |dir: &PathBuf| -> Result<Side, ExitCode> {
        let loaded = load(dir)?;
        if !loaded.errors.is_empty() {
            // A file that doesn't parse would make the diff lie about what it holds.
            return Err(ExitCode::from(2));
        }
        Ok(Side::built(&loaded.snapshot, &options, &listeners))
    };
    match (&args.against, args.dirs.as_slice()) {
        (None, [old, new]) => Ok((from_dir(old)?, from_dir(new)?)),
        (Some(address), [new]) => {
            let served = served(address).map_err(|e| {
                eprintln!("isobar: error: {e:#}");
                ExitCode::from(2)
            })?;
            Ok((served, from_dir(new)?))
        }
        _ => {
            eprintln!("isobar: error: give OLD_DIR NEW_DIR, or --against HOST:PORT NEW_DIR");
            Err(ExitCode::from(2))
        }
    }
}

/// The old side from the admin API at `address`.
fn served(address: &str) -> anyhow::Result<Side> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = super::status::connect(address).await?;
        let resources = client
            .get_resources(v1::GetResourcesRequest {})
            .await?
            .into_inner();
        let snapshot = client
            .get_snapshot(v1::GetSnapshotRequest {})
            .await?
            .into_inner();
        Ok(Side::served(resources, &snapshot))
    })
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
