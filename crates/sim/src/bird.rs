//! Network mode's anycast, routed by BIRD 2 as `deploy/anycast/` recipes it for production: a `bird` in every edge node's namespace and in every router's, eBGP over the veth links, the announcement gated by the shipped health check.
//!
//! ```text
//!  node namespace                          router namespace of its region
//!  ┌───────────────────────────────┐       ┌─────────────────────────────────────────────┐
//!  │ portico  :8080 on 198.19.255.1 │       │ bird: eBGP to its nodes and to every other  │
//!  │ healthcheck.sh ─GET /healthz   │       │ router, best route → kernel (proto bird)    │
//!  │   └ birdc enable|disable ──┐   │ veth  │                                             │
//!  │ bird (deploy/anycast/      ◀┘  │═BGP══▶│ local-pref by the topology's round trips:   │
//!  │   bird.conf, its addresses)    │ +BFD  │ the nearest announced node wins             │
//!  └───────────────────────────────┘       └─────────────────────────────────────────────┘
//! ```
//!
//! Each edge node's BIRD runs the shipped `bird.conf` itself, with this node's addresses and AS
//! numbers put in (and two sim timers added, [`node_config`]): the static protocol
//! `portico_anycast`, disabled at start, exported to the one BGP session `upstream1` with its
//! router, BFD on. The shipped `healthcheck.sh` runs beside it in the node's namespace, polls
//! the node's `/healthz` and runs `birdc -s SOCKET enable|disable portico_anycast`.
//!
//! Each router's BIRD ([`router_config`]) has an eBGP session with every edge node of its
//! region and with every other router (the links between routers are a full mesh), BFD on
//! all of them. It gives every route to the service address a local preference from the
//! node the route ends at (the last AS of its path): highest for the node nearest to this
//! region in the topology's round trips, in [`Topology::nodes_by_distance`] order. So the best
//! route leads to the nearest announced node whichever router passed it on, the shortest AS
//! path (the direct neighbour) breaks ties, and the `kernel` protocol installs it. A node that
//! fails its health check is withdrawn by its BIRD; a node whose BIRD dies is dropped by the
//! router when the session closes, or by BFD (300 ms) when it stops answering.
//!
//! AS numbers: router `r` is 64512 + r, edge node `j` 64600 + j (private 16-bit ASes).

use crate::netns::{self, Netns};
use crate::procs::{Launcher, Proc};
use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The static protocol that announces the service address (the recipe's name).
pub const PROTOCOL: &str = "portico_anycast";

/// The shipped BIRD config of an edge node.
pub const RECIPE: &str = include_str!("../../../deploy/anycast/bird.conf");

/// The shipped health check.
pub const HEALTHCHECK: &str = include_str!("../../../deploy/anycast/healthcheck.sh");

/// How often each node's health check polls `/healthz` (the recipe's `INTERVAL`; production
/// uses 1 s, the simulation polls as often as loopback mode's watcher).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long the health check waits for `/healthz` (`TIMEOUT`).
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(400);

/// Good checks in a row before a node is announced (`RISE`, the recipe's default).
pub const RISE: u32 = 3;

/// Failed checks in a row before a node is withdrawn (`FALL`, the recipe's default).
pub const FALL: u32 = 1;

/// The AS of router `r`.
pub fn router_as(r: usize) -> u32 {
    64512 + r as u32
}

/// The AS of edge node `j`.
pub fn node_as(j: usize) -> u32 {
    64600 + j as u32
}

/// The edge node whose AS is `asn`, among `nodes`.
pub fn node_of_as(asn: u32, nodes: usize) -> Option<usize> {
    let j = usize::try_from(asn.checked_sub(64600)?).ok()?;
    (j < nodes).then_some(j)
}

/// Where `bird` and `birdc` are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The daemon.
    pub bird: PathBuf,
    /// Its client (the health check's).
    pub birdc: PathBuf,
}

/// `name` on `PATH` or in the sbin directories (Debian puts BIRD in /usr/sbin).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// BIRD 2's `bird` and `birdc`, or an error saying what to install.
pub fn tools() -> Result<Tools> {
    match (tool("bird"), tool("birdc")) {
        (Some(bird), Some(birdc)) => Ok(Tools { bird, birdc }),
        _ => bail!(
            "network mode routes the anycast address with BIRD 2: install it (apt-get install bird2)"
        ),
    }
}

