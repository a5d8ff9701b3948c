//! Free loopback addresses for servers started on the fly: etcd members, test nodes, bench peers.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The ports handed out: below the kernel's ephemeral range (32768 and up on Linux).
const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// `n` distinct free loopback addresses: ports below the kernel's ephemeral range, each checked
/// free by binding it (all held at once, then released). Whatever binds port 0 meanwhile
/// (clients, origins, other tests) gets a port from the ephemeral range, so it cannot take one
/// of these between this check and the caller's own bind — the race that binding port 0 and
/// releasing it has. A process walks the range from a random start and never hands out a port
/// twice until it has gone round (about 12,000 ports), so two calls never return the same
/// port before either caller binds it (a node's listener and admin listener, say).
pub fn free_loopback_addrs(n: usize) -> Result<Vec<SocketAddr>, String> {
    let mut held = Vec::with_capacity(n);
    let mut tries = 0;
    while held.len() < n {
        tries += 1;
        if tries > 1000 + 10 * n {
            return Err(format!(
                "no {n} free loopback ports in {}..{} after {tries} tries",
                RANGE.start, RANGE.end
            ));
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", next_port())) {
            held.push(listener);
        }
    }
    held.iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read a bound address: {e}"))
}

/// Where this process's walk through [`RANGE`] is; `u32::MAX` until the first call picks a
/// random start.
static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);

/// The next port of this process's walk through [`RANGE`].
fn next_port() -> u16 {
    let span = u32::from(RANGE.end - RANGE.start);
    let _ = CURSOR.compare_exchange(
        u32::MAX,
        fastrand::u32(0..span),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let step = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
    // `step < span`, and `RANGE.start + span` fits in a u16.
    RANGE.start + u16::try_from(step).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addrs_are_distinct_loopback_addresses_below_the_ephemeral_range() {
        let addrs = free_loopback_addrs(6).unwrap();
        let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(ports.iter().all(|p| RANGE.contains(p)), "{ports:?}");
    }

    #[test]
    fn calls_one_after_another_never_repeat_a_port() {
        let mut ports: Vec<u16> = (0..200)
            .map(|_| free_loopback_addrs(1).unwrap()[0].port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 200);
    }

    #[test]
    fn a_returned_address_can_be_bound() {
        let addr = free_loopback_addrs(1).unwrap()[0];
        TcpListener::bind(addr).unwrap();
    }
}
