//! `portico-sim`: run the multi-region simulation (and take its regions down and back from another terminal), or its edge-loss benchmark.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use portico_sim::clients::Clients;
use portico_sim::control::{self, ControlServer};
use portico_sim::{Launch, SimOptions, Simulation, Topology, bench, launch, netns, supervise};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Several Portico edge nodes on one machine: regions with their own round trips, one node,
/// origin and etcd member per region (every node follows the config in that etcd cluster),
/// and one anycast-style entry per client region.
#[derive(Parser, Debug)]
#[command(name = "portico-sim", version)]
struct Args {
    /// Topology file.
    #[arg(long, default_value = "deploy/sim/topology.json", global = true)]
    topology: PathBuf,
    /// First port (entries at BASE.., nodes at BASE+10.., admins at BASE+20.., origins at
    /// BASE+30.., origin controls at BASE+40.., etcd clients at BASE+50.., etcd peers at
    /// BASE+60.., the runner's control listener at BASE+70, TLS entries at BASE+80.., the nodes'
    /// TLS listeners at BASE+90..); 0: free ports chosen at random.
    #[arg(long, default_value_t = 8100, global = true)]
    base_port: u16,
    /// Withdrawal delay, ms (overrides the topology's `withdraw_ms`).
    #[arg(long, global = true)]
    withdraw_ms: Option<u64>,
    /// Run nodes and origins as threads of this process instead of `portico` and
    /// `portico-origin` child processes (the default when both binaries sit next to this one).
    #[arg(long, global = true)]
    in_process: bool,
    /// Shared config (`portico.json`), child logs (`logs/`), node caches (`cache/`), etcd data
    /// (`etcd/`), the pid file and the control listener's address (`control`) go here.
    #[arg(long, default_value = "target/sim", global = true)]
    work_dir: PathBuf,
    /// Network mode (root, BIRD 2): a router namespace per region and one per edge node
    /// (`portico-sim-<pid>-*`), addresses from 198.18.0.0/15, round trips as `tc netem` delays
    /// on veth links, one anycast service address that every node's BIRD announces over BGP
    /// while its health check passes, routed by the routers' BIRDs to the nearest announced node
    /// (`--withdraw-ms` does not apply).
    #[arg(long, global = true)]
    netns: bool,
    /// No etcd: every node runs `--config WORK_DIR/portico.json` (a change is then an edit of
    /// that file and a SIGHUP to every node) instead of following the store.
    #[arg(long, global = true)]
    no_store: bool,
    /// Start Pebble (Let's Encrypt's test CA, Debian's `pebble` package) and manage a
    /// certificate for www.portico.test from it: one order through the store, served by every
    /// region's node (loopback mode with the store).
    #[arg(long)]
    acme: bool,
    /// Requests per second that each region's clients send through their entry while the demo
    /// runs (a new connection each), so that a rollout's gates have traffic to judge; 0: none.
    #[arg(long, default_value_t = 30)]
    clients: u32,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Kill one region's edge node under load from that region's clients and report.
    BenchEdgeLoss {
        /// Client region (default: the first).
        #[arg(long)]
        region: Option<String>,
        /// Requests per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        duration_s: u64,
        /// When the node dies, seconds into the load.
        #[arg(long, default_value_t = 4)]
        kill_at_s: u64,
        /// Where results go.
        #[arg(long, default_value = "target/bench-edge-loss")]
        out: PathBuf,
    },
    /// Take a region down in the running simulation (of --work-dir): SIGKILL its edge
    /// node(s), origin(s) and etcd member.
    RegionDown {
        /// The region, e.g. ap-south.
        region: String,
    },
    /// Bring a region back: its etcd member (from its data dir), origins, then edge nodes,
    /// which start from the store (or their cache) and run the latest config.
    RegionUp {
        /// The region, e.g. ap-south.
        region: String,
    },
    /// Push a document that validates but is wrong to the running simulation (of --work-dir):
    /// its first route sent to a pool whose only origin is a dead port, with `portico config
    /// push` and the default rollout. The canary's errors fail its gate and every node goes
    /// back to the stable version: watch the table.
    BadPush,
    /// Kill children a SIGKILLed runner left behind (by the pid file) and delete the
    /// `portico-sim-*` network namespaces of runners that are gone.
    Clean,
    /// Print the Portico config every edge node shares, for the loopback port layout: what the
    /// runner pushes to the store, less the TLS listener and the run's throwaway certificate.
    Config {
        /// Write it to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Forward every TCP connection on each LISTEN to the TO given with it (network mode's
    /// entries, plain and TLS, run inside a region's router namespace).
    #[command(hide = true)]
    Forward {
        /// Where to listen (repeatable, one per --to).
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// Where to connect, for the --listen of the same position.
        #[arg(long, required = true)]
        to: Vec<SocketAddr>,
    },
}

fn load(path: &Path, withdraw: Option<u64>) -> Result<Topology> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut t = Topology::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid topology:\n{e}", path.display()))?;
    if let Some(ms) = withdraw {
        t.withdraw = Duration::from_millis(ms);
    }
    Ok(t)
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        "info,pingora_core=warn,pingora_proxy=warn,pingora_load_balancing=error,pingora=warn,portico=warn",
    ))
    .init();
    let args = Args::parse();
    match args.command {
        Some(Cmd::Forward { listen, to }) => {
            anyhow::ensure!(
                listen.len() == to.len(),
                "forward: give one --to for each --listen ({} and {})",
                listen.len(),
                to.len()
            );
            let pairs: Vec<_> = listen.into_iter().zip(to).collect();
            portico_sim::entry::run_forward(&pairs)
        }
        Some(Cmd::RegionDown { region }) => {
            command(&args.work_dir, control::Command::RegionDown(region))
        }
        Some(Cmd::RegionUp { region }) => {
            command(&args.work_dir, control::Command::RegionUp(region))
        }
        Some(Cmd::BadPush) => command(&args.work_dir, control::Command::BadPush),
        Some(Cmd::Clean) => {
            clean(&args.work_dir);
            Ok(())
        }
        Some(Cmd::Config { out }) => {
            let t = load(&args.topology, None)?;
            let base = if args.base_port == 0 {
                8100
            } else {
                args.base_port
            };
            let text = portico_sim::sim::shared_config(&t, base);
            match out {
                Some(p) => {
                    std::fs::write(&p, text)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Some(Cmd::BenchEdgeLoss {
            region,
            rate,
            duration_s,
            kill_at_s,
            out,
        }) => {
            let t = load(&args.topology, args.withdraw_ms)?;
            let r = match region {
                Some(name) => t
                    .region_index(&name)
                    .with_context(|| format!("no region {name:?} in the topology"))?,
                None => 0,
            };
            supervise::install_signal_handlers()?;
            eprintln!("bench-edge-loss: starting the simulation…");
            let options = sim_options(
                args.in_process,
                None,
                args.work_dir.join("bench"),
                args.netns,
                args.no_store,
                false,
            );
            let mut sim = Simulation::start(t, &options)?;
            wait_for_latencies(&sim);
            eprintln!(
                "bench-edge-loss: {rate} req/s from {} for {duration_s} s, its node killed at {kill_at_s} s",
                sim.topology.regions[r].name
            );
            let (result, samples) = bench::edge_loss(
                &mut sim,
                r,
                rate,
                Duration::from_secs(duration_s),
                Duration::from_secs(kill_at_s),
            );
            sim.stop();
            anyhow::ensure!(!supervise::stop_requested(), "interrupted");
            let how = match result.withdraw_ms {
                Some(delay) => format!(
                    "the entry withdraws a node's announcement once its /healthz has failed for {delay:.0} ms \
                     (BGP with BFD), and new connections go to the next-nearest node."
                ),
                None => format!(
                    "withdrawal by BIRD/BGP: each node's BIRD runs deploy/anycast/bird.conf and its health check \
                     deploy/anycast/healthcheck.sh polls /healthz every {} ms, running `birdc disable portico_anycast` \
                     at the first failure (detection); BGP withdraws the route and the router's BIRD installs \
                     the next-nearest announced node's route in its kernel table (BGP), where the client's next \
                     connection follows it. No withdrawal delay is configured: all three are measured (the BIRDs' \
                     control sockets polled about every millisecond, so a BGP time under 1 ms means within one poll).",
                    portico_sim::bird::CHECK_INTERVAL.as_millis()
                ),
            };
            let md = format!(
                "## Edge-node loss\n\n{}\nClients of {} open a new connection per request through their entry; \
                 {how} Latency is the client's, round trips included.\n",
                bench::table(&result),
                result.region,
            );
            println!("\n{md}");
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("edge-loss.md"), &md)?;
            let json = serde_json::json!({ "result": result, "samples": samples });
            std::fs::write(
                out.join("edge-loss.json"),
                serde_json::to_string_pretty(&json)?,
            )?;
            eprintln!(
                "wrote {0}/edge-loss.md and {0}/edge-loss.json",
                out.display()
            );
            Ok(())
        }
        None => {
            let t = load(&args.topology, args.withdraw_ms)?;
            supervise::install_signal_handlers()?;
            let base = (args.base_port != 0).then_some(args.base_port);
            let options = sim_options(
                args.in_process,
                base,
                args.work_dir.clone(),
                args.netns,
                args.no_store,
                args.acme,
            );
            let mut sim = Simulation::start(t, &options)?;
            let at = SocketAddr::from((
                [127, 0, 0, 1],
                base.map_or(0, |b| b.saturating_add(control::PORT_OFFSET)),
            ));
            let file = args.work_dir.join("control");
            let control = ControlServer::start(at, Some(&file)).or_else(|e| {
                log::warn!("{e:#}; the control listener takes a free port instead");
                ControlServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), Some(&file))
            })?;
            let clients = Clients::start(sim.entries.clone(), args.clients)?;
            run_demo(&mut sim, &options, &control, &clients, args.clients)
        }
    }
}