/// Replaces the one occurrence of `from` in `text`; an error naming it otherwise, so a change
/// of the recipe that the simulation no longer understands fails loudly.
fn put(text: &mut String, from: &str, to: &str) -> Result<()> {
    let n = text.matches(from).count();
    anyhow::ensure!(
        n == 1,
        "deploy/anycast/bird.conf: expected `{from}` once, found it {n} times (the simulation fills in the recipe by these lines)"
    );
    *text = text.replacen(from, to, 1);
    Ok(())
}

/// One edge node's BGP parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePeer {
    /// The node's own unicast address (router id).
    pub router_id: Ipv4Addr,
    /// The node's end of its link to the router.
    pub local: Ipv4Addr,
    /// The node's AS.
    pub local_as: u32,
    /// The router's end of the link.
    pub neighbor: Ipv4Addr,
    /// The router's AS.
    pub neighbor_as: u32,
}

/// An edge node's BIRD config: the shipped `recipe` with the node's router id, session
/// addresses and AS numbers put in, logging to stderr (the node's BIRD log under `logs/`),
/// and two timers added to its BGP session so that a session that failed (a region taken
/// down and back) comes back within seconds rather than BIRD's default minute: `connect delay
/// time 1` and `error wait time 1, 5`. Everything else — the static protocol, its export
/// filter, BFD, hold and keepalive times — is the recipe's. Fails when the recipe no longer
/// has the lines it fills in, or announces another address than [`netns::SERVICE`].
pub fn node_config(recipe: &str, p: &NodePeer) -> Result<String> {
    let mut c = recipe.to_string();
    let define = format!("define PORTICO_ANYCAST = {}/32;", netns::SERVICE);
    anyhow::ensure!(
        c.lines().any(|l| l.trim() == define),
        "deploy/anycast/bird.conf: no `{define}` (the simulation's service address)"
    );
    put(&mut c, "log syslog all;", "log stderr all;")?;
    put(
        &mut c,
        "router id 192.0.2.10;",
        &format!("router id {};", p.router_id),
    )?;
    put(
        &mut c,
        "local 192.0.2.10 as 64512;",
        &format!("local {} as {};", p.local, p.local_as),
    )?;
    put(
        &mut c,
        "neighbor 192.0.2.1 as 64511;",
        &format!("neighbor {} as {};", p.neighbor, p.neighbor_as),
    )?;
    put(
        &mut c,
        "  bfd on;\n",
        "  bfd on;\n  connect delay time 1;           # portico-sim: reconnect fast\n  error wait time 1, 5;\n",
    )?;
    Ok(format!(
        "# Generated by portico-sim from deploy/anycast/bird.conf for this edge node.\n{c}"
    ))
}

/// The link addresses BGP runs over.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Edge node `j`'s link to its router: (the router's end, the node's end).
    pub nodes: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// The link between routers `a` and `b`, `[a][b]`: (`a`'s end, `b`'s end).
    pub routers: Vec<Vec<Option<(Ipv4Addr, Ipv4Addr)>>>,
}

impl Links {
    /// The links of a run's namespaces.
    pub fn of(net: &Netns) -> Links {
        let n = net.routers.len();
        Links {
            nodes: (0..net.nodes.len()).map(|j| net.node_link(j)).collect(),
            routers: (0..n)
                .map(|a| (0..n).map(|b| net.router_link(a, b)).collect())
                .collect(),
        }
    }
}

