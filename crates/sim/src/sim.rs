//! The running simulation: origins, one Portico node per edge node (threads of this process or child processes), the entries and the health watcher, stopped together.

use crate::entry::{self, Board, Entry};
use crate::http;
use crate::launch::{ChildProc, Launch, PidFile};
use crate::netns::{self, Netns};
use crate::supervise;
use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use pingora_core::connectors::TransportConnector;
use pingora_core::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::listening::Service;
use portico::{Node, NodeOptions, RunningNode};
use portico_core::config::Overrides;
use portico_origin::{OriginConfig, OriginHandle};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How to lay the simulation out.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// First port: entries at `base`, nodes at `base+10..`, admins at `base+20..`, origins at
    /// `base+30..`, origin controls at `base+40..`. `None`: free ports chosen at random.
    pub base_port: Option<u16>,
    /// Threads of this process or child processes.
    pub launch: Launch,
    /// Where the shared config (`portico.json`), the children's logs (`logs/`) and the pid file
    /// (`pids`) go. Required for [`Launch::Subprocess`]; in-process runs write nothing.
    pub work_dir: Option<PathBuf>,
    /// Network mode (root, subprocess launch only): a router namespace per region and one per
    /// edge node, the round trips on the links (`tc netem`), one anycast service address on
    /// every node and each region's entry inside its router namespace (see [`crate::netns`]).
    pub netns: bool,
}

struct StopWatch(Arc<Notify>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// The origins a node prefers, and the latency it measured to each origin (`None`: not yet;
/// `NaN`: the origin is unhealthy as this node sees it).
pub type Choice = (Vec<String>, Vec<(String, Option<f64>)>);

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

/// A running edge node or origin.
enum Proc {
    Node(RunningNode),
    Origin(OriginHandle),
    Child(ChildProc),
}

/// Everything the simulation runs.
pub struct Simulation {
    /// The topology it runs.
    pub topology: Topology,
    /// The Portico config every node shares (before `--region` and port overrides).
    pub config: String,
    /// Where that config was written (subprocess mode).
    pub config_path: Option<PathBuf>,
    /// Origins, in topology order.
    pub origins: Vec<OriginInfo>,
    /// Proxy and admin address of each edge node (in network mode every proxy address is the
    /// anycast service address, inside the node's namespace).
    pub nodes: Vec<(SocketAddr, SocketAddr)>,
    /// Entry address of each region's clients, reachable from the runner's namespace.
    pub entries: Vec<SocketAddr>,
    /// Shared announcements.
    pub board: Arc<Board>,
    node_procs: Vec<Option<Proc>>,
    origin_procs: Vec<Proc>,
    /// Network mode's entries (`portico-sim forward` in each router namespace).
    entry_procs: Vec<Proc>,
    pid_file: Option<PidFile>,
    /// Namespaces of network mode; deleted after every process has stopped.
    pub netns: Option<Arc<Netns>>,
    runtime: Option<tokio::runtime::Runtime>,
    entry_stop: Arc<Notify>,
    entry_thread: Option<JoinHandle<()>>,
    watch_stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

/// Loopback addresses of one run: `127.0.0.1:BASE+offset`, or free ports chosen at random below
/// the ephemeral range. Those are held (listening) until every address of the run is chosen, so
/// no two are the same.
struct Ports {
    base: Option<u16>,
    held: Vec<TcpListener>,
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
                            self.held.push(l);
                            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
                        }
                    }
                }
                let l = TcpListener::bind("127.0.0.1:0")?;
                let a = l.local_addr()?;
                self.held.push(l);
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

/// Where everything of a run listens (the same layout in both launch modes).
struct Layout {
    /// Each origin's listener and control listener.
    origins: Vec<(SocketAddr, SocketAddr)>,
    /// Each edge node's proxy and admin listener.
    nodes: Vec<(SocketAddr, SocketAddr)>,
    /// Each region's entry (loopback mode; network mode's are in [`Netns::entries`]).
    entries: Vec<SocketAddr>,
}

impl Layout {
    /// Loopback mode: entries at BASE.., nodes at BASE+10.., admins at BASE+20.., origins at
    /// BASE+30.., origin controls at BASE+40.. (or system-chosen ports).
    fn loopback(t: &Topology, base: Option<u16>) -> Result<Layout> {
        let mut p = Ports {
            base,
            held: Vec::new(),
        };
        let origins = (0..t.origins().len())
            .map(|k| Ok((p.addr(30 + k)?, p.addr(40 + k)?)))
            .collect::<Result<_>>()?;
        let nodes = (0..t.edge_nodes().len())
            .map(|j| Ok((p.addr(10 + j)?, p.addr(20 + j)?)))
            .collect::<Result<_>>()?;
        let entries = (0..t.regions.len())
            .map(|r| p.addr(r))
            .collect::<Result<_>>()?;
        Ok(Layout {
            origins,
            nodes,
            entries,
        })
    }

