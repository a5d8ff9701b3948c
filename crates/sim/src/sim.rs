//! The running simulation: the store (one etcd member per region), origins, one Portico node per edge node (threads of this process or child processes) following the store, the entries and the health watcher (network mode: BIRD in every namespace instead), stopped together; whole regions taken down and back.

use crate::bird::{Daemons, Routing};
use crate::entry::{self, Board, Entry};
use crate::http;
use crate::layout::Layout;
pub use crate::layout::OriginInfo;
use crate::netns::{self, Netns};
pub use crate::options::SimOptions;
use crate::pebble::{self, Pebble};
use crate::procs::{Launcher, NodeSource, Proc};
use crate::rollout_view::{self, NodeRollout};
use crate::store::SimStore;
use crate::supervise;
use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use pingora_core::connectors::TransportConnector;
use pingora_core::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::listening::Service;
use portico_origin::{DemoTls, write_demo_tls};
use portico_store::StoreUrl;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a process started by the simulation has to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);

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

/// Everything the simulation runs.
pub struct Simulation {
    /// The topology it runs.
    pub topology: Topology,
    /// The Portico config every node shares (before `--region` and port overrides): the
    /// document pushed to the store at start, or the last one pushed with
    /// [`Simulation::push_config`].
    pub config: String,
    /// Where that config was written at start (with a work directory).
    pub config_path: Option<PathBuf>,
    /// Origins, in topology order.
    pub origins: Vec<OriginInfo>,
    /// Proxy and admin address of each edge node (in network mode every proxy address is the
    /// anycast service address, inside the node's namespace).
    pub nodes: Vec<(SocketAddr, SocketAddr)>,
    /// Entry address of each region's clients, reachable from the runner's namespace.
    pub entries: Vec<SocketAddr>,
    /// Each edge node's TLS listener (in network mode the service address's TLS port).
    pub tls_nodes: Vec<SocketAddr>,
    /// TLS entry address of each region's clients (HTTPS, h2 or HTTP/1.1).
    pub tls_entries: Vec<SocketAddr>,
    /// The run's throwaway CA and the certificate every node serves (`WORK_DIR/tls/`).
    pub tls: DemoTls,
    /// Shared announcements.
    pub board: Arc<Board>,
    /// Namespaces of network mode; deleted after every process has stopped.
    pub netns: Option<Arc<Netns>>,
    /// Network mode's BIRD daemons: their control sockets, what they announce and route.
    pub routing: Option<Arc<Routing>>,
    /// Network mode's BIRD and health check processes.
    anycast: Option<Daemons>,
    /// The etcd cluster every node follows (`None` with [`SimOptions::no_store`]).
    store: Option<SimStore>,
    /// Regions taken down with [`Simulation::region_down`].
    down: Vec<bool>,
    node_procs: Vec<Option<Proc>>,
    origin_procs: Vec<Option<Proc>>,
    /// Network mode's entries (`portico-sim forward` in each router namespace).
    entry_procs: Vec<Proc>,
    launcher: Launcher,
    entry_stop: Arc<Notify>,
    entry_thread: Option<JoinHandle<()>>,
    watch_stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
    /// `--acme`: Pebble, the CA of the managed certificate for [`pebble::HOST`].
    pub pebble: Option<Pebble>,
    /// `--acme`: how long from the push of the managed certificate to every node's TLS
    /// listener (and every TLS entry) serving the certificate Pebble issued.
    pub acme_issued_in: Option<Duration>,
}

/// The Portico config every edge node shares, for the loopback layout starting at `base_port`:
/// what `portico-sim --base-port BASE` writes to `WORK_DIR/portico.json` and pushes to the
/// store, less the TLS listener and the `certificates` entry for the throwaway certificate
/// each run makes in `WORK_DIR/tls/` (so this document checks without that run's files).
pub fn shared_config(topology: &Topology, base_port: u16) -> String {
    let addrs: Vec<SocketAddr> = (0..topology.origins().len())
        .map(|k| SocketAddr::from(([127, 0, 0, 1], base_port + 30 + k as u16)))
        .collect();
    topology.portico_config(&addrs, None)
}

/// The run's throwaway CA and server certificate, in `dir`: for `localhost`, the loopback
/// addresses and, in network mode, the service address and every region's entry address.
fn demo_tls(dir: &Path, net: Option<&Netns>) -> Result<DemoTls> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if let Some(n) = net {
        hosts.push(netns::SERVICE.to_string());
        hosts.extend(n.entries.iter().map(ToString::to_string));
    }
    write_demo_tls(dir, &hosts).context("cannot write the demo certificate")
}

