//! Where everything of a run listens: loopback ports from `--base-port` (or free ones), or network mode's namespace addresses.

use crate::netns;
use crate::topology::Topology;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// Loopback addresses of one run: `127.0.0.1:BASE+offset`, or free ports chosen at random below
/// the ephemeral range. Those are held (listening), so no two are the same and no other run
/// choosing at the same time takes one, until [`Layout::release`] hands each to what listens
/// on it.
struct Ports {
    base: Option<u16>,
    held: HashMap<SocketAddr, TcpListener>,
}

impl Ports {
    fn addr(&mut self, offset: usize) -> Result<SocketAddr> {
        match self.base {
            Some(b) => {
                let port = u16::try_from(usize::from(b) + offset)
                    .context("--base-port too high for this many regions, nodes and origins")?;
                Ok(SocketAddr::from(([127, 0, 0, 1], port)))
            }
            None => {
                // Below the ephemeral range, so no outgoing connection of any process (the
                // nodes' probes, the clients) can take the port before its listener is up.
                let low = ephemeral_low();
                if low > 11_000 {
                    for _ in 0..500 {
                        let port = fastrand::u16(10_000..low);
                        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                            let a = SocketAddr::from(([127, 0, 0, 1], port));
                            self.held.insert(a, l);
                            return Ok(a);
                        }
                    }
                }
                let l = TcpListener::bind("127.0.0.1:0")?;
                let a = l.local_addr()?;
                self.held.insert(a, l);
                Ok(a)
            }
        }
    }
}

/// First port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// One origin of the simulation.
#[derive(Debug, Clone)]
pub struct OriginInfo {
    /// Its name.
    pub name: String,
    /// Index of its region.
    pub region: usize,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its control listener (`PUT /fault`).
    pub control: SocketAddr,
}

/// Where everything of a run listens (the same layout in both launch modes).
pub(crate) struct Layout {
    /// Each origin's listener and control listener.
    pub(crate) origins: Vec<(SocketAddr, SocketAddr)>,
    /// Each edge node's proxy and admin listener.
    pub(crate) nodes: Vec<(SocketAddr, SocketAddr)>,
    /// Each edge node's TLS listener (`--tls-listen`).
    pub(crate) tls_nodes: Vec<SocketAddr>,
    /// Each region's entry (loopback mode; network mode's are in [`Netns::entries`]).
    pub(crate) entries: Vec<SocketAddr>,
    /// Each region's TLS entry, forwarding to the nodes' TLS listeners (loopback mode).
    pub(crate) tls_entries: Vec<SocketAddr>,
    /// Each region's etcd member: client and peer listener.
    pub(crate) etcd: Vec<(SocketAddr, SocketAddr)>,
    /// Free ports chosen at random, still held: see [`Layout::release`].
    held: Mutex<HashMap<SocketAddr, TcpListener>>,
}

impl Layout {
    /// Loopback mode: entries at BASE.., nodes at BASE+10.., admins at BASE+20.., origins at
    /// BASE+30.., origin controls at BASE+40.., etcd clients at BASE+50.., etcd peers at
    /// BASE+60.., TLS entries at BASE+80.., the nodes' TLS listeners at BASE+90.. (or
    /// system-chosen ports; BASE+70 is the runner's control listener).
    pub(crate) fn loopback(t: &Topology, base: Option<u16>) -> Result<Layout> {
        let mut p = Ports {
            base,
            held: HashMap::new(),
        };
        let origins = (0..t.origins().len())
            .map(|k| Ok((p.addr(30 + k)?, p.addr(40 + k)?)))
            .collect::<Result<_>>()?;
        let nodes = (0..t.edge_nodes().len())
            .map(|j| Ok((p.addr(10 + j)?, p.addr(20 + j)?)))
            .collect::<Result<_>>()?;
        let tls_nodes = (0..t.edge_nodes().len())
            .map(|j| p.addr(90 + j))
            .collect::<Result<_>>()?;
        let entries = (0..t.regions.len())
            .map(|r| p.addr(r))
            .collect::<Result<_>>()?;
        let tls_entries = (0..t.regions.len())
            .map(|r| p.addr(80 + r))
            .collect::<Result<_>>()?;
        let etcd = (0..t.regions.len())
            .map(|r| Ok((p.addr(50 + r)?, p.addr(60 + r)?)))
            .collect::<Result<_>>()?;
        Ok(Layout {
            origins,
            nodes,
            tls_nodes,
            entries,
            tls_entries,
            etcd,
            held: Mutex::new(p.held),
        })
    }

