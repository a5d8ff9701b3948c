//! Network mode (root): one network namespace per region, a veth link between every pair with `tc netem` delays, addresses from 198.18.0.0/15.

use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

/// Every namespace this tool creates starts with this; `portico-sim clean` deletes them all.
pub const PREFIX: &str = "portico-sim-";

/// The address of region `r` inside its namespace (on `lo`): 198.19.0.(r+1). Every node and
/// origin of the region listens on it, and every other namespace routes to it over the
/// direct link, so one Portico config serves all nodes.
pub fn home(r: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, r as u8 + 1)
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
    let name = format!("{PREFIX}probe-{}", std::process::id());
    let ok = ip(&["netns", "add", &name]).is_ok();
    let _ = ip(&["netns", "del", &name]);
    ok
}

/// Names of existing `portico-sim-*` namespaces.
pub fn leftovers() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
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

/// Deletes a namespace (its veth ends, and so their peers, go with it).
pub fn delete(name: &str) -> Result<()> {
    ip(&["netns", "del", name])
}

/// The namespaces and links of one run; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Namespace of each region, in topology order.
    pub names: Vec<String>,
    /// Whether `tc netem` delays are in place. When the kernel has no netem, the links carry
    /// no delay and the origins add the round trips themselves, as in loopback mode.
    pub netem: bool,
}

impl Netns {
    /// Creates `portico-sim-<tag>-<region>` for every region, links every pair with a veth
    /// pair delayed by half the round trip each way, delays `lo` by half the in-region round
    /// trip, and links the current namespace to each region (no delay) for the runner.
    pub fn setup(t: &Topology, tag: &str) -> Result<Netns> {
        let n = t.regions.len();
        anyhow::ensure!(n <= 16, "network mode supports at most 16 regions, not {n}");
        let mut net = Netns {
            names: t
                .regions
                .iter()
                .map(|r| format!("{PREFIX}{tag}-{}", r.name))
                .collect(),
            netem: true,
        };
        for (r, ns) in net.names.clone().iter().enumerate() {
            if leftovers().contains(ns) {
                delete(ns)?;
            }
            ip(&["netns", "add", ns])
                .context("network mode needs root and `ip netns` (see portico-sim clean)")?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/32", home(r)),
                "dev",
                "lo",
            ])?;
            net.delay(ns, "lo", t.rtt(r, r) / 2);
        }
        let mut k = 0usize;
        for a in 0..n {
            for b in a + 1..n {
                let (na, nb) = (&net.names[a].clone(), &net.names[b].clone());
                let (la, lb) = (format!("ps{tag}m{k}a"), format!("ps{tag}m{k}b"));
                let (aa, ab) = (
                    Ipv4Addr::new(198, 18, k as u8, 1),
                    Ipv4Addr::new(198, 18, k as u8, 2),
                );
                ip(&[
                    "link", "add", &la, "netns", na, "type", "veth", "peer", "name", &lb, "netns",
                    nb,
                ])?;
                for (ns, dev, addr, peer, from, to) in [
                    (na, &la, aa, ab, home(a), home(b)),
                    (nb, &lb, ab, aa, home(b), home(a)),
                ] {
                    ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
                    ip(&["-n", ns, "link", "set", dev, "up"])?;
                    ip(&[
                        "-n",
                        ns,
                        "route",
                        "add",
                        &format!("{to}/32"),
                        "via",
                        &peer.to_string(),
                        "src",
                        &from.to_string(),
                    ])?;
                    net.delay(ns, dev, t.rtt(a, b) / 2);
                }
                k += 1;
            }
        }
        for r in 0..n {
            let ns = net.names[r].clone();
            let (lr, lx) = (format!("ps{tag}r{r}"), format!("ps{tag}r{r}x"));
            let (ar, ax) = (
                Ipv4Addr::new(198, 18, 128 + r as u8, 1),
                Ipv4Addr::new(198, 18, 128 + r as u8, 2),
            );
            ip(&[
                "link", "add", &lr, "type", "veth", "peer", "name", &lx, "netns", &ns,
            ])?;
            ip(&["addr", "add", &format!("{ar}/30"), "dev", &lr])?;
            ip(&["link", "set", &lr, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{ax}/30"), "dev", &lx])?;
            ip(&["-n", &ns, "link", "set", &lx, "up"])?;
            ip(&[
                "route",
                "add",
                &format!("{}/32", home(r)),
                "via",
                &ax.to_string(),
            ])?;
        }
        Ok(net)
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

    /// A command that runs `program` inside region `r`'s namespace.
    pub fn command(&self, r: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[r]]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = delete(ns);
        }
    }
}