    /// Network mode: origins on their router's address, every node's proxy on the service
    /// address inside its namespace, its admin on its own address.
    fn netns(t: &Topology) -> Layout {
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
            entries: Vec::new(),
        }
    }
}

/// The Portico config every edge node shares, for the loopback layout starting at `base_port`
/// (what `portico-sim --base-port BASE` writes to `WORK_DIR/portico.json`).
pub fn shared_config(topology: &Topology, base_port: u16) -> String {
    let addrs: Vec<SocketAddr> = (0..topology.origins().len())
        .map(|k| SocketAddr::from(([127, 0, 0, 1], base_port + 30 + k as u16)))
        .collect();
    topology.portico_config(&addrs)
}

impl Simulation {
    /// Starts origins, nodes, entries and the watcher; returns once every listener is up.
    pub fn start(topology: Topology, options: &SimOptions) -> Result<Simulation> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("sim-origins")
            .build()?;
        let work = match (&options.launch, &options.work_dir) {
            (Launch::Subprocess { .. }, None) => bail!("subprocess mode needs a work directory"),
            (_, Some(dir)) => {
                std::fs::create_dir_all(dir.join("logs"))
                    .with_context(|| format!("cannot create {}/logs", dir.display()))?;
                Some(dir.clone())
            }
            (_, None) => None,
        };
        let bin_dir = match &options.launch {
            Launch::Subprocess { bin_dir } => Some(bin_dir.clone()),
            Launch::InProcess => None,
        };
        // Written as each child starts, so a SIGKILLed runner's children can be found.
        let pid_file = match (&bin_dir, &work) {
            (Some(_), Some(dir)) => Some(PidFile::create(&dir.join("pids"))?),
            _ => None,
        };
        let net = match (&bin_dir, options.netns) {
            (_, false) => None,
            (None, true) => {
                bail!(
                    "network mode runs portico and portico-origin as child processes: build them (cargo build --release)"
                )
            }
            (Some(dir), true) => {
                anyhow::ensure!(
                    dir.join("portico-sim").is_file(),
                    "network mode runs {}/portico-sim forward as each region's entry: build it",
                    dir.display()
                );
                Some(Arc::new(Netns::setup(
                    &topology,
                    &std::process::id().to_string(),
                )?))
            }
        };
        let layout = match &net {
            Some(_) => Layout::netns(&topology),
            None => Layout::loopback(&topology, options.base_port)?,
        };
        let spawn = |name: &str, cmd: Command| -> Result<Proc> {
            let dir = work.as_ref().expect("subprocess mode has a work directory");
            let child = ChildProc::spawn(name, cmd, &dir.join(format!("logs/{name}.log")))?;
            if let Some(p) = &pid_file {
                p.add(child.pid(), name)?;
            }
            Ok(Proc::Child(child))
        };
        let mut origins = Vec::new();
        let mut origin_procs = Vec::new();
        for (k, (region, name)) in topology.origins().into_iter().enumerate() {
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            let (listen, control) = layout.origins[k];
            let rtt: Vec<(String, Duration)> = if net.as_ref().is_some_and(|n| n.netem) {
                Vec::new()
            } else {
                (0..topology.regions.len())
                    .map(|r| (topology.regions[r].name.clone(), topology.rtt(r, region)))
                    .collect()
            };
            let region_name = topology.regions[region].name.clone();
            let proc = match &bin_dir {
                None => {
                    let mut c = OriginConfig::new(&name, listen);
                    c.region = Some(region_name);
                    c.log_capacity = 0;
                    c.control = Some(control);
                    c.rtt = rtt.into_iter().collect();
                    let o = runtime
                        .block_on(portico_origin::start(c))
                        .with_context(|| format!("origin {name} cannot listen on {listen}"))?;
                    Proc::Origin(o)
                }
                Some(dir) => {
                    let program = dir.join("portico-origin");
                    let mut cmd = match &net {
                        Some(n) => n.in_router(region, &program),
                        None => Command::new(program),
                    };
                    cmd.args(["--name", &name, "--region", &region_name])
                        .args(["--listen", &listen.to_string()])
                        .args(["--control", &control.to_string()]);
                    for (r, d) in &rtt {
                        cmd.arg("--rtt").arg(format!("{r}={}", d.as_millis()));
                    }
                    spawn(&name, cmd)?
                }
            };
            origin_procs.push(proc);
            origins.push(OriginInfo {
                name,
                region,
                addr: listen,
                control,
            });
        }
        let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
        let config = topology.portico_config(&addrs);
        let config_path = match &work {
            Some(dir) => {
                let p = dir.join("portico.json");
                std::fs::write(&p, &config)
                    .with_context(|| format!("cannot write {}", p.display()))?;
                Some(p)
            }
            None => None,
        };