/// Router `r`'s BIRD config: eBGP to every edge node of its region and to every other router,
/// BFD on each session, local preference by the node a route ends at (nearest first), and the
/// best route to the service address exported to the kernel with the router's own address as
/// its source (so answers come back to 198.19.r.1, as from the origins' clients).
pub fn router_config(t: &Topology, links: &Links, r: usize) -> String {
    let me = netns::home(r);
    let svc = netns::SERVICE;
    let edge = t.edge_nodes();
    let order = t.nodes_by_distance(r);
    let mut prefs = String::new();
    for (rank, &j) in order.iter().enumerate() {
        let (nr, name) = &edge[j];
        prefs.push_str(&format!(
            "    {}: bgp_local_pref = {};   # {name} ({}, {} ms away)\n",
            node_as(j),
            1000 + order.len() - rank,
            t.regions[*nr].name,
            t.rtt(r, *nr).as_millis()
        ));
    }
    let mut sessions = String::new();
    for (j, (nr, name)) in edge.iter().enumerate() {
        if *nr != r {
            continue;
        }
        let (local, neighbor) = links.nodes[j];
        sessions.push_str(&format!(
            "protocol bgp node{j} from sim {{\n  description \"edge node {name}\";\n  local {local} as {};\n  neighbor {neighbor} as {};\n  ipv4 {{ export none; }};   # an edge node takes no routes\n}}\n\n",
            router_as(r),
            node_as(j)
        ));
    }
    for (b, region) in t.regions.iter().enumerate() {
        let Some((local, neighbor)) = links.routers[r][b] else {
            continue;
        };
        sessions.push_str(&format!(
            "protocol bgp router{b} from sim {{\n  description \"router of {}\";\n  local {local} as {};\n  neighbor {neighbor} as {};\n}}\n\n",
            region.name,
            router_as(r),
            router_as(b)
        ));
    }
    format!(
        r#"# Generated by portico-sim: the router of region {region}.
log stderr all;
router id {me};

define PORTICO_ANYCAST = {svc}/32;

protocol device {{
  scan time 10;
}}

# The best route to the service address goes to this namespace's kernel table.
protocol kernel {{
  ipv4 {{
    import none;
    export filter {{
      if net = PORTICO_ANYCAST then {{ krt_prefsrc = {me}; accept; }}
      reject;
    }};
  }};
}}

protocol bfd {{
  interface "*" {{
    min rx interval 100 ms;
    min tx interval 100 ms;
    multiplier 3;
  }};
}}

# The nearer the node a route ends at (the last AS of its path), the more it is preferred.
filter from_edge {{
  if net != PORTICO_ANYCAST then reject;
  case bgp_path.last {{
{prefs}    else: reject;
  }}
  accept;
}}

template bgp sim {{
  hold time 9;
  keepalive time 3;
  bfd on;
  connect delay time 1;
  error wait time 1, 5;
  ipv4 {{
    import filter from_edge;
    export where net = PORTICO_ANYCAST;
  }};
}}

{sessions}"#,
        region = t.regions[r].name,
    )
}

/// Sends one command to the BIRD listening on `socket` (what `birdc -s SOCKET COMMAND`
/// does) and returns its answer without the reply codes; an error for a reply code of 8000
/// and above (BIRD's errors), or when BIRD does not answer within a second.
pub fn query(socket: &Path, command: &str) -> Result<String> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to BIRD at {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    anyhow::ensure!(line.starts_with("0001 "), "not BIRD: {line:?}");
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut text = String::new();
    loop {
        line.clear();
        anyhow::ensure!(
            reader.read_line(&mut line)? > 0,
            "BIRD closed the connection"
        );
        let l = line.trim_end_matches('\n');
        if let Some(rest) = l.strip_prefix(' ') {
            text.push_str(rest);
            text.push('\n');
            continue;
        }
        let code: u32 = l.get(..4).and_then(|c| c.parse().ok()).unwrap_or(0);
        let rest = l.get(5..).unwrap_or("");
        let last = l.as_bytes().get(4) == Some(&b' ');
        if last {
            if code >= 8000 {
                bail!("BIRD: {command}: {rest}");
            }
            if !rest.is_empty() {
                text.push_str(rest);
                text.push('\n');
            }
            return Ok(text);
        }
        text.push_str(rest);
        text.push('\n');
    }
}

/// The State column of protocol `name` in a `show protocols` answer.
fn protocol_state(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&name)).then(|| w.get(3).map(|s| s.to_string()))?
    })
}

/// The AS a route ends at (the last of its `BGP.as_path`) in a `show route … all` answer.
fn origin_as(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("BGP.as_path:"))
        .and_then(|p| p.split_whitespace().last())
        .and_then(|a| a.parse().ok())
}

