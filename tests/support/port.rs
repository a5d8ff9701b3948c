//! Free loopback addresses for servers a test starts: below the kernel's ephemeral range, so
//! that nothing binding port 0 meanwhile can take them (see `portico_store::free_loopback_addrs`).

use std::net::SocketAddr;

/// A free loopback address for a server the test starts next (a node, an etcd member).
/// Clients and origins bind port 0 instead.
pub fn free_addr() -> SocketAddr {
    free_addrs(1)[0]
}

/// `n` distinct free loopback addresses.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    portico_store::free_loopback_addrs(n).unwrap_or_else(|e| panic!("{e}"))
}
