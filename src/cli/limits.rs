//! The `--max-*` flags `serve` and `check` share, so `check` predicts exactly what `serve` does.

use clap::Args;

use crate::dag::DagLimits;

/// Bounds on what one object can make isobar do; exceeding one makes the object invalid.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// IngressRoutes in one delegation chain, the root included. A delegate deeper than this is
    /// invalid, with the limit named in its status.
    #[arg(long, default_value_t = DagLimits::DEFAULT_MAX_DELEGATION_DEPTH)]
    pub max_delegation_depth: usize,
    /// Routes on one virtual host, from all objects together. The object whose routes would exceed it
    /// is invalid; the host keeps the routes it had.
    #[arg(long, default_value_t = DagLimits::DEFAULT_MAX_ROUTES_PER_VIRTUAL_HOST)]
    pub max_routes_per_virtual_host: usize,
}

impl From<LimitArgs> for DagLimits {
    fn from(args: LimitArgs) -> Self {
        DagLimits {
            max_delegation_depth: args.max_delegation_depth,
            max_routes_per_virtual_host: args.max_routes_per_virtual_host,
        }
    }
}
