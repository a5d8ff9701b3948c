//! Network mode (root): a router namespace per region, a namespace per edge node sharing one anycast service address, veth links with `tc netem` delays, addresses from 198.18.0.0/15.
//!
//! ```text
//!   runner (this namespace) ──veth── portico-sim-<pid>-<region>          (router: origins, the
//!                                        │   │    ╲                       region's clients, the
//!                                        │   │     ╲── other routers      route to the service)
//!                                        │  veth (½ in-region RTT each way)
//!                                        │   │
//!                                        │  portico-sim-<pid>-node-<node> (198.19.255.1 on lo)
//! ```
//!
//! Router `r` holds 198.19.r.1 (its origins listen there), reaches node `j` of its region at
//! 198.19.r.(10+j) and every other region's 198.19.b.0/24 over a direct link delayed by half
//! the round trip each way (static routes). Every edge node also holds the service address
//! 198.19.255.1 and listens on it. Nothing here routes that address: BIRD does (see
//! [`crate::bird`]), with BGP sessions over these same links, and installs each router's best
//! route into its kernel table. Link addresses are /30s from 198.18.0.0/16.

use crate::supervise;
use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every namespace this tool creates starts with this, then the runner's pid; `portico-sim
/// clean` deletes those whose runner is gone.
pub const PREFIX: &str = "portico-sim-";

/// The anycast service address every edge node holds.
pub const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);

/// Port of the service address (and of each region's entry).
pub const SERVICE_PORT: u16 = 8080;

/// TLS port of the service address (and of each region's entry).
pub const SERVICE_TLS_PORT: u16 = 8443;

/// Most regions network mode supports.
pub const MAX_REGIONS: usize = 64;

/// Most edge nodes network mode supports.
pub const MAX_NODES: usize = 200;

/// Router address of region `r` (on its `lo`): 198.19.r.1. Its origins listen there.
pub fn home(r: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, r as u8, 1)
}

/// Unicast address of edge node `j` of region `r` (on its `lo`): 198.19.r.(10+j). Its admin
/// listener is there.
pub fn node_addr(r: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, r as u8, 10 + j as u8)
}

/// The two ends of the `m`-th link: a /30 in 198.18.0.0/16.
fn link(m: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = (m * 4) as u32;
    let at = |k: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + base + k);
    (at(1), at(2))
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether network mode can work here: `ip netns add` succeeds (root, iproute2, a kernel that
/// allows it). Creates and deletes one scratch namespace.
pub fn available() -> bool {
    let name = format!("{PREFIX}{}-probe", std::process::id());
    let ok = ip(&["netns", "add", &name]).is_ok();
    let _ = ip(&["netns", "del", &name]);
    ok
}

/// Names of existing `portico-sim-*` namespaces.
pub fn leftovers() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(PREFIX))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The runner that created a `portico-sim-<pid>-…` namespace, by the pid in its name.
pub fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// `portico-sim-*` namespaces whose runner is gone (crashed or SIGKILLed).
pub fn stale() -> Vec<String> {
    leftovers()
        .into_iter()
        .filter(|n| owner(n).is_none_or(|pid| !crate::launch::alive(pid)))
        .collect()
}

/// SIGKILLs every process still inside a namespace, then deletes it (its veth ends, and so
/// their peers, go with it). Returns how many processes it killed.
pub fn delete(name: &str) -> Result<usize> {
    let pids = Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut killed = 0;
    for pid in pids.split_whitespace() {
        let ok = Command::new("kill")
            .args(["-KILL", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        killed += usize::from(ok);
    }
    ip(&["netns", "del", name])?;
    supervise::remove_namespace(name);
    Ok(killed)
}

/// The namespaces and links of one run; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Router namespace of each region, in topology order.
    pub routers: Vec<String>,
    /// Namespace of each edge node, in [`Topology::edge_nodes`] order.
    pub nodes: Vec<String>,
    /// Where each region's entry listens: the router's end of its link to the runner, reachable
    /// from this namespace.
    pub entries: Vec<Ipv4Addr>,
    /// Whether `tc netem` delays are in place. When the kernel has no netem, the links carry
    /// no delay and the origins add the round trips themselves, as in loopback mode.
    pub netem: bool,
    /// The link of edge node `j` to its region's router: (router's end, node's end).
    node_links: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Next hop from router `a` to router `b`, `[a][b]`.
    to_region: Vec<Vec<Option<Ipv4Addr>>>,
    /// Region of each edge node.
    node_region: Vec<usize>,
}

/// A router's kernel route to the service address (`ip route show 198.19.255.1/32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Its next hop.
    pub via: Ipv4Addr,
    /// Who installed it (`bird` when BGP did).
    pub proto: String,
    /// The line as `ip` printed it.
    pub line: String,
}

