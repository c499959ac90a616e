//! Loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::wait::wait_for;

/// Returns a currently free TCP port on 127.0.0.1, from below the kernel's ephemeral range.
///
/// The port is released before returning and is taken later by number (Envoy's listeners, isobar's
/// xDS port). Ports from the ephemeral range (`ip_local_port_range`, where `bind(0)` and every outgoing
/// connection get theirs) could be taken in between by any of the many connections the tests make, and
/// Envoy would then NACK its listener with "Address already in use". Below that range only another
/// explicit choice can collide: each call in this process takes the next candidate of a sequence that
/// starts at a per-process offset, and a candidate that can't be bound is skipped.
pub fn free_port() -> Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = unreserved_range();
    let span = u32::from(high - low) + 1;
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + u16::try_from((offset.wrapping_add(n)) % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            drop(listener);
            return Ok(port);
        }
    }
    // Everything below the ephemeral range is taken: fall back to the kernel's choice.
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("reading the free port's address", e))?
        .port();
    Ok(port)
}

/// Ports from 10000 up to just below the ephemeral range (32768–60999 by default on Linux).
fn unreserved_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 11000 {
        (10000, ephemeral_low - 1)
    } else {
        // An unusual range: use the top of the port space instead.
        (61000, 65000)
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_port_open(addr: SocketAddr, timeout: Duration) -> Result<()> {
    wait_for(timeout, &format!("TCP connections on {addr}"), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let (low, high) = unreserved_range();
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        assert!(ports.iter().all(|p| (low..=high).contains(p)), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        wait_port_open(l.local_addr().unwrap(), Duration::from_secs(5)).unwrap();
    }
}
