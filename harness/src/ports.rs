//! Loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::wait::wait_for;

/// Returns a currently free TCP port on 127.0.0.1.
///
/// The port is released before returning, so another process could take it first; the
/// window is small and the harness accepts it because Envoy and isobar take ports by number.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("reading the free port's address", e))?
        .port();
    Ok(port)
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
    fn free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        wait_port_open(l.local_addr().unwrap(), Duration::from_secs(5)).unwrap();
    }
}