impl Netns {
    /// Deletes the namespaces of dead runners, then builds this run's, tagged with `tag` (the
    /// runner's pid). No router has a route to the service address yet: BIRD installs it.
    pub fn setup(t: &Topology, tag: &str) -> Result<Netns> {
        for ns in stale() {
            match delete(&ns) {
                Ok(k) => log::warn!(
                    "deleted network namespace {ns} left by an earlier run ({k} processes killed)"
                ),
                Err(e) => log::warn!("cannot delete leftover namespace {ns}: {e}"),
            }
        }
        let n = t.regions.len();
        let edge = t.edge_nodes();
        anyhow::ensure!(
            n <= MAX_REGIONS && edge.len() <= MAX_NODES,
            "network mode supports at most {MAX_REGIONS} regions and {MAX_NODES} edge nodes"
        );
        let mut net = Netns {
            routers: Vec::new(),
            nodes: Vec::new(),
            entries: Vec::new(),
            netem: true,
            node_links: Vec::new(),
            to_region: vec![vec![None; n]; n],
            node_region: edge.iter().map(|e| e.0).collect(),
        };
        let mut m = 0usize;
        let mut next_link = |kind: char| {
            m += 1;
            (
                format!("ps{tag}{kind}{m}a"),
                format!("ps{tag}{kind}{m}b"),
                link(m),
            )
        };
        for (r, region) in t.regions.iter().enumerate() {
            let ns = format!("{PREFIX}{tag}-{}", region.name);
            net.add_namespace(&ns)?;
            net.routers.push(ns.clone());
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/32", home(r)),
                "dev",
                "lo",
            ])?;
            let forward = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ])
                .status()
                .is_ok_and(|s| s.success());
            anyhow::ensure!(forward, "cannot enable forwarding in {ns}");
        }
        for a in 0..n {
            for b in a + 1..n {
                let (la, lb, (aa, ab)) = next_link('l');
                let (na, nb) = (net.routers[a].clone(), net.routers[b].clone());
                ip(&[
                    "link", "add", &la, "netns", &na, "type", "veth", "peer", "name", &lb, "netns",
                    &nb,
                ])?;
                for (ns, dev, addr, peer, from, to) in
                    [(&na, &la, aa, ab, a, b), (&nb, &lb, ab, aa, b, a)]
                {
                    ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
                    ip(&["-n", ns, "link", "set", dev, "up"])?;
                    let dst = format!("198.19.{to}.0/24");
                    let (via, src) = (peer.to_string(), home(from).to_string());
                    ip(&["-n", ns, "route", "add", &dst, "via", &via, "src", &src])?;
                    net.delay(ns, dev, t.rtt(a, b) / 2);
                }
                net.to_region[a][b] = Some(ab);
                net.to_region[b][a] = Some(aa);
            }
        }
        for (j, (r, name)) in edge.iter().enumerate() {
            let ns = format!("{PREFIX}{tag}-node-{name}");
            net.add_namespace(&ns)?;
            net.nodes.push(ns.clone());
            let me = node_addr(*r, j);
            for a in [me, SERVICE] {
                ip(&["-n", &ns, "addr", "add", &format!("{a}/32"), "dev", "lo"])?;
            }
            let router = net.routers[*r].clone();
            let (lr, ln, (ar, an)) = next_link('n');
            ip(&[
                "link", "add", &lr, "netns", &router, "type", "veth", "peer", "name", &ln, "netns",
                &ns,
            ])?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{ar}/30"),
                "dev",
                &lr,
            ])?;
            ip(&["-n", &router, "link", "set", &lr, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{an}/30"), "dev", &ln])?;
            ip(&["-n", &ns, "link", "set", &ln, "up"])?;
            let (me, ar, an) = (me.to_string(), ar.to_string(), an.to_string());
            ip(&[
                "-n",
                &router,
                "route",
                "add",
                &format!("{me}/32"),
                "via",
                &an,
            ])?;
            ip(&["-n", &ns, "route", "add", "default", "via", &ar, "src", &me])?;
            net.delay(&router, &lr, t.rtt(*r, *r) / 2);
            net.delay(&ns, &ln, t.rtt(*r, *r) / 2);
            net.node_links.push((
                ar.parse().expect("an address"),
                an.parse().expect("an address"),
            ));
        }
        for r in 0..n {
            let router = net.routers[r].clone();
            let (lx, lr, (ax, ar)) = next_link('r');
            ip(&[
                "link", "add", &lx, "type", "veth", "peer", "name", &lr, "netns", &router,
            ])?;
            ip(&["addr", "add", &format!("{ax}/30"), "dev", &lx])?;
            ip(&["link", "set", &lx, "up"])?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{ar}/30"),
                "dev",
                &lr,
            ])?;
            ip(&["-n", &router, "link", "set", &lr, "up"])?;
            let dst = format!("198.19.{r}.0/24");
            ip(&["route", "add", &dst, "via", &ar.to_string()])?;
            net.entries.push(ar);
        }
        Ok(net)
    }

    fn add_namespace(&mut self, ns: &str) -> Result<()> {
        ip(&["netns", "add", ns])
            .context("network mode needs root and `ip netns` (see portico-sim clean)")?;
        supervise::add_namespace(ns);
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// `tc netem delay` on `dev` in `ns`; on the first failure, netem is off for the run.
    fn delay(&mut self, ns: &str, dev: &str, d: Duration) {
        if !self.netem || d.is_zero() {
            return;
        }
        let ok = Command::new("ip")
            .args([
                "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
            ])
            .args(["netem", "delay", &format!("{}us", d.as_micros())])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            log::warn!(
                "tc netem is not available here: the links carry no delay, the origins add each region's round trip instead"
            );
            self.netem = false;
        }
    }

    /// Edge node `j`'s link to its router: (the router's end, the node's end).
    pub fn node_link(&self, j: usize) -> (Ipv4Addr, Ipv4Addr) {
        self.node_links[j]
    }

    /// The link between routers `a` and `b`: (`a`'s end, `b`'s end).
    pub fn router_link(&self, a: usize, b: usize) -> Option<(Ipv4Addr, Ipv4Addr)> {
        Some((self.to_region[b][a]?, self.to_region[a][b]?))
    }

    /// Region of edge node `j`.
    pub fn node_region(&self, j: usize) -> usize {
        self.node_region[j]
    }

    /// Router `r`'s kernel route to the service address, if it has one.
    pub fn kernel_route(&self, r: usize) -> Option<KernelRoute> {
        let out = Command::new("ip")
            .args(["-4", "-n", &self.routers[r], "route", "show"])
            .arg(format!("{SERVICE}/32"))
            .stderr(Stdio::null())
            .output()
            .ok()?;
        parse_route(&String::from_utf8_lossy(&out.stdout))
    }

    /// The edge node router `r`'s kernel sends the service address to now, following the next
    /// hops from router to router (`None`: no route, or a loop while BGP converges).
    pub fn routed_to(&self, r: usize) -> Option<usize> {
        let mut at = r;
        for _ in 0..=self.routers.len() {
            let via = self.kernel_route(at)?.via;
            if let Some(j) = (0..self.node_links.len())
                .find(|&j| self.node_region[j] == at && self.node_links[j].1 == via)
            {
                return Some(j);
            }
            at = (0..self.routers.len()).find(|&b| self.to_region[at][b] == Some(via))?;
        }
        None
    }

    /// A command that runs `program` in router namespace `r` (origins, entries).
    pub fn in_router(&self, r: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.routers[r]]).arg(program);
        c
    }

    /// A command that runs `program` in edge node `j`'s namespace.
    pub fn in_node(&self, j: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.nodes[j]]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(&self.routers) {
            if let Err(e) = delete(ns) {
                log::warn!("cannot delete network namespace {ns}: {e}");
            }
        }
    }
}