        let mut nodes = Vec::new();
        let mut node_procs = Vec::new();
        for (j, (region, name)) in topology.edge_nodes().into_iter().enumerate() {
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            let (listen, admin) = layout.nodes[j];
            let region_name = topology.regions[region].name.clone();
            let proc = match &bin_dir {
                None => {
                    let overrides = Overrides {
                        region: Some(region_name),
                        listen: Some(listen.to_string()),
                        admin_listen: Some(admin.to_string()),
                    };
                    let options = NodeOptions {
                        overrides,
                        ..NodeOptions::default()
                    };
                    let node = Node::build(&config, options)
                        .map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
                    Proc::Node(node.spawn())
                }
                Some(dir) => {
                    let program = dir.join("portico");
                    let mut cmd = match &net {
                        Some(n) => n.in_node(j, &program),
                        None => Command::new(program),
                    };
                    cmd.arg("--config")
                        .arg(config_path.as_ref().expect("written"))
                        .args(["--region", &region_name])
                        .args(["--listen", &listen.to_string()])
                        .args(["--admin-listen", &admin.to_string()]);
                    spawn(&name, cmd)?
                }
            };
            node_procs.push(Some(proc));
            nodes.push((listen, admin));
        }

        let board = Arc::new(Board::new(
            nodes.iter().map(|n| n.0).collect(),
            topology.withdraw,
        ));
        let edge = topology.edge_nodes();
        let entry_stop = Arc::new(Notify::new());
        let mut entries = Vec::new();
        let mut entry_procs = Vec::new();
        let mut entry_thread = None;
        match (&net, &bin_dir) {
            (Some(n), Some(dir)) => {
                // Each region's clients sit in its router namespace; the kernel routes the
                // service address to the node the watcher last chose.
                for (r, region) in topology.regions.iter().enumerate() {
                    let at = SocketAddr::from((n.entries[r], netns::SERVICE_PORT));
                    let mut cmd = n.in_router(r, &dir.join("portico-sim"));
                    cmd.args(["forward", "--listen", &at.to_string(), "--to"])
                        .arg(SocketAddr::from((netns::SERVICE, netns::SERVICE_PORT)).to_string());
                    entry_procs.push(spawn(&format!("entry-{}", region.name), cmd)?);
                    entries.push(at);
                }
            }
            _ => {
                let mut server = entry::entry_server();
                for (r, region) in topology.regions.iter().enumerate() {
                    let at = layout.entries[r];
                    let app = Entry {
                        order: topology.nodes_by_distance(r),
                        rtt: edge.iter().map(|(nr, _)| topology.rtt(r, *nr)).collect(),
                        board: board.clone(),
                        connector: TransportConnector::new(None),
                    };
                    let mut svc = Service::new(format!("entry {}", region.name), app);
                    svc.add_tcp(&at.to_string());
                    server.add_service(svc);
                    entries.push(at);
                }
                let stop = entry_stop.clone();
                entry_thread = Some(
                    std::thread::Builder::new()
                        .name("sim-entries".into())
                        .spawn(move || {
                            server.run(RunArgs {
                                shutdown_signal: Box::new(StopWatch(stop)),
                            })
                        })?,
                );
            }
        }

