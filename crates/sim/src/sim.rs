//! The running simulation: origins, one Portico node per edge node, the entries and the
//! health watcher, all in this process, stopped together.

use crate::entry::{Board, Entry};
use crate::http;
use crate::topology::Topology;
use anyhow::{Context, Result};
use pingora_core::connectors::TransportConnector;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::listening::Service;
use portico::{Node, NodeOptions, RunningNode};
use portico_core::config::{Overrides, parse_with};
use portico_origin::{OriginConfig, OriginHandle};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How to lay the simulation out.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// First port: entries at `base`, nodes at `base+10..`, admins at `base+20..`, origins at
    /// `base+30..`, origin controls at `base+40..`. `None`: ports chosen by the system.
    pub base_port: Option<u16>,
}

struct StopWatch(Arc<Notify>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// The origins a node prefers, and the latency it measured to each origin (`None`: not yet).
pub type Choice = (Vec<String>, Vec<(String, Option<f64>)>);

/// Everything the simulation runs.
pub struct Simulation {
    /// The topology it runs.
    pub topology: Topology,
    /// The Portico config every node shares (before `--region` and port overrides).
    pub config: String,
    /// Origins, in topology order.
    pub origins: Vec<OriginHandle>,
    /// Proxy and admin address of each edge node.
    pub nodes: Vec<(SocketAddr, SocketAddr)>,
    /// Entry address of each region's clients.
    pub entries: Vec<SocketAddr>,
    /// Shared announcements.
    pub board: Arc<Board>,
    running: Vec<Option<RunningNode>>,
    runtime: Option<tokio::runtime::Runtime>,
    entry_stop: Arc<Notify>,
    entry_thread: Option<JoinHandle<()>>,
    watch_stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

fn addr(base: Option<u16>, offset: u16) -> Result<SocketAddr> {
    match base {
        Some(b) => Ok(SocketAddr::from(([127, 0, 0, 1], b + offset))),
        None => Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?),
    }
}

impl Simulation {
    /// Starts origins, nodes, entries and the watcher; returns once every listener is up.
    pub fn start(topology: Topology, options: &SimOptions) -> Result<Simulation> {
        let base = options.base_port;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("sim-origins")
            .build()?;
        let mut origins = Vec::new();
        for (k, (region, name)) in topology.origins().into_iter().enumerate() {
            let mut c = OriginConfig::new(&name, addr(base, 30 + k as u16)?);
            c.region = Some(topology.regions[region].name.clone());
            c.log_capacity = 0;
            c.control = Some(addr(base, 40 + k as u16)?);
            c.rtt = (0..topology.regions.len())
                .map(|r| (topology.regions[r].name.clone(), topology.rtt(r, region)))
                .collect();
            let o = runtime
                .block_on(portico_origin::start(c.clone()))
                .with_context(|| format!("origin {name} cannot listen on {}", c.listen))?;
            origins.push(o);
        }
        let addrs: Vec<SocketAddr> = origins.iter().map(OriginHandle::addr).collect();
        let config = topology.portico_config(&addrs);

        let mut nodes = Vec::new();
        let mut running = Vec::new();
        for (j, (region, name)) in topology.edge_nodes().into_iter().enumerate() {
            let (listen, admin) = (addr(base, 10 + j as u16)?, addr(base, 20 + j as u16)?);
            let overrides = Overrides {
                region: Some(topology.regions[region].name.clone()),
                listen: Some(listen.to_string()),
                admin_listen: Some(admin.to_string()),
            };
            let parsed =
                parse_with(&config, &overrides).map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
            let node = Node::build(parsed, NodeOptions::default())
                .map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
            running.push(Some(node.spawn()));
            nodes.push((listen, admin));
        }

        let board = Arc::new(Board::new(
            nodes.iter().map(|n| n.0).collect(),
            topology.withdraw,
        ));
        let edge = topology.edge_nodes();
        let mut server = Server::new_with_opt_and_conf(
            None,
            ServerConf {
                threads: 1,
                grace_period_seconds: Some(0),
                graceful_shutdown_timeout_seconds: Some(1),
                ..ServerConf::default()
            },
        );
        server.bootstrap();
        let mut entries = Vec::new();
        for (r, region) in topology.regions.iter().enumerate() {
            let at = addr(base, r as u16)?;
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
        let entry_stop = Arc::new(Notify::new());
        let stop = entry_stop.clone();
        let entry_thread = std::thread::Builder::new()
            .name("sim-entries".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(StopWatch(stop)),
                })
            })?;

        let watch_stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (board, stop, admins) = (
                board.clone(),
                watch_stop.clone(),
                nodes.iter().map(|n| n.1).collect::<Vec<_>>(),
            );
            let names: Vec<String> = edge.iter().map(|(_, n)| n.clone()).collect();
            std::thread::Builder::new()
                .name("sim-watch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for (i, a) in admins.iter().enumerate() {
                            let healthy = matches!(
                                http::get(*a, "/healthz", Duration::from_millis(200)),
                                Ok((200, _))
                            );
                            if let Some(up) = board.record(i, Instant::now(), healthy) {
                                log::info!(
                                    "{} {}",
                                    names[i],
                                    if up { "announced" } else { "withdrawn" }
                                );
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })?
        };

        let sim = Simulation {
            topology,
            config,
            origins,
            nodes,
            entries,
            board,
            running,
            runtime: Some(runtime),
            entry_stop,
            entry_thread: Some(entry_thread),
            watch_stop,
            watcher: Some(watcher),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let all: Vec<SocketAddr> = sim
            .entries
            .iter()
            .copied()
            .chain(sim.nodes.iter().flat_map(|n| [n.0, n.1]))
            .collect();
        for a in all {
            while std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_err() {
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

    /// Stops edge node `i` at once (no drain): a crash, as its clients see it.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(n) = self.running.get_mut(i).and_then(Option::take) {
            n.stop();
        }
    }

    /// A handle to run origin faults and the like on the simulation's runtime.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("running")
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
                    o["latency_ms"].as_f64(),
                )
            })
            .collect();
        Some((preferred, latencies))
    }

    /// The table of regions: entry, node, admin, announcement, preferred origin, latencies.
    pub fn table(&self) -> String {
        let edge = self.topology.edge_nodes();
        let mut s = String::from(
            "| region | clients enter at | edge node | admin | announced | prefers | measured latency (ms) |\n|---|---|---|---|---|---|---|\n",
        );
        for (j, (r, name)) in edge.iter().enumerate() {
            let region = &self.topology.regions[*r].name;
            let entry = if self.topology.regions[*r].edge_nodes.first() == Some(name) {
                format!("http://{}/", self.entries[*r])
            } else {
                String::new()
            };
            let (prefers, lat) = match self.choice(j) {
                Some((p, l)) => (
                    p.join(", "),
                    l.iter()
                        .map(|(n, v)| {
                            format!("{n} {}", v.map_or("?".into(), |v| format!("{v:.0}")))
                        })
                        .collect::<Vec<_>>()
                        .join(" · "),
                ),
                None => ("(down)".into(), String::new()),
            };
            s.push_str(&format!(
                "| {region} | {entry} | {name} | http://{}/status | {} | {prefers} | {lat} |\n",
                self.nodes[j].1,
                if self.board.announced(j) {
                    "yes"
                } else {
                    "withdrawn"
                }
            ));
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
        for n in self.running.iter_mut().filter_map(Option::take) {
            n.request_stop();
            n.stop();
        }
        if let Some(rt) = self.runtime.take() {
            for o in &self.origins {
                rt.block_on(o.shutdown());
            }
            rt.shutdown_timeout(Duration::from_secs(2));
        }
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
