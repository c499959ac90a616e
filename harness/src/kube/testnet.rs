//! Choosing a /30 block of TEST-NET-1 (192.0.2.0/24) for a backend network namespace.
//!
//! TEST-NET-1 is reserved for documentation, but some machines use it for real (a CI sandbox's
//! own `eth0` may be 192.0.2.2/24 with its gateway at 192.0.2.1). A block is only taken if
//! none of its four addresses is a local address, a route's gateway, source or broadcast, a
//! known neighbour, or a name server; blocks are tried from the top of the range down, away
//! from where gateways usually sit. A lock file per block makes the choice unique across
//! processes.

use std::collections::HashSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;

use crate::error::{Error, Result};

/// Number of /30 blocks in 192.0.2.0/24.
const BLOCKS: u8 = 64;

/// The four addresses of block `k`: network, host side, namespace side, broadcast.
pub(crate) fn block_addresses(k: u8) -> [Ipv4Addr; 4] {
    [0, 1, 2, 3].map(|i| Ipv4Addr::new(192, 0, 2, 4 * k + i))
}

/// Locks the highest block that no other process holds and the machine does not use.
/// `cleanup(host_ip)` runs first for each locked block, to remove leftovers of a crashed
/// test (which would otherwise look like the machine's own use).
pub(crate) fn lock_free_block(cleanup: impl Fn(Ipv4Addr)) -> Result<(u8, File)> {
    for k in (0..BLOCKS).rev() {
        let path = format!("/tmp/isobar-netns-192.0.2.{}.lock", 4 * k);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {path}"), e))?;
        if file.try_lock().is_err() {
            continue;
        }
        cleanup(block_addresses(k)[1]);
        let taken = addresses_in_use()?;
        if block_addresses(k).iter().all(|a| !taken.contains(a)) {
            return Ok((k, file));
        }
    }
    Err(Error::Invalid(
        "no free /30 block in 192.0.2.0/24: all are in use by other tests or by this machine's network".into(),
    ))
}

/// IPv4 addresses this machine uses or talks to: its own addresses, addresses named in any
/// routing table (gateways, sources, local and broadcast routes), neighbours, name servers.
fn addresses_in_use() -> Result<HashSet<Ipv4Addr>> {
    let mut taken = HashSet::new();
    let addr = ip_output(&["-o", "-4", "addr", "show"])?;
    taken.extend(interface_addresses(&addr));
    for args in [
        &["-4", "route", "show", "table", "all"][..],
        &["-4", "neigh", "show"],
    ] {
        taken.extend(plain_addresses(&ip_output(args)?));
    }
    if let Ok(resolv) = std::fs::read_to_string("/etc/resolv.conf") {
        taken.extend(plain_addresses(&resolv));
    }
    Ok(taken)
}

/// `inet A.B.C.D/N` entries and other bare addresses (e.g. `brd`) of `ip -o -4 addr` output.
fn interface_addresses(text: &str) -> Vec<Ipv4Addr> {
    let mut out = plain_addresses(text);
    let mut tokens = text.split_whitespace();
    while let Some(t) = tokens.next() {
        if t == "inet" {
            if let Some(a) = tokens
                .next()
                .and_then(|c| c.split('/').next()?.parse().ok())
            {
                out.push(a);
            }
        }
    }
    out
}

/// Every whitespace-separated token that is an IPv4 address (prefixes like `/24` excluded).
fn plain_addresses(text: &str) -> Vec<Ipv4Addr> {
    text.split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io(format!("running ip {}", args.join(" ")), e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_local_gateway_broadcast_and_neighbour_addresses() {
        let addr = "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever";
        let got = interface_addresses(addr);
        assert!(got.contains(&Ipv4Addr::new(192, 0, 2, 2)));
        assert!(got.contains(&Ipv4Addr::new(192, 0, 2, 255)));
        let routes = "default via 192.0.2.1 dev eth0 \n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2";
        let got = plain_addresses(routes);
        assert_eq!(
            got,
            [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
    }

    #[test]
    fn blocks_are_slash_30s_inside_test_net_1() {
        assert_eq!(block_addresses(0)[1], Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(block_addresses(63)[3], Ipv4Addr::new(192, 0, 2, 255));
        assert_eq!(block_addresses(5)[2], Ipv4Addr::new(192, 0, 2, 22));
    }
}