        let watch_stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (board, stop, admins, net) = (
                board.clone(),
                watch_stop.clone(),
                nodes.iter().map(|n| n.1).collect::<Vec<_>>(),
                net.clone(),
            );
            let names: Vec<String> = edge.iter().map(|(_, n)| n.clone()).collect();
            let orders: Vec<Vec<usize>> = (0..topology.regions.len())
                .map(|r| topology.nodes_by_distance(r))
                .collect();
            std::thread::Builder::new()
                .name("sim-watch".into())
                .spawn(move || {
                    let mut shown = vec![true; admins.len()];
                    while !stop.load(Ordering::Relaxed) {
                        for (i, a) in admins.iter().enumerate() {
                            let healthy = matches!(
                                http::get(*a, "/healthz", Duration::from_millis(400)),
                                Ok((200, _))
                            );
                            board.record(i, Instant::now(), healthy);
                            let up = board.announced(i);
                            if up != shown[i] {
                                shown[i] = up;
                                log::info!(
                                    "{} {}",
                                    names[i],
                                    if up { "announced" } else { "withdrawn" }
                                );
                            }
                        }
                        // Network mode: an announcement change is a route change.
                        if let Some(n) = &net {
                            for (r, order) in orders.iter().enumerate() {
                                if let Err(e) = n.route(r, board.pick(order)) {
                                    log::warn!("route change in {}: {e}", n.routers[r]);
                                }
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })?
        };

        let mut sim = Simulation {
            topology,
            config,
            config_path,
            origins,
            nodes,
            entries,
            board,
            node_procs,
            origin_procs,
            entry_procs,
            pid_file,
            netns: net,
            runtime: Some(runtime),
            entry_stop,
            entry_thread,
            watch_stop,
            watcher: Some(watcher),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        // In network mode a node's proxy listener is the service address inside its own
        // namespace: the entries reach it, this namespace does not.
        let proxies: Vec<SocketAddr> = if sim.netns.is_some() {
            Vec::new()
        } else {
            sim.nodes.iter().map(|n| n.0).collect()
        };
        let all: Vec<SocketAddr> = sim
            .entries
            .iter()
            .copied()
            .chain(proxies)
            .chain(sim.nodes.iter().map(|n| n.1))
            .chain(sim.origins.iter().map(|o| o.addr))
            .collect();
        for a in all {
            while std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_err() {
                if let Some((name, status, tail)) = sim.exited().into_iter().next() {
                    bail!("{name} exited at start-up ({status}):\n{tail}");
                }
                anyhow::ensure!(!supervise::stop_requested(), "interrupted");
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{a} did not start listening (entries: {:?}, nodes: {:?})",
                    sim.entries,
                    sim.nodes
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(sim)
    }

    /// Where region `r`'s new connections go now: the nearest announced edge node.
    pub fn serving(&self, r: usize) -> Option<usize> {
        match &self.netns {
            Some(n) => n.routed_to(r),
            None => self.board.pick(&self.topology.nodes_by_distance(r)),
        }
    }

    /// Child processes that have exited: name, status, last lines of their log. A node killed
    /// with [`Simulation::kill_node`] is not reported.
    pub fn exited(&mut self) -> Vec<(String, String, String)> {
        self.origin_procs
            .iter_mut()
            .chain(self.node_procs.iter_mut().flatten())
            .chain(self.entry_procs.iter_mut())
            .filter_map(|p| match p {
                Proc::Child(c) => c
                    .exited()
                    .map(|s| (c.name.clone(), s.to_string(), c.log_tail(10))),
                _ => None,
            })
            .collect()
    }

    /// Asks edge node `i` to stop gracefully (SIGTERM for a child process): it drains for the
    /// topology's `drain_ms` with `/healthz` at 503, so the entries withdraw it first.
    pub fn drain_node(&mut self, i: usize) {
        match self.node_procs.get_mut(i).and_then(Option::as_mut) {
            Some(Proc::Child(c)) => c.terminate(),
            Some(Proc::Node(n)) => n.request_stop(),
            _ => {}
        }
    }

    /// Process id of edge node `i` when it runs as a child process.
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        match self.node_procs.get(i)?.as_ref()? {
            Proc::Child(c) => Some(c.pid()),
            _ => None,
        }
    }

    /// Process ids of the child processes still supervised (subprocess mode).
    pub fn child_pids(&self) -> Vec<u32> {
        self.origin_procs
            .iter()
            .chain(self.node_procs.iter().flatten())
            .chain(self.entry_procs.iter())
            .filter_map(|p| match p {
                Proc::Child(c) => Some(c.pid()),
                _ => None,
            })
            .collect()
    }

    /// Sets a fault on origin `k` through its control listener (`none`, `refuse`, `hang`,
    /// `status:CODE`, `slow:MS`), in either launch mode.
    pub fn set_origin_fault(&self, k: usize, fault: &str) -> Result<()> {
        let (code, body) = http::request(
            self.origins[k].control,
            "PUT",
            "/fault",
            fault,
            Duration::from_secs(2),
        )?;
        anyhow::ensure!(
            code == 200,
            "origin {}: {code} {body}",
            self.origins[k].name
        );
        Ok(())
    }

    /// Kills edge node `i`: SIGKILL for a child process (a crash, as its clients see it). An
    /// in-process node is stopped, which drains first when the topology sets `drain_ms`; the
    /// tests use no drain, so it is a crash there too.
    pub fn kill_node(&mut self, i: usize) {
        match self.node_procs.get_mut(i).and_then(Option::take) {
            Some(Proc::Child(mut c)) => c.kill(),
            Some(Proc::Node(n)) => n.stop(),
            _ => {}
        }
    }

    /// `/status` of edge node `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let (code, body) = http::get(self.nodes[i].1, "/status", Duration::from_secs(1)).ok()?;
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    /// The origins node `i` currently prefers, with the latency it measured to each origin.
    pub fn choice(&self, i: usize) -> Option<Choice> {
        let s = self.status(i)?;
        let origins = s["pools"][0]["origins"].as_array()?.clone();
        let preferred = origins
            .iter()
            .filter(|o| o["preferred"] == true)
            .filter_map(|o| o["name"].as_str().map(str::to_string))
            .collect();
        let latencies = origins
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap_or("?").to_string(),
                    if o["healthy"] == false {
                        Some(f64::NAN)
                    } else {
                        o["latency_ms"].as_f64()
                    },
                )
            })
            .collect();
        Some((preferred, latencies))
    }