/// The BIRD daemons of one run: their configs, control sockets and commands (the processes
/// themselves are the simulation's), and what they say.
#[derive(Debug)]
pub struct Routing {
    /// `bird` and `birdc`.
    pub tools: Tools,
    /// Where the configs, the sockets and the health check are (`WORK_DIR/bird`).
    pub dir: PathBuf,
    /// Name of each edge node, in [`Topology::edge_nodes`] order.
    names: Vec<String>,
    /// Region name of each router.
    regions: Vec<String>,
}

impl Routing {
    /// Writes every router's and node's config and the health check into `WORK/bird` and has
    /// `bird -p` check each config.
    pub fn prepare(t: &Topology, net: &Netns, work: &Path) -> Result<Routing> {
        let tools = tools()?;
        let dir = std::path::absolute(work.join("bird"))?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let edge = t.edge_nodes();
        let routing = Routing {
            tools,
            dir,
            names: edge.iter().map(|(_, n)| n.clone()).collect(),
            regions: t.regions.iter().map(|r| r.name.clone()).collect(),
        };
        let sock = routing.node_socket(edge.len()).into_os_string().len();
        anyhow::ensure!(
            sock < 100,
            "{}: too long a path for BIRD's control sockets; use a shorter --work-dir",
            routing.dir.display()
        );
        let mut files = Vec::new();
        let links = Links::of(net);
        for r in 0..t.regions.len() {
            files.push((routing.router_conf(r), router_config(t, &links, r)));
        }
        for (j, (r, _)) in edge.iter().enumerate() {
            let (router_end, node_end) = net.node_link(j);
            let peer = NodePeer {
                router_id: netns::node_addr(*r, j),
                local: node_end,
                local_as: node_as(j),
                neighbor: router_end,
                neighbor_as: router_as(*r),
            };
            files.push((routing.node_conf(j), node_config(RECIPE, &peer)?));
        }
        for (path, text) in &files {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let out = Command::new(&routing.tools.bird)
                .arg("-p")
                .arg("-c")
                .arg(path)
                .output()
                .context("cannot run bird -p")?;
            anyhow::ensure!(
                out.status.success(),
                "bird -p -c {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::write(routing.healthcheck(), HEALTHCHECK)?;
        Ok(routing)
    }

    fn router_conf(&self, r: usize) -> PathBuf {
        self.dir.join(format!("router-{}.conf", self.regions[r]))
    }

    fn node_conf(&self, j: usize) -> PathBuf {
        self.dir.join(format!("node-{}.conf", self.names[j]))
    }

    /// The health check's copy (`WORK/bird/healthcheck.sh`).
    pub fn healthcheck(&self) -> PathBuf {
        self.dir.join("healthcheck.sh")
    }

    /// Control socket of router `r`'s BIRD (`birdc -s` takes it).
    pub fn router_socket(&self, r: usize) -> PathBuf {
        self.dir.join(format!("r{r}.ctl"))
    }

    /// Control socket of edge node `j`'s BIRD.
    pub fn node_socket(&self, j: usize) -> PathBuf {
        self.dir.join(format!("n{j}.ctl"))
    }

    /// Name of router `r`'s BIRD as a child (pid file, `logs/NAME.log`).
    pub fn router_name(&self, r: usize) -> String {
        format!("bird-router-{}", self.regions[r])
    }

    /// Name of edge node `j`'s BIRD as a child.
    pub fn node_name(&self, j: usize) -> String {
        format!("bird-{}", self.names[j])
    }

    /// Name of edge node `j`'s health check as a child.
    pub fn check_name(&self, j: usize) -> String {
        format!("anycast-{}", self.names[j])
    }

    fn daemon(&self, mut cmd: Command, conf: PathBuf, socket: PathBuf) -> Command {
        let _ = std::fs::remove_file(&socket);
        cmd.arg("-f").arg("-c").arg(conf).arg("-s").arg(socket);
        cmd
    }

    /// `bird` in router `r`'s namespace, in the foreground.
    pub fn router_command(&self, net: &Netns, r: usize) -> Command {
        self.daemon(
            net.in_router(r, &self.tools.bird),
            self.router_conf(r),
            self.router_socket(r),
        )
    }

    /// `bird` in edge node `j`'s namespace, in the foreground.
    pub fn node_command(&self, net: &Netns, j: usize) -> Command {
        self.daemon(
            net.in_node(j, &self.tools.bird),
            self.node_conf(j),
            self.node_socket(j),
        )
    }

    /// The shipped health check in edge node `j`'s namespace, polling `admin`'s `/healthz`
    /// and driving the node's BIRD.
    pub fn check_command(&self, net: &Netns, j: usize, admin: SocketAddr) -> Command {
        let mut cmd = net.in_node(j, Path::new("sh"));
        cmd.arg(self.healthcheck())
            .env("PORTICO_HEALTHZ_URL", format!("http://{admin}/healthz"))
            .env("BIRD_PROTOCOL", PROTOCOL)
            .env("BIRDC", &self.tools.birdc)
            .env("BIRD_SOCKET", self.node_socket(j))
            .env("INTERVAL", secs(CHECK_INTERVAL))
            .env("TIMEOUT", secs(CHECK_TIMEOUT))
            .env("RISE", RISE.to_string())
            .env("FALL", FALL.to_string());
        cmd
    }

    /// Whether edge node `j`'s BIRD announces the service address now (its `portico_anycast`
    /// is up); `None` when that BIRD does not answer.
    pub fn announcing(&self, j: usize) -> Option<bool> {
        let text = query(&self.node_socket(j), &format!("show protocols {PROTOCOL}")).ok()?;
        Some(protocol_state(&text, PROTOCOL)? == "up")
    }

    /// The edge node router `r`'s BIRD's best route to the service address ends at (by the
    /// last AS of its path); `None` without a route, or when that BIRD does not answer.
    pub fn best(&self, r: usize) -> Option<usize> {
        let text = query(
            &self.router_socket(r),
            &format!("show route {}/32 primary all", netns::SERVICE),
        )
        .ok()?;
        node_of_as(origin_as(&text)?, self.names.len())
    }

    /// `show route … all` for the service address in router `r`'s BIRD: every route it
    /// learned by BGP, the best marked `*`.
    pub fn routes(&self, r: usize) -> Result<String> {
        query(
            &self.router_socket(r),
            &format!("show route {}/32 all", netns::SERVICE),
        )
    }

    /// `show protocols` of router `r`'s BIRD (its BGP sessions).
    pub fn sessions(&self, r: usize) -> Result<String> {
        query(&self.router_socket(r), "show protocols")
    }
}

/// The BIRD daemons and health checks of a run, as child processes of the runner (each in its
/// own process group, in the pid file as `bird-*` and `anycast-*`, inside the namespaces, so
/// `portico-sim clean` finds them either way).
pub(crate) struct Daemons {
    /// Their configs and sockets.
    pub(crate) routing: Arc<Routing>,
    /// Each node's admin listener, which its health check polls.
    admins: Vec<SocketAddr>,
    routers: Vec<Option<Proc>>,
    nodes: Vec<Option<Proc>>,
    checks: Vec<Option<Proc>>,
}

impl Daemons {
    /// Starts a BIRD in every router's and every node's namespace, and every node's health
    /// check (each node stays withdrawn until its check has seen it serve [`RISE`] times).
    pub(crate) fn start(
        routing: Routing,
        launcher: &Launcher,
        net: &Netns,
        admins: Vec<SocketAddr>,
    ) -> Result<Daemons> {
        let mut d = Daemons {
            routing: Arc::new(routing),
            routers: Vec::new(),
            nodes: (0..admins.len()).map(|_| None).collect(),
            checks: (0..admins.len()).map(|_| None).collect(),
            admins,
        };
        for r in 0..net.routers.len() {
            let cmd = d.routing.router_command(net, r);
            d.routers
                .push(Some(launcher.spawn(&d.routing.router_name(r), cmd)?));
        }
        for j in 0..d.admins.len() {
            d.start_node(launcher, net, j)?;
        }
        Ok(d)
    }

    /// Starts edge node `j`'s BIRD and its health check, those that do not run; says what it
    /// started, one line each.
    pub(crate) fn start_node(
        &mut self,
        launcher: &Launcher,
        net: &Netns,
        j: usize,
    ) -> Result<Vec<String>> {
        let mut report = Vec::new();
        if !self.nodes[j].as_mut().is_some_and(Proc::running) {
            let p = launcher.spawn(
                &self.routing.node_name(j),
                self.routing.node_command(net, j),
            )?;
            report.push(format!(
                "BIRD of {}: started ({})",
                self.routing.names[j],
                p.describe()
            ));
            self.nodes[j] = Some(p);
        }
        if !self.checks[j].as_mut().is_some_and(Proc::running) {
            let p = launcher.spawn_group(
                &self.routing.check_name(j),
                self.routing.check_command(net, j, self.admins[j]),
            )?;
            report.push(format!(
                "health check of {}: started ({})",
                self.routing.names[j],
                p.describe()
            ));
            self.checks[j] = Some(p);
        }
        Ok(report)
    }

    /// SIGKILLs edge node `j`'s BIRD and health check, as the loss of its machine would: the
    /// router drops the session (closed, or BFD) and with it the node's route. Says what it did.
    pub(crate) fn kill_node(&mut self, j: usize) -> Vec<String> {
        let name = &self.routing.names[j];
        let mut report = Vec::new();
        if let Some(p) = self.nodes[j].take() {
            report.push(format!("BIRD of {name}: {}", p.kill(None)));
        }
        if let Some(p) = self.checks[j].take() {
            report.push(format!("health check of {name}: {}", p.kill(None)));
        }
        report
    }

    /// Every process still supervised.
    pub(crate) fn procs_mut(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.routers
            .iter_mut()
            .chain(self.nodes.iter_mut())
            .chain(self.checks.iter_mut())
            .flatten()
    }

    /// Process id of edge node `j`'s BIRD, while it runs.
    pub(crate) fn node_pid(&self, j: usize) -> Option<u32> {
        self.nodes[j].as_ref()?.pid()
    }

    /// Process ids of every process still supervised.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.routers
            .iter()
            .chain(&self.nodes)
            .chain(&self.checks)
            .flatten()
            .filter_map(Proc::pid)
            .collect()
    }

    /// Takes every process, to stop them.
    pub(crate) fn take_all(&mut self) -> Vec<Proc> {
        self.routers
            .iter_mut()
            .chain(self.nodes.iter_mut())
            .chain(self.checks.iter_mut())
            .filter_map(Option::take)
            .collect()
    }
}

/// A duration in seconds as `sleep` and `curl --max-time` take it (`0.1`).
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> NodePeer {
        NodePeer {
            router_id: Ipv4Addr::new(198, 19, 0, 10),
            local: Ipv4Addr::new(198, 18, 0, 14),
            local_as: 64600,
            neighbor: Ipv4Addr::new(198, 18, 0, 13),
            neighbor_as: 64512,
        }
    }