    /// Stops holding `addrs` (free ports chosen at random) so what listens on them can bind:
    /// called just before each process or service starts, so another run choosing ports
    /// meanwhile cannot take them (the rest are let go with the layout).
    pub(crate) fn release(&self, addrs: &[SocketAddr]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for a in addrs {
            held.remove(a);
        }
    }

    /// Network mode: origins and etcd members on their router's address, every node's proxy
    /// on the service address inside its namespace (TLS on [`netns::SERVICE_TLS_PORT`]), its admin on its own
    /// address.
    pub(crate) fn netns(t: &Topology) -> Layout {
        Layout {
            origins: t
                .origins()
                .iter()
                .enumerate()
                .map(|(k, (r, _))| {
                    (
                        SocketAddr::from((netns::home(*r), 9001 + k as u16)),
                        SocketAddr::from((netns::home(*r), 9101 + k as u16)),
                    )
                })
                .collect(),
            nodes: t
                .edge_nodes()
                .iter()
                .enumerate()
                .map(|(j, (r, _))| {
                    (
                        SocketAddr::from((netns::SERVICE, netns::SERVICE_PORT)),
                        SocketAddr::from((netns::node_addr(*r, j), 9901)),
                    )
                })
                .collect(),
            tls_nodes: vec![
                SocketAddr::from((netns::SERVICE, netns::SERVICE_TLS_PORT));
                t.edge_nodes().len()
            ],
            entries: Vec::new(),
            tls_entries: Vec::new(),
            held: Mutex::default(),
            etcd: (0..t.regions.len())
                .map(|r| {
                    (
                        SocketAddr::from((netns::home(r), 2379)),
                        SocketAddr::from((netns::home(r), 2380)),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_layout_gives_each_region_an_etcd_member_after_the_origins() {
        let t = Topology::parse(include_str!("../../../deploy/sim/topology.json")).expect("valid");
        let l = Layout::loopback(&t, Some(8100)).unwrap();
        let ports: Vec<(u16, u16)> = l.etcd.iter().map(|(c, p)| (c.port(), p.port())).collect();
        assert_eq!(ports, [(8150, 8160), (8151, 8161), (8152, 8162)]);
        let tls: Vec<u16> = l
            .tls_entries
            .iter()
            .chain(&l.tls_nodes)
            .map(|a| a.port())
            .collect();
        assert_eq!(
            tls,
            [8180, 8181, 8182, 8190, 8191, 8192, 8193],
            "four nodes"
        );
        let n = Layout::netns(&t);
        assert_eq!(n.etcd[2].0, SocketAddr::from((netns::home(2), 2379)));
    }

    #[test]
    fn free_ports_stay_held_until_released_to_what_listens_on_them() {
        let t = Topology::parse(include_str!("../../../deploy/sim/topology.json")).expect("valid");
        let l = Layout::loopback(&t, None).unwrap();
        let (etcd, _) = l.etcd[0];
        let (node, _) = l.nodes[0];
        assert!(
            TcpListener::bind(etcd).is_err(),
            "held: no other run can take it"
        );
        l.release(&[etcd]);
        let bound = TcpListener::bind(etcd).expect("released: the member can bind it");
        assert!(
            TcpListener::bind(node).is_err(),
            "the others are still held"
        );
        drop(bound);
        drop(l);
        TcpListener::bind(node).expect("let go with the layout");
    }
}