    /// The table of regions: entry, where its clients go, each node with its admin URL,
    /// announcement, preferred origin and measured latencies.
    pub fn table(&self) -> String {
        let edge = self.topology.edge_nodes();
        let mut s = String::from(
            "| region | clients enter at | → served by | edge node | admin | announced | prefers | measured latency (ms) |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (j, (r, name)) in edge.iter().enumerate() {
            let region = &self.topology.regions[*r].name;
            let first = self.topology.regions[*r].edge_nodes.first() == Some(name);
            let (entry, serving) = if first {
                (
                    format!("http://{}/", self.entries[*r]),
                    self.serving(*r)
                        .map_or("nobody".into(), |k| edge[k].1.clone()),
                )
            } else {
                (String::new(), String::new())
            };
            let (prefers, lat) = match self.choice(j) {
                Some((p, l)) => (
                    p.join(", "),
                    l.iter()
                        .map(|(n, v)| {
                            let v = match v {
                                None => "?".to_string(),
                                Some(v) if v.is_nan() => "down".to_string(),
                                Some(v) => format!("{v:.0}"),
                            };
                            format!("{n} {v}")
                        })
                        .collect::<Vec<_>>()
                        .join(" · "),
                ),
                None => ("(down)".into(), String::new()),
            };
            s.push_str(&format!(
                "| {region} | {entry} | {serving} | {name} | http://{}/status | {} | {prefers} | {lat} |\n",
                self.nodes[j].1,
                if self.board.announced(j) {
                    "yes"
                } else {
                    "withdrawn"
                }
            ));
        }
        // A region without edge nodes of its own still has clients and an entry.
        for (r, region) in self.topology.regions.iter().enumerate() {
            if region.edge_nodes.is_empty() {
                s.push_str(&format!(
                    "| {} | http://{}/ | {} | | | | | |\n",
                    region.name,
                    self.entries[r],
                    self.serving(r)
                        .map_or("nobody".into(), |k| edge[k].1.clone())
                ));
            }
        }
        s
    }

    fn shutdown(&mut self) {
        self.watch_stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        self.entry_stop.notify_one();
        if let Some(t) = self.entry_thread.take() {
            let _ = t.join();
        }
        let mut procs: Vec<Proc> = std::mem::take(&mut self.entry_procs);
        procs.extend(self.node_procs.iter_mut().filter_map(Option::take));
        procs.append(&mut self.origin_procs);
        for p in &mut procs {
            match p {
                Proc::Node(n) => n.request_stop(),
                Proc::Child(c) => c.terminate(),
                Proc::Origin(_) => {}
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in procs {
            match p {
                Proc::Node(n) => n.stop(),
                Proc::Child(mut c) => c.wait_until(deadline),
                Proc::Origin(o) => {
                    if let Some(rt) = &self.runtime {
                        rt.block_on(o.shutdown());
                    }
                }
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.pid_file = None;
        self.netns = None;
    }

    /// Stops everything and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_shared_config_is_what_the_topology_generates() {
        let t = Topology::parse(include_str!("../../../deploy/sim/topology.json")).expect("valid");
        assert_eq!(
            include_str!("../../../deploy/sim/portico.json"),
            shared_config(&t, 8100),
            "regenerate with: target/release/portico-sim config --out deploy/sim/portico.json"
        );
    }
}