fn sim_options(
    in_process: bool,
    base_port: Option<u16>,
    work_dir: PathBuf,
    netns: bool,
    no_store: bool,
    acme: bool,
) -> SimOptions {
    let launch = if in_process {
        Launch::InProcess
    } else {
        Launch::beside_current_exe().unwrap_or_else(|| {
            eprintln!(
                "portico-sim: no portico and portico-origin next to this binary (cargo build --release builds them); running them in this process instead"
            );
            Launch::InProcess
        })
    };
    SimOptions {
        base_port,
        launch,
        work_dir: Some(work_dir),
        netns,
        no_store,
        acme,
    }
}

/// `region-down` / `region-up`: sends the command to the runner of `work_dir`, prints its answer.
fn command(work_dir: &Path, c: control::Command) -> Result<()> {
    let addr = control::find(work_dir)?;
    print!("{}", control::send(addr, &c)?);
    Ok(())
}

/// Kills children left by a SIGKILLed runner and deletes the namespaces of runners that are gone.
fn clean(work_dir: &Path) {
    let mut done = 0;
    for pids in [work_dir.join("pids"), work_dir.join("bench/pids")] {
        if let Some((pid, name)) = launch::live_runner(&pids) {
            println!(
                "{} belongs to a running simulation ({name}, pid {pid}): left alone (Ctrl-C it)",
                pids.display()
            );
            continue;
        }
        for k in launch::kill_from_pid_file(&pids) {
            println!("killed {k}");
            done += 1;
        }
    }
    for ns in netns::leftovers() {
        if let Some(pid) = netns::owner(&ns).filter(|p| launch::alive(*p)) {
            println!(
                "network namespace {ns} belongs to a running simulation (pid {pid}): left alone"
            );
            continue;
        }
        match netns::delete(&ns) {
            Ok(k) => println!("deleted network namespace {ns} ({k} processes in it killed)"),
            Err(e) => println!("could not delete network namespace {ns}: {e}"),
        }
        done += 1;
    }
    if done == 0 {
        println!(
            "portico-sim clean: nothing left behind (no live children in {}/pids, no stale portico-sim-* namespaces)",
            work_dir.display()
        );
    }
}