/// Whether a TLS client that trusts only the run's CA completes a handshake with `addr` for
/// `localhost` (what `curl --cacert` would do; a bare TCP probe would log a failed handshake).
fn tls_ready(addr: &SocketAddr, tls: &DemoTls) -> bool {
    use openssl::ssl::{SslConnector, SslMethod};
    let Ok(tcp) = std::net::TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(mut builder) = SslConnector::builder(SslMethod::tls_client()) else {
        return false;
    };
    if builder.set_ca_file(&tls.ca_file).is_err() {
        return false;
    }
    match builder.build().connect("localhost", tcp) {
        Ok(mut s) => {
            let _ = s.shutdown();
            true
        }
        Err(e) => {
            log::debug!("{addr}: TLS not ready: {e}");
            false
        }
    }
}

/// Network mode's namespaces (root, the binaries built), or `None` in loopback mode.
fn network(
    topology: &Topology,
    options: &SimOptions,
    bin_dir: Option<&Path>,
) -> Result<Option<Arc<Netns>>> {
    if !options.netns {
        return Ok(None);
    }
    let Some(dir) = bin_dir else {
        bail!(
            "network mode runs portico and portico-origin as child processes: build them (cargo build --release)"
        )
    };
    anyhow::ensure!(
        dir.join("portico-sim").is_file(),
        "network mode runs {}/portico-sim forward as each region's entry: build it",
        dir.display()
    );
    Ok(Some(Arc::new(Netns::setup(
        topology,
        &std::process::id().to_string(),
    )?)))
}

/// Every origin of the topology at its address of the layout.
fn origin_infos(topology: &Topology, layout: &Layout) -> Vec<OriginInfo> {
    topology
        .origins()
        .into_iter()
        .enumerate()
        .map(|(k, (region, name))| OriginInfo {
            name,
            region,
            addr: layout.origins[k].0,
            control: layout.origins[k].1,
        })
        .collect()
}

/// The store: one etcd member per region, the shared document pushed to `portico/config`.
fn start_store(
    topology: &Topology,
    layout: &Layout,
    launcher: &Launcher,
    net: Option<&Netns>,
) -> Result<SimStore> {
    let members: Vec<SocketAddr> = layout.etcd.iter().flat_map(|(c, p)| [*c, *p]).collect();
    layout.release(&members);
    let store = SimStore::start(topology, &layout.etcd, &launcher.work.join("etcd"), net)?;
    for (r, pid) in store.member_pids().into_iter().enumerate() {
        if let Some(pid) = pid {
            launcher.record(pid, &format!("etcd-{}", topology.regions[r].name))?;
        }
    }
    Ok(store)
}

/// The entries of a run: where each region's clients enter, and what serves them.
struct Entries {
    addrs: Vec<SocketAddr>,
    /// Each region's TLS entry.
    tls_addrs: Vec<SocketAddr>,
    /// Network mode's `portico-sim forward` children.
    procs: Vec<Proc>,
    /// Loopback mode's Pingora server thread.
    thread: Option<JoinHandle<()>>,
}

/// The entries: each region's clients reach the nearest announced edge node through one.
/// Loopback mode: Pingora L4 services on a thread of this process; network mode: `portico-sim
/// forward` in each router namespace, where the kernel routes the service address to the
/// node the watcher last chose.
fn start_entries(
    topology: &Topology,
    layout: &Layout,
    launcher: &Launcher,
    net: Option<&Netns>,
    board: &Arc<Board>,
    stop: &Arc<Notify>,
) -> Result<Entries> {
    let mut entries = Vec::new();
    let mut tls_entries = Vec::new();
    if let (Some(n), Some(dir)) = (net, &launcher.bin_dir) {
        let mut procs = Vec::new();
        for (r, region) in topology.regions.iter().enumerate() {
            let at = SocketAddr::from((n.entries[r], netns::SERVICE_PORT));
            let tls_at = SocketAddr::from((n.entries[r], netns::SERVICE_TLS_PORT));
            let mut cmd = n.in_router(r, &dir.join("portico-sim"));
            cmd.arg("forward");
            for (from, port) in [(at, netns::SERVICE_PORT), (tls_at, netns::SERVICE_TLS_PORT)] {
                cmd.args(["--listen", &from.to_string(), "--to"])
                    .arg(SocketAddr::from((netns::SERVICE, port)).to_string());
            }
            procs.push(launcher.spawn(&format!("entry-{}", region.name), cmd)?);
            entries.push(at);
            tls_entries.push(tls_at);
        }
        return Ok(Entries {
            addrs: entries,
            tls_addrs: tls_entries,
            procs,
            thread: None,
        });
    }
    let edge = topology.edge_nodes();
    let mut server = entry::entry_server();
    for (r, region) in topology.regions.iter().enumerate() {
        let kinds = [
            (
                "entry",
                layout.entries[r],
                layout.nodes.iter().map(|n| n.0).collect(),
            ),
            ("TLS entry", layout.tls_entries[r], layout.tls_nodes.clone()),
        ];
        for (kind, at, targets) in kinds {
            let app = Entry {
                order: topology.nodes_by_distance(r),
                targets,
                rtt: edge.iter().map(|(nr, _)| topology.rtt(r, *nr)).collect(),
                board: board.clone(),
                connector: TransportConnector::new(None),
                connections: AtomicUsize::new(0),
            };
            let mut svc = Service::new(format!("{kind} {}", region.name), app);
            svc.add_tcp(&at.to_string());
            server.add_service(svc);
        }
        entries.push(layout.entries[r]);
        tls_entries.push(layout.tls_entries[r]);
    }
    layout.release(&entries);
    layout.release(&tls_entries);
    let stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sim-entries".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(StopWatch(stop)),
            })
        })?;
    Ok(Entries {
        addrs: entries,
        tls_addrs: tls_entries,
        procs: Vec::new(),
        thread: Some(thread),
    })
}

