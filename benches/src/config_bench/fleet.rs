//! The processes of a run, each killed when its guard drops: two demo origins, a three-member
//! etcd cluster (one member per region) with a store-following Portico node per region, or a
//! single `--config` node. Every address is on loopback with a port chosen at run time; every
//! command line is kept so the report can print exactly what each process got.

use super::REGIONS;
use super::docs::OriginSpec;
use super::status::StatusClient;
use crate::procs::{Proc, free_port, wait_port, workspace_bin};
use anyhow::{Context, Result, anyhow};
use portico_store::{Expect, LocalEtcd, MemberSpec, Store, StoreUrl};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a process may take to start listening.
const START: Duration = Duration::from_secs(15);

/// The regions the two origins live in.
pub const ORIGIN_REGIONS: [&str; 2] = ["us-east", "eu-west"];

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A command line as text, for the report (the binary by file name, arguments as given).
fn shown(program: &Path, args: &[String]) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::iter::once(format!("target/release/{name}"))
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Spawns `program args` as `name` with logs in `dir`, `RUST_LOG` as given.
fn spawn(program: &Path, args: &[String], name: &str, dir: &Path, log: &str) -> Result<Proc> {
    let mut cmd = Command::new(program);
    cmd.args(args).env("RUST_LOG", log);
    Ok(Proc::spawn(name, cmd, dir)?)
}

/// Waits until `addr` listens; fails with the log tail if the process died.
fn wait_listening(proc: &mut Proc, addr: SocketAddr) -> Result<()> {
    if let Err(e) = wait_port(addr, START) {
        proc.check_alive()?;
        return Err(anyhow!("{}: {e}", proc.name));
    }
    Ok(())
}

/// What a fleet benchmark starts, found where cargo put them: `portico` and `portico-origin`
/// (built by `make TARGET`), and etcd (installed).
pub struct Binaries {
    /// The edge node.
    pub portico: PathBuf,
    /// The demo origin.
    pub origin: PathBuf,
}

impl Binaries {
    /// Finds the binaries; the error names the command that builds a missing one.
    pub fn find(make_target: &str) -> Result<Binaries> {
        let b = Binaries {
            portico: workspace_bin("portico"),
            origin: workspace_bin("portico-origin"),
        };
        for path in [&b.portico, &b.origin] {
            if !path.is_file() {
                return Err(anyhow!(
                    "{} is missing: run `cargo build --release -p portico -p portico-origin` (make {make_target} does)",
                    path.display()
                ));
            }
        }
        portico_store::etcd_binary().map_err(|e| anyhow!(e))?;
        Ok(b)
    }
}

/// Makes the results folder `out` with its `work/` and `configs/`; returns it canonical.
pub fn results_dir(out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let out = out.canonicalize()?;
    for d in ["work", "configs"] {
        std::fs::create_dir_all(out.join(d))?;
    }
    Ok(out)
}

/// Runs a benchmark on a two-thread runtime, stopped (every child killed as its guard drops)
/// after `max_seconds` or at Ctrl-C.
pub fn run_bounded<T>(max_seconds: u64, bench: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(max_seconds), bench) => match r {
                Ok(r) => r,
                Err(_) => Err(anyhow!("stopped after --max-seconds {max_seconds} (every child killed)")),
            },
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (every child killed)")),
        }
    })
}

/// The two demo origins (`portico-origin`), shared by every case.
pub struct Origins {
    /// What the configs list.
    pub specs: Vec<OriginSpec>,
    /// How each was started.
    pub commands: Vec<String>,
    procs: Vec<Proc>,
}

