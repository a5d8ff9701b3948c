//! The processes of a run: how each origin and edge node is started (and started again after a region comes back), in this process or as a child, its config from the store or the shared file.

use crate::launch::{ChildProc, Launch, PidFile};
use crate::layout::OriginInfo;
use crate::netns::Netns;
use crate::options::SimOptions;
use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use portico::{Node, NodeOptions, RunningNode};
use portico_core::config::Overrides;
use portico_origin::{OriginConfig, OriginHandle};
use portico_store::StoreUrl;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// A running edge node or origin.
pub(crate) enum Proc {
    Node(RunningNode),
    Origin(OriginHandle),
    Child(ChildProc),
}

impl Proc {
    /// Whether it still runs (an in-process node or origin runs until stopped).
    pub(crate) fn running(&mut self) -> bool {
        match self {
            Proc::Child(c) => c.exited().is_none(),
            _ => true,
        }
    }

    /// SIGKILL for a child process; an in-process node or origin is stopped (a node drains
    /// first when the topology sets `drain_ms`). Says what was done.
    pub(crate) fn kill(self, runtime: Option<&Runtime>) -> String {
        match self {
            Proc::Child(mut c) => {
                let pid = c.pid();
                c.kill();
                format!("SIGKILLed (pid {pid})")
            }
            Proc::Node(n) => {
                n.stop();
                "stopped (in process)".to_string()
            }
            Proc::Origin(o) => {
                if let Some(rt) = runtime {
                    rt.block_on(o.shutdown());
                }
                "stopped (in process)".to_string()
            }
        }
    }

    /// Its process id, for a child process.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Proc::Child(c) => Some(c.pid()),
            _ => None,
        }
    }

    /// `pid N` for a child process, `in process` otherwise.
    pub(crate) fn describe(&self) -> String {
        match self {
            Proc::Child(c) => format!("pid {}", c.pid()),
            _ => "in process".to_string(),
        }
    }
}

/// Where a node's config comes from.
pub(crate) enum NodeSource<'a> {
    /// Follows the store (`--store URL --name NODE --cache FILE`).
    Store(StoreUrl),
    /// The shared document, from `--config PATH` for a child process.
    File {
        text: &'a str,
        path: Option<&'a Path>,
    },
}

/// Starts the processes of a run, and starts them again: the binaries, the work directory,
/// the pid file and the runtime of in-process origins.
pub(crate) struct Launcher {
    /// Where `portico`, `portico-origin` and `portico-sim` are (subprocess mode).
    pub(crate) bin_dir: Option<PathBuf>,
    /// The work directory, or a scratch directory.
    pub(crate) work: PathBuf,
    /// Whether `work` is a scratch directory of this run (removed at stop).
    pub(crate) scratch: bool,
    /// Written as each child starts, so a SIGKILLed runner's children can be found.
    pub(crate) pid_file: Option<PidFile>,
    /// Runs in-process origins and the runner's store requests; taken at stop.
    pub(crate) runtime: Option<Runtime>,
}

impl Launcher {
    /// Creates the directories (`logs/`, `cache/`), the pid file and the runtime.
    pub(crate) fn prepare(options: &SimOptions) -> Result<Launcher> {
        static SCRATCH: AtomicUsize = AtomicUsize::new(0);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("sim-origins")
            .build()?;
        let bin_dir = match &options.launch {
            Launch::Subprocess { bin_dir } => Some(bin_dir.clone()),
            Launch::InProcess => None,
        };
        let (work, scratch) = match (&bin_dir, &options.work_dir) {
            (Some(_), None) => bail!("subprocess mode needs a work directory"),
            (_, Some(dir)) => (dir.clone(), false),
            (None, None) => (
                std::env::temp_dir().join(format!(
                    "portico-sim-{}-{}",
                    std::process::id(),
                    SCRATCH.fetch_add(1, Ordering::Relaxed)
                )),
                true,
            ),
        };
        for sub in ["logs", "cache"] {
            std::fs::create_dir_all(work.join(sub))
                .with_context(|| format!("cannot create {}/{sub}", work.display()))?;
        }
        let pid_file = if scratch {
            None
        } else {
            Some(PidFile::create(&work.join("pids"))?)
        };
        Ok(Launcher {
            bin_dir,
            work,
            scratch,
            pid_file,
            runtime: Some(runtime),
        })
    }

    /// The runtime (until [`Launcher::finish`]).
    pub(crate) fn rt(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime lives until stop")
    }

    /// Records a child in the pid file.
    pub(crate) fn record(&self, pid: u32, name: &str) -> Result<()> {
        match &self.pid_file {
            Some(p) => p.add(pid, name),
            None => Ok(()),
        }
    }

    /// Starts `cmd` as child `name`, its output in `logs/NAME.log`.
    pub(crate) fn spawn(&self, name: &str, cmd: Command) -> Result<Proc> {
        let child = ChildProc::spawn(name, cmd, &self.work.join(format!("logs/{name}.log")))?;
        self.record(child.pid(), name)?;
        Ok(Proc::Child(child))
    }