fn wait_for_latencies(sim: &Simulation) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline && !supervise::stop_requested() {
        let known = (0..sim.nodes.len()).all(|i| {
            sim.choice(i)
                .is_some_and(|(_, l)| l.iter().all(|(_, v)| v.is_some()))
        });
        if known {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `path` relative to the current directory when it is under it (for commands to copy).
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What the demo prints before its first table: what runs where, and what to try.
fn intro(sim: &mut Simulation, options: &SimOptions, control: &ControlServer, rate: u32) -> String {
    let first = &sim.topology.regions[0].name;
    let last = &sim.topology.regions[sim.topology.regions.len() - 1].name;
    let work = options.work_dir.as_deref().unwrap_or(Path::new("."));
    let mode = match &options.launch {
        Launch::InProcess => "nodes and origins as threads of this process".to_string(),
        Launch::Subprocess { bin_dir } => format!(
            "nodes and origins as child processes from {}, logs in {}/logs",
            shown(bin_dir),
            work.display()
        ),
    };
    let network = match &sim.netns {
        None => "loopback (origins add the caller region's round trip, entries the client's)"
            .to_string(),
        Some(n) if n.netem => format!(
            "network namespaces {}{}-* (round trips as tc netem delays on veth links; the anycast address routed by BIRD over BGP)",
            netns::PREFIX,
            std::process::id()
        ),
        Some(_) => format!(
            "network namespaces {}{}-* (no tc netem in this kernel: origins add the caller region's round trip, client-to-node links carry none; the anycast address routed by BIRD over BGP)",
            netns::PREFIX,
            std::process::id()
        ),
    };
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("portico-sim"));
    let bin_dir = match &options.launch {
        Launch::Subprocess { bin_dir } => bin_dir.clone(),
        Launch::InProcess => me.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let portico = shown(&bin_dir.join("portico"));
    let sim_bin = shown(&me);
    let work_arg = if work == Path::new("target/sim") {
        String::new()
    } else {
        format!(" --work-dir {}", work.display())
    };
    let config = sim
        .config_path
        .as_ref()
        .map_or("(in memory)".into(), |p| shown(p));
    let source = match sim.store_url() {
        Some(url) => format!(
            "Every node follows the store {url} (one etcd member per region{}, each node's own region's first in its --store); \
             only --region, --name and the ports differ.",
            if sim.netns.is_some() {
                ", in its router namespace"
            } else {
                ""
            }
        ),
        None => format!(
            "Every node runs --config {config} (--no-store: a change is an edit of that file and a SIGHUP to every node); only --region and the ports differ."
        ),
    };
    let operator = match sim.store_url() {
        Some(url) => format!(
            "Change the config of every region (edit {config}, e.g. an origin's weight, then push it: it rolls out\n\
             in waves, canary first, each wave judged by health gates; a bad document is rolled back):\n  \
             {portico} config push {config} --bake 10 --store {url}\n  \
             {portico} config rollout --wait 300 --store {url}   # waves, gates, verdicts; 0 once promoted\n  \
             {portico} config status --wait 5 --store {url}   # every node's running version\n\
             Take a whole region down (its edge node, origin and etcd member) and back:\n  \
             {sim_bin} region-down {last}{work_arg}   # or: curl -X POST http://{ctl}/region/{last}/down\n  \
             {sim_bin} region-up {last}{work_arg}\n\
             See a rollback: push a document that validates but is wrong (a route sent to a dead port); the canary's errors roll it back:\n  \
             {sim_bin} bad-push{work_arg}\n",
            ctl = control.addr
        ),
        None => format!(
            "Take a whole region down (its edge node and origin) and back:\n  \
             {sim_bin} region-down {last}{work_arg}   # or: curl -X POST http://{ctl}/region/{last}/down\n  \
             {sim_bin} region-up {last}{work_arg}\n",
            ctl = control.addr
        ),
    };
    let inside = match (&sim.netns, &sim.routing) {
        (Some(n), Some(bird)) => format!(
            "  ip netns exec {} curl -si http://{}:{}/   # a {first} client inside its region, on the anycast service address\n  \
             ip -n {} route show {}   # which way {first} routes it now (proto bird: learned by BGP)\n  \
             birdc -s {} show route all {}/32   # every route {first}'s BIRD learned, the best marked *\n  \
             birdc -s {} show protocols   # {first}'s BGP sessions (to its node and the other routers)\n",
            n.routers[0],
            netns::SERVICE,
            netns::SERVICE_PORT,
            n.routers[0],
            netns::SERVICE,
            shown(&bird.router_socket(0)),
            netns::SERVICE,
            shown(&bird.router_socket(0)),
        ),
        _ => String::new(),
    };
    let ca = shown(&sim.tls.ca_file);
    let o = &sim.origins[0];
    let withdrawn = if sim.routing.is_some() {
        "its health check has BIRD withdraw it"
    } else {
        "withdrawn after withdraw_ms"
    };
    let kills = match sim.node_pid(0) {
        Some(pid) => format!(
            "  kill -TERM {pid}   # drain {node}: /healthz 503 for drain_ms, {withdrawn}, its clients move\n  \
             kill -KILL {pid}   # or crash it (target/release/portico-sim bench-edge-loss measures this)\n",
            node = sim.topology.edge_nodes()[0].1
        ),
        None => String::new(),
    };
    let load = if rate == 0 {
        "No clients run (--clients 0): a rollout's waves pause for insufficient traffic."
            .to_string()
    } else {
        format!(
            "Clients of every region send {rate} req/s through their entry (--clients), equally near nodes sharing them; errors are printed as they happen."
        )
    };
    let (acme, acme_note) = match (&sim.pebble, sim.acme_issued_in) {
        (Some(p), Some(took)) => {
            let port = sim.tls_entries[0].port();
            let host = portico_sim::pebble::HOST;
            let try_it = format!(
                "  curl -si --cacert {root} --resolve {host}:{port}:127.0.0.1 https://{host}:{port}/ | grep -i x-served-by   # {host}'s certificate from Pebble (--acme)\n",
                root = shown(&p.root_file),
            );
            let note = format!(
                "ACME (--acme): every node serves {host} with the certificate Pebble ({dir}) issued {:.1} s after its push to the store: \
                 one order through the store ({} order{} in {}), the HTTP-01 challenge answered by whichever node the first entry sent Pebble's validation to.\n",
                took.as_secs_f64(),
                p.orders(),
                if p.orders() == 1 { "" } else { "s" },
                shown(&work.join("pebble/pebble.log")),
                dir = p.directory,
            );
            (try_it, note)
        }
        _ => (String::new(), String::new()),
    };
    format!(
        "\nPortico multi-region simulation: {} regions, {network}, {mode}.\n\
         {source} {load} Ctrl-C stops everything.\n\n{}\n\
         {operator}\
         Try:\n  curl -si http://{}/ | grep -i -e x-served-by -e x-portico-region    # a {first} client, through its entry\n  \
         curl -si --cacert {ca} https://{}/ | grep -i x-served-by   # the same over TLS (this run's throwaway CA)\n{acme}  \
         curl --http2 --cacert {ca} -sI https://{}/ | head -1   # HTTP/2 200\n{inside}  \
         curl -s http://{}/status    # what the {first} node measured, prefers and runs\n  \
         curl -X PUT -d refuse http://{}/fault   # take {} down: watch the {first} node move\n  \
         curl -X PUT -d none http://{}/fault     # and back\n{kills}{acme_note}",
        sim.topology.regions.len(),
        sim.table(),
        sim.entries[0],
        sim.tls_entries[0],
        sim.tls_entries[0],
        sim.nodes[0].1,
        o.control,
        o.name,
        o.control,
    )
}

fn run_demo(
    sim: &mut Simulation,
    options: &SimOptions,
    control: &ControlServer,
    clients: &Clients,
    rate: u32,
) -> Result<()> {
    wait_for_latencies(sim);
    println!("{}", intro(sim, options, control, rate));
    // Reprint when an announcement, a route, a choice or a config version changes, not on
    // every millisecond of jitter in the measured latencies.
    let key = |t: &str| {
        t.lines()
            .map(|l| l.rsplit_once(" | ").map_or(l, |(a, _)| a).to_string())
            .collect::<Vec<_>>()
    };
    let mut last = key(&sim.table());
    let mut reported = std::collections::HashSet::new();
    let mut tick = std::time::Instant::now();
    while !supervise::stop_requested() {
        match control.requests.recv_timeout(Duration::from_millis(100)) {
            Ok(request) => {
                let result = match &request.command {
                    control::Command::RegionDown(r) => sim.region_down(r),
                    control::Command::RegionUp(r) => sim.region_up(r),
                    control::Command::BadPush => bad_push(sim, options),
                };
                match &result {
                    Ok(text) => print!("\n{text}"),
                    Err(e) => println!("\n!! {e:#}"),
                }
                request.answer(result.map_err(|e| format!("{e:#}\n")));
                let t = sim.table();
                println!("{t}");
                last = key(&t);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                supervise::sleep(Duration::from_millis(100));
            }
        }
        if tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        tick = std::time::Instant::now();
        if let Some(line) = client_errors(sim, &clients.take()) {
            println!("{line}");
        }
        for (name, status, tail) in sim.exited() {
            if reported.insert(name.clone()) {
                println!("!! {name} exited ({status}); last lines of its log:\n{tail}");
            }
        }
        let t = sim.table();
        if key(&t) != last {
            println!("{t}");
            last = key(&t);
        }
    }
    println!(
        "stopping the simulation (nodes drain for {} ms)…",
        sim.topology.drain.as_millis()
    );
    Ok(())
}

/// The `portico` binary the operator uses: beside the nodes' binaries, or beside this one.
fn portico_bin(options: &SimOptions) -> PathBuf {
    match &options.launch {
        Launch::Subprocess { bin_dir } => bin_dir.join("portico"),
        Launch::InProcess => std::env::current_exe()
            .ok()
            .and_then(|me| me.parent().map(|d| d.join("portico")))
            .unwrap_or_else(|| PathBuf::from("portico")),
    }
}

/// `portico-sim bad-push`: writes the wrong document beside the shared config and pushes it
/// with `portico config push` (the default rollout); answers with what the command printed.
fn bad_push(sim: &Simulation, options: &SimOptions) -> Result<String> {
    let url = sim
        .store_url()
        .context("this simulation runs without a store (--no-store): nothing to roll out")?;
    let (text, what) = portico_sim::bad_push::wrong_document(&sim.config)?;
    let dir = options
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let file = dir.join("bad-push.json");
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    let portico = portico_bin(options);
    let mut cmd = portico_sim::bad_push::push_command(
        &portico,
        &file,
        url,
        &format!("portico-sim bad-push: {what}"),
    );
    let out = cmd.output().with_context(|| {
        format!(
            "cannot run {} (build it: cargo build --profile demo -p portico)",
            portico.display()
        )
    })?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "{} config push {} failed ({}):\n{printed}",
        shown(&portico),
        shown(&file),
        out.status
    );
    Ok(format!(
        "bad-push: {what} ({})\n$ {} config push {} --store {url}\n{printed}\
         The canary runs it first: its clients' errors fail the error gate and every node returns to the stable version (watch the table).\n",
        shown(&file),
        shown(&portico),
        shown(&file),
    ))
}

/// A line naming the regions whose clients saw errors in the last second, if any did.
fn client_errors(sim: &Simulation, tallies: &[portico_sim::clients::Tally]) -> Option<String> {
    let failing: Vec<String> = sim
        .topology
        .regions
        .iter()
        .zip(tallies)
        .filter(|(_, t)| t.errors > 0)
        .map(|(r, t)| format!("{} {} of {}", r.name, t.errors, t.requests))
        .collect();
    (!failing.is_empty()).then(|| {
        format!(
            "!! client errors in the last second: {}",
            failing.join(" · ")
        )
    })
}