impl Origins {
    /// Starts `web-us-east` and `web-eu-west` and waits until both listen.
    pub fn start(bin: &Path, dir: &Path) -> Result<Origins> {
        let (mut specs, mut commands, mut procs) = (Vec::new(), Vec::new(), Vec::new());
        for region in ORIGIN_REGIONS {
            let name = format!("web-{region}");
            let addr = loopback(free_port()?);
            let args: Vec<String> = [
                "--name",
                &name,
                "--region",
                region,
                "--listen",
                &addr.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut proc = spawn(bin, &args, &name, dir, "warn")?;
            wait_listening(&mut proc, addr)?;
            commands.push(shown(bin, &args));
            procs.push(proc);
            specs.push(OriginSpec {
                name,
                region: region.to_string(),
                addr,
            });
        }
        Ok(Origins {
            specs,
            commands,
            procs,
        })
    }

    /// Fails if an origin has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.procs {
            p.check_alive()?;
        }
        Ok(())
    }
}

/// One Portico node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeInfo {
    /// `--name` (store) or a label (file).
    pub name: String,
    /// Its region.
    pub region: String,
    /// Proxy listener.
    pub proxy: SocketAddr,
    /// Admin listener (`/status`).
    pub admin: SocketAddr,
    /// Its command line.
    pub command: String,
}

/// One etcd member, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberInfo {
    /// Member name (its region).
    pub name: String,
    /// Client URL.
    pub client: SocketAddr,
    /// Peer URL.
    pub peer: SocketAddr,
    /// Its command line, as the kernel has it (`/proc/PID/cmdline`).
    pub command: String,
}

/// A running process's command line, arguments joined by spaces.
fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Three regions following one store: etcd members and nodes. Nodes stop before etcd.
pub struct StoreFleet {
    /// The nodes, in the order started.
    pub nodes: Vec<NodeInfo>,
    /// The etcd members, in [`REGIONS`] order.
    pub members: Vec<MemberInfo>,
    /// The store URL the operator (this bench) writes through: every member, us-east first.
    pub url: StoreUrl,
    /// A connection to the store.
    pub store: Store,
    procs: Vec<Proc>,
    _etcd: LocalEtcd,
}

impl StoreFleet {
    /// Starts the etcd cluster, writes `initial` as the config, starts one node per region
    /// (its own member listed first, `--cache` in `dir`) and waits until every node runs
    /// `initial`.
    pub async fn start(portico: &Path, initial: &str, dir: &Path) -> Result<StoreFleet> {
        let nodes: Vec<(String, &str)> =
            REGIONS.iter().map(|r| (format!("edge-{r}"), *r)).collect();
        StoreFleet::start_nodes(portico, initial, dir, &nodes).await
    }