    /// Starts `cmd` as child `name` like [`Launcher::spawn`], stopped with its whole process
    /// group (a shell script and what it runs).
    pub(crate) fn spawn_group(&self, name: &str, cmd: Command) -> Result<Proc> {
        let child = ChildProc::spawn(name, cmd, &self.work.join(format!("logs/{name}.log")))?
            .signal_group();
        self.record(child.pid(), name)?;
        Ok(Proc::Child(child))
    }

    /// Starts origin `o`: it adds the caller region's round trip itself unless netem does.
    pub(crate) fn start_origin(
        &self,
        t: &Topology,
        net: Option<&Netns>,
        o: &OriginInfo,
    ) -> Result<Proc> {
        let rtt: Vec<(String, Duration)> = if net.is_some_and(|n| n.netem) {
            Vec::new()
        } else {
            (0..t.regions.len())
                .map(|r| (t.regions[r].name.clone(), t.rtt(r, o.region)))
                .collect()
        };
        let region_name = t.regions[o.region].name.clone();
        let Some(dir) = &self.bin_dir else {
            let mut c = OriginConfig::new(&o.name, o.addr);
            c.region = Some(region_name);
            c.log_capacity = 0;
            c.control = Some(o.control);
            c.rtt = rtt.into_iter().collect();
            // A stopped in-process origin closes its listeners shortly after: retry the bind.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match self.rt().block_on(portico_origin::start(c.clone())) {
                    Ok(h) => return Ok(Proc::Origin(h)),
                    Err(e) if Instant::now() < deadline => {
                        log::debug!("origin {}: {e}; retrying", o.name);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("origin {} cannot listen on {}", o.name, o.addr)
                        });
                    }
                }
            }
        };
        let program = dir.join("portico-origin");
        let mut cmd = match net {
            Some(n) => n.in_router(o.region, &program),
            None => Command::new(program),
        };
        cmd.args(["--name", &o.name, "--region", &region_name])
            .args(["--listen", &o.addr.to_string()])
            .args(["--control", &o.control.to_string()]);
        for (r, d) in &rtt {
            cmd.arg("--rtt").arg(format!("{r}={}", d.as_millis()));
        }
        self.spawn(&o.name, cmd)
    }

    /// Where edge node `name` caches the last document it applied.
    pub(crate) fn cache(&self, name: &str) -> PathBuf {
        self.work.join(format!("cache/{name}.json"))
    }

    /// Starts edge node `j` of the topology on `listen` and `admin`, its TLS listener on `tls`.
    pub(crate) fn start_node(
        &self,
        t: &Topology,
        net: Option<&Netns>,
        j: usize,
        (listen, admin): (SocketAddr, SocketAddr),
        tls: SocketAddr,
        source: &NodeSource<'_>,
    ) -> Result<Proc> {
        let (region, name) = &t.edge_nodes()[j];
        let region_name = t.regions[*region].name.clone();
        let cache = self.cache(name);
        let Some(dir) = &self.bin_dir else {
            let overrides = Overrides {
                region: Some(region_name),
                listen: Some(listen.to_string()),
                admin_listen: Some(admin.to_string()),
                tls_listen: Some(tls.to_string()),
            };
            return self.start_node_in_process(name, overrides, source, cache);
        };
        let program = dir.join("portico");
        let mut cmd = match net {
            Some(n) => n.in_node(j, &program),
            None => Command::new(program),
        };
        match source {
            NodeSource::Store(url) => {
                cmd.arg("--store")
                    .arg(url.to_string())
                    .args(["--name", name])
                    .arg("--cache")
                    .arg(&cache);
            }
            NodeSource::File { path, .. } => {
                cmd.arg("--config")
                    .arg(path.context("subprocess mode writes the shared config")?);
            }
        }
        cmd.args(["--region", &region_name])
            .args(["--listen", &listen.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--tls-listen", &tls.to_string()]);
        self.spawn(name, cmd)
    }

    /// An in-process node: what `portico --store` (or `--config`) does, on a thread.
    fn start_node_in_process(
        &self,
        name: &str,
        overrides: Overrides,
        source: &NodeSource<'_>,
        cache: PathBuf,
    ) -> Result<Proc> {
        let url = match source {
            NodeSource::File { text, .. } => {
                let options = NodeOptions {
                    overrides,
                    ..NodeOptions::default()
                };
                let node = self
                    .rt()
                    .block_on(Node::from_text(text, options))
                    .map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
                return Ok(Proc::Node(node.spawn()));
            }
            NodeSource::Store(url) => url,
        };
        let options = NodeOptions {
            overrides,
            ..NodeOptions::default()
        };
        let node = self
            .rt()
            .block_on(Node::from_store(url, Some(name), Some(&cache), options))
            .map_err(|e| anyhow::anyhow!("node {name}: {e}"))?;
        Ok(Proc::Node(node.spawn()))
    }

    /// Stops the runtime and removes a scratch directory (after every process has stopped).
    pub(crate) fn finish(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.pid_file = None;
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}