/// The health watcher of loopback mode: every node's `/healthz` every 100 ms, announcements on
/// the board, which the entries follow. In network mode BIRD withdraws and routes: the watcher
/// only reports what the BIRDs announce and where the routers' best routes lead.
fn start_watcher(
    topology: &Topology,
    board: &Arc<Board>,
    admins: Vec<SocketAddr>,
    routing: Option<Arc<Routing>>,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let (board, stop) = (board.clone(), stop.clone());
    let names: Vec<String> = topology.edge_nodes().into_iter().map(|(_, n)| n).collect();
    if let Some(routing) = routing {
        let regions: Vec<String> = topology.regions.iter().map(|r| r.name.clone()).collect();
        return Ok(std::thread::Builder::new()
            .name("sim-watch".into())
            .spawn(move || watch_bird(&routing, &names, &regions, &stop))?);
    }
    Ok(std::thread::Builder::new()
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
                std::thread::sleep(Duration::from_millis(100));
            }
        })?)
}

/// Network mode's watcher: logs each change of a node's announcement (its BIRD's
/// `portico_anycast`) and of where a router's best route to the service address leads.
fn watch_bird(routing: &Routing, names: &[String], regions: &[String], stop: &AtomicBool) {
    let mut announced: Option<Vec<Option<bool>>> = None;
    let mut best: Option<Vec<Option<usize>>> = None;
    while !stop.load(Ordering::Relaxed) {
        let a: Vec<Option<bool>> = (0..names.len()).map(|j| routing.announcing(j)).collect();
        let b: Vec<Option<usize>> = (0..regions.len()).map(|r| routing.best(r)).collect();
        if let Some(before) = &announced {
            for (j, (now, was)) in a.iter().zip(before).enumerate() {
                if now != was {
                    let what = match now {
                        Some(true) => "announced by its BIRD",
                        Some(false) => "withdrawn by its BIRD",
                        None => "not announced: its BIRD does not answer",
                    };
                    log::info!("{} {what}", names[j]);
                }
            }
        }
        if let Some(before) = &best {
            for (r, (now, was)) in b.iter().zip(before).enumerate() {
                if now != was {
                    let to = now.map_or("nowhere (no route)", |j| names[j].as_str());
                    log::info!(
                        "{}'s router: best route to {} now leads to {to} (BGP)",
                        regions[r],
                        netns::SERVICE
                    );
                }
            }
        }
        (announced, best) = (Some(a), Some(b));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The origins a node prefers and the latencies it measured, from its `/status`.
fn choice_of(s: &serde_json::Value) -> Option<Choice> {
    let origins = s["pools"][0]["origins"].as_array()?;
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

impl Simulation {
    /// Starts the store, origins, nodes, entries and the watcher; returns once every listener
    /// is up.
    pub fn start(topology: Topology, options: &SimOptions) -> Result<Simulation> {
        let launcher = Launcher::prepare(options)?;
        let net = network(&topology, options, launcher.bin_dir.as_deref())?;
        let layout = match &net {
            Some(_) => Layout::netns(&topology),
            None => Layout::loopback(&topology, options.base_port)?,
        };
        // Network mode: BIRD first, so its sessions come up while the rest starts.
        let anycast = match &net {
            Some(n) => {
                let routing = Routing::prepare(&topology, n, &launcher.work)?;
                let admins = layout.nodes.iter().map(|a| a.1).collect();
                Some(Daemons::start(routing, &launcher, n, admins)?)
            }
            None => None,
        };
        let store = if options.no_store {
            None
        } else {
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            Some(start_store(&topology, &layout, &launcher, net.as_deref())?)
        };
        let origins = origin_infos(&topology, &layout);
        let mut origin_procs = Vec::new();
        for o in &origins {
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            layout.release(&[o.addr, o.control]);
            origin_procs.push(Some(launcher.start_origin(&topology, net.as_deref(), o)?));
        }
        let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
        let tls = demo_tls(&launcher.work.join("tls"), net.as_deref())?;
        let config = topology.portico_config(&addrs, Some(&tls));
        let pebble = if options.acme {
            anyhow::ensure!(
                net.is_none() && store.is_some(),
                "--acme runs in loopback mode with the store (not with --netns or --no-store)"
            );
            // Validations go to the first region's entry, which sends them to a node.
            // The managed certificate is pushed once every entry is up (below).
            let pebble = Pebble::start(&launcher.work.join("pebble"), layout.entries[0].port())?;
            for (pid, name) in pebble.pids() {
                launcher.record(pid, name)?;
            }
            Some(pebble)
        } else {
            None
        };
        let config_path = if launcher.scratch {
            None
        } else {
            let p = launcher.work.join("portico.json");
            std::fs::write(&p, &config).with_context(|| format!("cannot write {}", p.display()))?;
            Some(p)
        };
        if let Some(s) = &store {
            s.push(launcher.rt(), &config)?;
        }
        let mut node_procs = Vec::new();
        for (j, (region, _)) in topology.edge_nodes().into_iter().enumerate() {
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            let source = match &store {
                Some(s) => NodeSource::Store(s.url_for(region)),
                None => NodeSource::File {
                    text: &config,
                    path: config_path.as_deref(),
                },
            };
            layout.release(&[layout.nodes[j].0, layout.nodes[j].1, layout.tls_nodes[j]]);
            let proc = launcher.start_node(
                &topology,
                net.as_deref(),
                j,
                layout.nodes[j],
                layout.tls_nodes[j],
                &source,
            )?;
            node_procs.push(Some(proc));
        }
        let nodes = layout.nodes.clone();
        let board = Arc::new(Board::new(nodes.len(), topology.withdraw));
        let entry_stop = Arc::new(Notify::new());
        let Entries {
            addrs: entries,
            tls_addrs: tls_entries,
            procs: entry_procs,
            thread: entry_thread,
        } = start_entries(
            &topology,
            &layout,
            &launcher,
            net.as_deref(),
            &board,
            &entry_stop,
        )?;
        let watch_stop = Arc::new(AtomicBool::new(false));
        let routing = anycast.as_ref().map(|d| d.routing.clone());
        let watcher = start_watcher(
            &topology,
            &board,
            nodes.iter().map(|n| n.1).collect(),
            routing.clone(),
            &watch_stop,
        )?;
        let mut sim = Simulation {
            down: vec![false; topology.regions.len()],
            topology,
            config,
            config_path,
            origins,
            nodes,
            entries,
            tls_nodes: layout.tls_nodes.clone(),
            tls_entries,
            tls,
            board,
            netns: net,
            routing,
            anycast,
            store,
            node_procs,
            origin_procs,
            entry_procs,
            launcher,
            entry_stop,
            entry_thread,
            watch_stop,
            watcher: Some(watcher),
            pebble,
            acme_issued_in: None,
        };
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
        sim.wait_listening(&all, "start-up")?;
        if sim.routing.is_some() {
            let every: Vec<usize> = (0..sim.nodes.len()).collect();
            sim.wait_routed(&every, "start-up")?;
        }
        // TLS with the run's CA: every node's TLS listener (loopback mode; in network mode
        // they are inside the nodes' namespaces), then through every region's TLS entry.
        let mut tls: Vec<SocketAddr> = if sim.netns.is_some() {
            Vec::new()
        } else {
            sim.tls_nodes.clone()
        };
        tls.extend(&sim.tls_entries);
        sim.wait_tls(&tls, "start-up")?;
        if let Some(p) = &sim.pebble {
            let root = p.root_file.clone();
            let managed = pebble::with_acme(&sim.config, p)?;
            let from = Instant::now();
            sim.push_config(&managed)?;
            if let Some(path) = &sim.config_path {
                std::fs::write(path, &managed)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            sim.wait_ready(&tls, "ACME issuance", |a| pebble::serves(a, &root))?;
            sim.acme_issued_in = Some(from.elapsed());
        }
        Ok(sim)
    }

    /// Network mode: whether each of `nodes` is announced by its BIRD and every router's
    /// kernel sends the service address to the nearest node whose BIRD announces it.
    fn routed(&self, nodes: &[usize]) -> bool {
        let (Some(net), Some(routing)) = (&self.netns, &self.routing) else {
            return true;
        };
        let announced: Vec<bool> = (0..self.nodes.len())
            .map(|j| routing.announcing(j) == Some(true))
            .collect();
        nodes.iter().all(|&j| announced[j])
            && (0..self.topology.regions.len()).all(|r| {
                let want = self
                    .topology
                    .nodes_by_distance(r)
                    .into_iter()
                    .find(|&j| announced[j]);
                want.is_none() || net.routed_to(r) == want
            })
    }

    /// Network mode: waits until [`Simulation::routed`] holds for `nodes` (their health checks
    /// announced them, BGP carried the routes, the kernels route to the nearest), failing with
    /// every router's BGP sessions after [`START_DEADLINE`]. Returns how long it took.
    fn wait_routed(&mut self, nodes: &[usize], during: &str) -> Result<Duration> {
        let t0 = Instant::now();
        while !self.routed(nodes) {
            if let Some((name, status, tail)) = self.exited().into_iter().next() {
                bail!("{name} exited at {during} ({status}):\n{tail}");
            }
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            if t0.elapsed() > START_DEADLINE {
                let mut why = String::new();
                if let (Some(net), Some(routing)) = (&self.netns, &self.routing) {
                    for r in 0..net.routers.len() {
                        why.push_str(&format!(
                            "\n{} (kernel: {}):\n{}",
                            net.routers[r],
                            net.kernel_route(r).map_or("no route".into(), |k| k.line),
                            routing.sessions(r).unwrap_or_else(|e| format!("{e:#}"))
                        ));
                    }
                    for j in 0..self.nodes.len() {
                        why.push_str(&format!(
                            "\n{}: announced {:?}",
                            net.nodes[j],
                            routing.announcing(j)
                        ));
                    }
                }
                bail!(
                    "{during}: BGP did not route {} to the nearest announced node within {START_DEADLINE:?}:{why}",
                    netns::SERVICE
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(t0.elapsed())
    }

    /// Whether edge node `i` is announced now. Network mode: whether its BIRD announces the
    /// service address (`None` when that BIRD does not answer: not running, or frozen).
    /// Loopback mode: [`Board::announced`].
    pub fn announced(&self, i: usize) -> Option<bool> {
        match &self.routing {
            Some(r) => r.announcing(i),
            None => Some(self.board.announced(i)),
        }
    }

    /// Waits until every address of `addrs` accepts connections; fails when a child exits
    /// meanwhile, on a stop request or after [`START_DEADLINE`].
    fn wait_listening(&mut self, addrs: &[SocketAddr], during: &str) -> Result<()> {
        self.wait_ready(addrs, during, |a| {
            std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
        })
    }

    /// Waits until every address of `addrs` completes a TLS handshake trusted by the run's CA,
    /// as [`Simulation::wait_listening`] does for connections.
    fn wait_tls(&mut self, addrs: &[SocketAddr], during: &str) -> Result<()> {
        let tls = self.tls.clone();
        self.wait_ready(addrs, during, |a| tls_ready(a, &tls))
    }

    /// Waits until `ready` holds for every address of `addrs`.
    fn wait_ready(
        &mut self,
        addrs: &[SocketAddr],
        during: &str,
        ready: impl Fn(&SocketAddr) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        for a in addrs {
            while !ready(a) {
                if let Some((name, status, tail)) = self.exited().into_iter().next() {
                    bail!("{name} exited at {during} ({status}):\n{tail}");
                }
                anyhow::ensure!(!supervise::stop_requested(), "interrupted");
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{a} was not ready within {START_DEADLINE:?} (entries: {:?}, TLS entries: {:?}, nodes: {:?}, TLS listeners: {:?})",
                    self.entries,
                    self.tls_entries,
                    self.nodes,
                    self.tls_nodes
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The store URL naming every etcd member, in region order (`None` without a store): what
    /// `portico config push|status --store` takes.
    pub fn store_url(&self) -> Option<&StoreUrl> {
        self.store.as_ref().map(|s| &s.url)
    }

    /// The store URL region `r`'s nodes follow: its own member first.
    pub fn node_store_url(&self, r: usize) -> Option<StoreUrl> {
        self.store.as_ref().map(|s| s.url_for(r))
    }

    /// Process id of each region's etcd member (`None`: not running, or no store).
    pub fn etcd_pids(&self) -> Vec<Option<u32>> {
        match &self.store {
            Some(s) => s.member_pids(),
            None => vec![None; self.topology.regions.len()],
        }
    }

    /// The version of the document in the store, when the store answers.
    pub fn stored_version(&self) -> Option<String> {
        let s = self.store.as_ref()?;
        s.stored_version(self.launcher.rt()).ok().flatten()
    }

    /// Validates `text` and writes it to the store, as `portico config push` does; every node
    /// that follows the store then applies it. Returns its version.
    pub fn push_config(&mut self, text: &str) -> Result<String> {
        let s = self
            .store
            .as_ref()
            .context("this simulation runs without a store (--no-store)")?;
        let version = s.push(self.launcher.rt(), text)?;
        self.config = text.to_string();
        Ok(version)
    }

    /// The config version edge node `i` runs (`config_version` of its `/status`).
    pub fn node_version(&self, i: usize) -> Option<String> {
        self.status(i)?["config_version"]
            .as_str()
            .map(str::to_string)
    }

    /// Where region `r`'s new connections go now: the nearest announced edge node.
    pub fn serving(&self, r: usize) -> Option<usize> {
        match &self.netns {
            Some(n) => n.routed_to(r),
            None => self.board.pick(&self.topology.nodes_by_distance(r)),
        }
    }

    /// Child processes that have exited: name, status, last lines of their log. A node killed
    /// with [`Simulation::kill_node`] and what [`Simulation::region_down`] took down are not
    /// reported.
    pub fn exited(&mut self) -> Vec<(String, String, String)> {
        let mut gone: Vec<(String, String, String)> = self
            .origin_procs
            .iter_mut()
            .flatten()
            .chain(self.node_procs.iter_mut().flatten())
            .chain(self.entry_procs.iter_mut())
            .chain(self.anycast.iter_mut().flat_map(Daemons::procs_mut))
            .filter_map(|p| match p {
                Proc::Child(c) => c
                    .exited()
                    .map(|s| (c.name.clone(), s.to_string(), c.log_tail(10))),
                _ => None,
            })
            .collect();
        if let Some(s) = &self.store {
            for (r, region) in self.topology.regions.iter().enumerate() {
                if !self.down[r] && !s.is_running(r) {
                    gone.push((
                        format!("etcd-{}", region.name),
                        "exited".to_string(),
                        s.log_tail(r, 10),
                    ));
                }
            }
        }
        gone
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

    /// Network mode: process id of edge node `i`'s BIRD, while it runs.
    pub fn bird_pid(&self, i: usize) -> Option<u32> {
        self.anycast.as_ref()?.node_pid(i)
    }

    /// Process id of origin `k` when it runs as a child process.
    pub fn origin_pid(&self, k: usize) -> Option<u32> {
        match self.origin_procs.get(k)?.as_ref()? {
            Proc::Child(c) => Some(c.pid()),
            _ => None,
        }
    }

    /// Process ids of the child processes still supervised: origins, nodes, entries, BIRDs and
    /// health checks (subprocess and network mode) and etcd members (in both modes).
    pub fn child_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .origin_procs
            .iter()
            .flatten()
            .chain(self.node_procs.iter().flatten())
            .chain(self.entry_procs.iter())
            .filter_map(|p| match p {
                Proc::Child(c) => Some(c.pid()),
                _ => None,
            })
            .collect();
        if let Some(d) = &self.anycast {
            pids.extend(d.pids());
        }
        pids.extend(self.etcd_pids().into_iter().flatten());
        pids
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
    /// tests use no drain, so it is a crash there too. [`Simulation::region_up`] starts it again.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(p) = self.node_procs.get_mut(i).and_then(Option::take) {
            p.kill(self.launcher.runtime.as_ref());
        }
    }

    /// Takes region `region` down, as a regional outage would: SIGKILLs its edge nodes (in
    /// network mode with their BIRDs and health checks), its origins and its etcd member
    /// (in-process nodes and origins are stopped). Its clients move to the next-nearest node
    /// after the withdrawal delay (network mode: once the routers' BGP sessions to the dead
    /// BIRDs close); the other members keep the store writable while they are a quorum.
    /// Returns what happened, one line each.
    pub fn region_down(&mut self, region: &str) -> Result<String> {
        let r = self.region(region)?;
        anyhow::ensure!(
            !self.down[r],
            "{region} is already down (region-up {region} brings it back)"
        );
        let mut report = Vec::new();
        let rt = self.launcher.runtime.as_ref();
        for (j, (nr, name)) in self.topology.edge_nodes().into_iter().enumerate() {
            if nr == r {
                // Network mode: the machine goes, its BIRD with it (the router drops the route).
                if let Some(d) = &mut self.anycast {
                    report.extend(d.kill_node(j));
                }
                if let Some(p) = self.node_procs[j].take() {
                    report.push(format!("edge node {name}: {}", p.kill(rt)));
                }
            }
        }
        for (k, o) in self.origins.iter().enumerate() {
            if o.region == r {
                if let Some(p) = self.origin_procs[k].take() {
                    report.push(format!("origin {}: {}", o.name, p.kill(rt)));
                }
            }
        }
        if let Some(s) = &mut self.store {
            match s.stop_member(r) {
                Some(pid) => report.push(format!("etcd member {region}: SIGKILLed (pid {pid})")),
                None => report.push(format!("etcd member {region}: was not running")),
            }
        }
        self.down[r] = true;
        if let Some(q) = self.quorum() {
            report.push(q);
        }
        Ok(format!("{region} is down:\n  {}\n", report.join("\n  ")))
    }

    /// Brings region `region` back: its etcd member from its data dir (it catches up with
    /// the cluster), its origins, then its edge nodes, which start from the store (their own
    /// member first) or, if it does not answer, from their cache, and follow it. Starts only
    /// what does not run, so it also restarts a node killed with [`Simulation::kill_node`].
    /// Returns what happened once every listener is up, one line each.
    pub fn region_up(&mut self, region: &str) -> Result<String> {
        let r = self.region(region)?;
        let mut report = Vec::new();
        if let Some(s) = &mut self.store {
            if !s.is_running(r) {
                let pid = s.start_member(r)?;
                if let Some(pid) = pid {
                    self.launcher.record(pid, &format!("etcd-{region}"))?;
                }
                report.push(format!(
                    "etcd member {region}: started from its data dir ({})",
                    pid.map_or("pid unknown".to_string(), |p| format!("pid {p}"))
                ));
            }
        }
        self.down[r] = false;
        let net = self.netns.clone();
        let mut listening = Vec::new();
        for k in 0..self.origins.len() {
            let o = &self.origins[k];
            if o.region != r || self.origin_procs[k].as_mut().is_some_and(Proc::running) {
                continue;
            }
            let p = self
                .launcher
                .start_origin(&self.topology, net.as_deref(), o)?;
            report.push(format!("origin {}: started ({})", o.name, p.describe()));
            listening.push(o.addr);
            self.origin_procs[k] = Some(p);
        }
        let mut started = Vec::new();
        for (j, (nr, name)) in self.topology.edge_nodes().into_iter().enumerate() {
            if nr != r || self.node_procs[j].as_mut().is_some_and(Proc::running) {
                continue;
            }
            if let (Some(d), Some(n)) = (&mut self.anycast, &net) {
                report.extend(d.start_node(&self.launcher, n, j)?);
            }
            let source = match &self.store {
                Some(s) => NodeSource::Store(s.url_for(r)),
                None => NodeSource::File {
                    text: &self.config,
                    path: self.config_path.as_deref(),
                },
            };
            let p = self.launcher.start_node(
                &self.topology,
                net.as_deref(),
                j,
                self.nodes[j],
                self.tls_nodes[j],
                &source,
            )?;
            started.push((j, name, p.describe()));
            listening.push(self.nodes[j].1);
            self.node_procs[j] = Some(p);
        }
        self.wait_listening(&listening, &format!("region-up {region}"))?;
        let nodes: Vec<usize> = started.iter().map(|s| s.0).collect();
        // Network mode: until their health checks have announced them and BGP routes to them.
        let announced = if self.routing.is_some() && !nodes.is_empty() {
            Some(self.wait_routed(&nodes, &format!("region-up {region}")))
        } else {
            None
        };
        // Their TLS listeners: directly in loopback mode, through the region's TLS entry (now
        // routed to them) in network mode.
        let tls: Vec<SocketAddr> = match (&self.netns, nodes.is_empty()) {
            (_, true) => Vec::new(),
            (Some(_), false) => vec![self.tls_entries[r]],
            (None, false) => nodes.iter().map(|&j| self.tls_nodes[j]).collect(),
        };
        self.wait_tls(&tls, &format!("region-up {region}"))?;
        for (j, name, how) in started {
            let s = self.status(j);
            let version = s
                .as_ref()
                .and_then(|s| s["config_version"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".to_string());
            let from = match s.as_ref().map(|s| s["started_from_cache"] == true) {
                Some(true) => format!(
                    "from its cache {} (the store did not answer)",
                    self.launcher.cache(&name).display()
                ),
                Some(false) if self.store.is_some() => "from the store".to_string(),
                _ => "from the shared config".to_string(),
            };
            report.push(format!(
                "edge node {name}: started ({how}), runs config {version} {from}"
            ));
        }
        match announced {
            Some(Ok(took)) => report.push(format!(
                "anycast: announced by BIRD, every router routes {} to its nearest announced node ({} ms after the nodes listened)",
                netns::SERVICE,
                took.as_millis()
            )),
            Some(Err(e)) => report.push(format!("anycast: {e:#}")),
            None => {}
        }
        anyhow::ensure!(!report.is_empty(), "{region} is up: nothing to start");
        if let Some(q) = self.quorum() {
            report.push(q);
        }
        Ok(format!("{region} is up:\n  {}\n", report.join("\n  ")))
    }

    /// The index of region `name`.
    fn region(&self, name: &str) -> Result<usize> {
        self.topology.region_index(name).with_context(|| {
            format!(
                "no region {name:?} (the regions: {})",
                self.topology
                    .regions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Whether the running members are a quorum, in words.
    fn quorum(&self) -> Option<String> {
        let s = self.store.as_ref()?;
        let running = (0..s.len()).filter(|&r| s.is_running(r)).count();
        let need = s.len() / 2 + 1;
        Some(if running >= need {
            format!(
                "store: {running} of {} etcd members run, a quorum: config pushes still reach every running node",
                s.len()
            )
        } else {
            format!(
                "store: {running} of {} etcd members run, no quorum ({need} needed): pushes fail; nodes keep serving their running config",
                s.len()
            )
        })
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
        choice_of(&self.status(i)?)
    }

    /// Where region `r`'s clients enter: `http://ENTRY/ · https://TLS_ENTRY/`.
    pub fn entry_urls(&self, r: usize) -> String {
        format!(
            "http://{}/ · https://{}/",
            self.entries[r], self.tls_entries[r]
        )
    }

    /// The table of regions: entries, where its clients go, each node with its admin URL,
    /// running config version, its wave in the rollout (`-`: none), announcement, preferred
    /// origin and measured latencies; then, with a store, a line with the stored version and
    /// which etcd members run, and one with the rollout when a node shows one.
    pub fn table(&self) -> String {
        let edge = self.topology.edge_nodes();
        let mut s = String::from(
            "| region | clients enter at | → served by | edge node | admin | version | wave | announced | prefers | measured latency (ms) |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        // The rollout as the first node that shows one sees it.
        let mut rollout: Option<NodeRollout> = None;
        for (j, (r, name)) in edge.iter().enumerate() {
            let region = &self.topology.regions[*r].name;
            let first = self.topology.regions[*r].edge_nodes.first() == Some(name);
            let (entry, serving) = if first {
                (
                    self.entry_urls(*r),
                    self.serving(*r)
                        .map_or("nobody".into(), |k| edge[k].1.clone()),
                )
            } else {
                (String::new(), String::new())
            };
            let status = self.status(j);
            let version = rollout_view::version_cell(status.as_ref());
            let wave = rollout_view::wave_cell(status.as_ref());
            if rollout.is_none() {
                rollout = status.as_ref().and_then(NodeRollout::of_status);
            }
            let (prefers, lat) = match status.as_ref().and_then(choice_of) {
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
                "| {region} | {entry} | {serving} | {name} | http://{}/status | {version} | {wave} | {} | {prefers} | {lat} |\n",
                self.nodes[j].1,
                match self.announced(j) {
                    Some(true) => "yes",
                    Some(false) => "withdrawn",
                    None => "no BIRD",
                }
            ));
        }
        // A region without edge nodes of its own still has clients and an entry.
        for (r, region) in self.topology.regions.iter().enumerate() {
            if region.edge_nodes.is_empty() {
                s.push_str(&format!(
                    "| {} | {} | {} | | | | | | | |\n",
                    region.name,
                    self.entry_urls(r),
                    self.serving(r)
                        .map_or("nobody".into(), |k| edge[k].1.clone())
                ));
            }
        }
        if let Some(store) = &self.store {
            let members: Vec<String> = self
                .topology
                .regions
                .iter()
                .enumerate()
                .map(|(r, region)| {
                    format!(
                        "{} {}",
                        region.name,
                        if store.is_running(r) { "up" } else { "DOWN" }
                    )
                })
                .collect();
            let stored = match store.stored_version(self.launcher.rt()) {
                Ok(Some(v)) => v,
                Ok(None) => "(none)".to_string(),
                Err(_) => "(store unreachable)".to_string(),
            };
            s.push_str(&format!(
                "\nstore {}: stored config {stored} · etcd members: {}\n",
                store.url,
                members.join(" · ")
            ));
            if let Some(r) = &rollout {
                s.push_str(&format!("{}\n", r.summary()));
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
        if let Some(d) = &mut self.anycast {
            procs.extend(d.take_all());
        }
        procs.extend(self.node_procs.iter_mut().filter_map(Option::take));
        procs.extend(self.origin_procs.iter_mut().filter_map(Option::take));
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
                    if let Some(rt) = &self.launcher.runtime {
                        rt.block_on(o.shutdown());
                    }
                }
            }
        }
        // The nodes have revoked their registrations: the store can go.
        if let Some(s) = self.store.take() {
            s.stop();
        }
        self.launcher.finish();
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