    /// [`StoreFleet::start`] with these nodes, `(name, region)`, each region one of
    /// [`REGIONS`] (a region may have several nodes, or none).
    pub async fn start_nodes(
        portico: &Path,
        initial: &str,
        dir: &Path,
        nodes: &[(String, &str)],
    ) -> Result<StoreFleet> {
        let mut specs = Vec::new();
        for region in REGIONS {
            specs.push(MemberSpec {
                name: region.to_string(),
                client: loopback(free_port()?),
                peer: loopback(free_port()?),
                data_dir: dir.join(format!("etcd-{region}")),
                command_prefix: Vec::new(),
            });
        }
        let mut members: Vec<MemberInfo> = specs
            .iter()
            .map(|s| MemberInfo {
                name: s.name.clone(),
                client: s.client,
                peer: s.peer,
                command: String::new(),
            })
            .collect();
        for s in &specs {
            // A previous run's data would make etcd refuse the new cluster token.
            let _ = std::fs::remove_dir_all(&s.data_dir);
        }
        let etcd = tokio::task::block_in_place(|| LocalEtcd::start(specs))
            .map_err(|e| anyhow!("cannot start etcd: {e}"))?;
        for (m, pid) in members.iter_mut().zip(etcd.pids()) {
            m.command = cmdline(pid).unwrap_or_else(|| format!("(pid {pid})"));
        }
        let endpoints = etcd.endpoints();
        let url = etcd.url("portico-bench");
        let store = Store::connect(&url, Duration::from_secs(5))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        store
            .put_config(initial, Expect::Any)
            .await
            .map_err(|e| anyhow!("initial push: {e}"))?;
        let mut fleet = StoreFleet {
            nodes: Vec::new(),
            members,
            url,
            store,
            procs: Vec::new(),
            _etcd: etcd,
        };
        for (name, region) in nodes {
            let i = REGIONS
                .iter()
                .position(|r| r == region)
                .ok_or_else(|| anyhow!("node {name}: unknown region {region}"))?;
            let own_first: Vec<String> = std::iter::once(endpoints[i].clone())
                .chain(
                    endpoints
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, e)| e.clone()),
                )
                .collect();
            let name = name.clone();
            let (proxy, admin) = (loopback(free_port()?), loopback(free_port()?));
            let cache: PathBuf = dir.join(format!("cache-{name}.json"));
            let _ = std::fs::remove_file(&cache);
            let args: Vec<String> = vec![
                "--store".into(),
                format!("etcd://{}/portico-bench", own_first.join(",")),
                "--name".into(),
                name.clone(),
                "--cache".into(),
                cache.display().to_string(),
                "--region".into(),
                region.to_string(),
                "--listen".into(),
                proxy.to_string(),
                "--admin-listen".into(),
                admin.to_string(),
            ];
            let mut proc = spawn(portico, &args, &name, dir, "info")?;
            wait_listening(&mut proc, admin)?;
            fleet.procs.push(proc);
            fleet.nodes.push(NodeInfo {
                name,
                region: region.to_string(),
                proxy,
                admin,
                command: shown(portico, &args),
            });
        }
        let version = portico_core::config::fingerprint(initial);
        fleet
            .wait_running(&version)
            .await
            .context("store-following nodes did not start on the initial config")?;
        Ok(fleet)
    }

    /// Waits (up to 15 s) until every node runs `version`.
    pub async fn wait_running(&mut self, version: &str) -> Result<()> {
        let admins: Vec<SocketAddr> = self.nodes.iter().map(|n| n.admin).collect();
        let result = StatusClient::new().wait_all(&admins, version, START).await;
        if result.is_err() {
            self.check_alive()?;
        }
        result
    }

    /// Fails if a node has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.procs {
            p.check_alive()?;
        }
        Ok(())
    }

    /// The process id of node `i`.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i).map(Proc::pid)
    }
}

/// One `--config FILE` node, reloaded by rewriting FILE and sending SIGHUP.
pub struct FileNode {
    /// The node.
    pub node: NodeInfo,
    /// Its config file.
    pub path: PathBuf,
    proc: Proc,
}

impl FileNode {
    /// Writes `initial(listen, admin)` to `dir/portico.json`, starts the node and waits until
    /// it runs that document.
    pub async fn start(
        portico: &Path,
        dir: &Path,
        region: &str,
        initial: impl FnOnce(SocketAddr, SocketAddr) -> String,
    ) -> Result<FileNode> {
        let (proxy, admin) = (loopback(free_port()?), loopback(free_port()?));
        let path = dir.join("portico.json");
        let text = initial(proxy, admin);
        std::fs::write(&path, &text)?;
        let args: Vec<String> = vec!["--config".into(), path.display().to_string()];
        let name = format!("file-{region}");
        let mut proc = spawn(portico, &args, &name, dir, "info")?;
        wait_listening(&mut proc, admin)?;
        let mut node = FileNode {
            node: NodeInfo {
                name,
                region: region.to_string(),
                proxy,
                admin,
                command: shown(portico, &args),
            },
            path,
            proc,
        };
        let version = portico_core::config::fingerprint(&text);
        let result = StatusClient::new()
            .wait_all(&[admin], &version, START)
            .await;
        if result.is_err() {
            node.proc.check_alive()?;
        }
        result?;
        Ok(node)
    }

    /// The node's process id (for SIGHUP).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Fails if the node has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        Ok(self.proc.check_alive()?)
    }
}