/// The first route of `ip route show` output that has a next hop.
fn parse_route(text: &str) -> Option<KernelRoute> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
        };
        Some(KernelRoute {
            via: after("via")?.parse().ok()?,
            proto: after("proto").map_or("boot", |p| p).to_string(),
            line: line.trim().to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_routes_are_read_with_their_next_hop_and_origin() {
        let r = parse_route(
            "198.19.255.1 via 198.18.0.14 dev ps1n4a proto bird src 198.19.0.1 metric 32 \n",
        )
        .expect("a route");
        assert_eq!(r.via, Ipv4Addr::new(198, 18, 0, 14));
        assert_eq!(r.proto, "bird");
        assert_eq!(
            parse_route("unreachable 198.19.255.1 proto bird metric 32\n"),
            None
        );
        assert_eq!(parse_route(""), None);
    }

    #[test]
    fn links_are_disjoint_slash_30s_in_198_18() {
        assert_eq!(
            link(0),
            (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2))
        );
        assert_eq!(
            link(1),
            (Ipv4Addr::new(198, 18, 0, 5), Ipv4Addr::new(198, 18, 0, 6))
        );
        assert_eq!(
            link(64),
            (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2))
        );
        assert_eq!(owner("portico-sim-4242-us-east"), Some(4242));
        assert_eq!(owner("portico-sim-x-us-east"), None);
        assert_eq!(node_addr(2, 5), Ipv4Addr::new(198, 19, 2, 15));
    }
}