    #[test]
    fn a_node_runs_the_shipped_recipe_with_its_addresses() {
        let c = node_config(RECIPE, &peer()).expect("the recipe has the lines filled in");
        for want in [
            "router id 198.19.0.10;",
            "local 198.18.0.14 as 64600;",
            "neighbor 198.18.0.13 as 64512;",
            "log stderr all;",
            "connect delay time 1;",
        ] {
            assert!(c.contains(want), "{want} missing:\n{c}");
        }
        // The recipe's own parts, untouched.
        for kept in [
            "protocol static portico_anycast {\n  disabled yes;",
            "export filter portico_export;",
            "protocol bfd {",
            "bfd on;",
            "hold time 9;",
            "import none;",
        ] {
            assert!(c.contains(kept), "{kept} missing:\n{c}");
        }
        assert!(!c.contains("192.0.2."), "an example address left:\n{c}");
        assert!(node_config("router id 1.2.3.4;", &peer()).is_err());
    }

    /// The simulation's topology (tests/common) with made-up link addresses.
    fn three_regions() -> (Topology, Links) {
        let t = Topology::parse(
            r#"{"regions": [
              {"name": "us-east", "edge_nodes": ["edge-us"], "origins": ["web-us"]},
              {"name": "eu-west", "edge_nodes": ["edge-eu"], "origins": ["web-eu"]},
              {"name": "ap-south", "edge_nodes": ["edge-ap"], "origins": ["web-ap"]}],
             "rtt_ms": [
              {"between": ["us-east", "us-east"], "ms": 1}, {"between": ["eu-west", "eu-west"], "ms": 1},
              {"between": ["ap-south", "ap-south"], "ms": 1}, {"between": ["us-east", "eu-west"], "ms": 40},
              {"between": ["eu-west", "ap-south"], "ms": 60}, {"between": ["us-east", "ap-south"], "ms": 100}]}"#,
        )
        .expect("valid");
        let a = |k: u8| Ipv4Addr::new(198, 18, 0, k);
        let mut routers = vec![vec![None; 3]; 3];
        for (m, (x, y)) in [(0, 1), (0, 2), (1, 2)].into_iter().enumerate() {
            let (ex, ey) = (a(4 * m as u8 + 5), a(4 * m as u8 + 6));
            routers[x][y] = Some((ex, ey));
            routers[y][x] = Some((ey, ex));
        }
        let nodes = (0..3u8).map(|j| (a(4 * j + 17), a(4 * j + 18))).collect();
        (t, Links { nodes, routers })
    }

    #[test]
    fn a_router_prefers_the_nearest_node_and_peers_with_every_other_router() {
        let (t, links) = three_regions();
        let c = router_config(&t, &links, 1);
        // eu-west: its own node, then us-east (40 ms), then ap-south (60 ms).
        for want in [
            "64601: bgp_local_pref = 1003;",
            "64600: bgp_local_pref = 1002;",
            "64602: bgp_local_pref = 1001;",
            "protocol bgp node1 from sim",
            "local 198.18.0.21 as 64513;\n  neighbor 198.18.0.22 as 64601;",
            "protocol bgp router0 from sim",
            "local 198.18.0.6 as 64513;\n  neighbor 198.18.0.5 as 64512;",
            "protocol bgp router2 from sim",
            "krt_prefsrc = 198.19.1.1;",
            "bfd on;",
        ] {
            assert!(c.contains(want), "{want} missing:\n{c}");
        }
        assert!(
            !c.contains("protocol bgp node0"),
            "only its own region's nodes"
        );
        assert!(
            !c.contains("protocol bgp router1 "),
            "no session with itself"
        );
    }

    /// `bird -p` on every generated config, where BIRD is installed (it is wherever network
    /// mode runs; the recipe tests in crates/edge require it).
    #[test]
    fn bird_parses_the_generated_configs() {
        let Ok(tools) = tools() else {
            eprintln!("SKIPPED: no bird (apt-get install bird2)");
            return;
        };
        let (t, links) = three_regions();
        let dir =
            std::env::temp_dir().join(format!("portico-sim-bird-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut configs: Vec<String> = (0..3).map(|r| router_config(&t, &links, r)).collect();
        configs.push(node_config(RECIPE, &peer()).expect("node config"));
        for (k, c) in configs.iter().enumerate() {
            let path = dir.join(format!("{k}.conf"));
            std::fs::write(&path, c).expect("written");
            let out = Command::new(&tools.bird)
                .arg("-p")
                .arg("-c")
                .arg(&path)
                .output()
                .expect("bird runs");
            assert!(
                out.status.success(),
                "bird -p:\n{}\n{c}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bird_control_answers_are_read() {
        let protocols = "Name       Proto      Table      State  Since         Info\n\
                         portico_anycast Static     master4    up     09:11:50.445  \n";
        assert_eq!(protocol_state(protocols, PROTOCOL).as_deref(), Some("up"));
        assert_eq!(protocol_state(protocols, "other"), None);
        let route = "Table master4:\n198.19.255.1/32      unicast [router1 09:11:55.131] * (100) [AS64601i]\n\
                     \tvia 198.18.0.6 on ps1l1a\n\tType: BGP univ\n\tBGP.origin: IGP\n\
                     \tBGP.as_path: 64513 64601\n\tBGP.local_pref: 1002\n";
        assert_eq!(origin_as(route), Some(64601));
        assert_eq!(node_of_as(64601, 3), Some(1));
        assert_eq!(node_of_as(64603, 3), None);
        assert_eq!(node_of_as(64512, 3), None);
        assert_eq!(secs(Duration::from_millis(100)), "0.1");
    }
}
