//! `soak`: the churn soak — open-loop GETs and POSTs through one Portico node while its origins
//! are killed, hung and 503'd, its config is reloaded and slow clients hang on; exits non-zero
//! when a GET was lost, a POST error is not explained by the origins' own logs, a POST reached
//! an origin twice, or the node's memory or file descriptors grew past a bound.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use portico_bench::procs::{Proc, free_port, wait_port, workspace_bin};
use portico_bench::soak::attacker::{self, AttackSpec, AttackTally};
use portico_bench::soak::chaos::{self, Slot, State};
use portico_bench::soak::config::{self, LIMITS, Spec};
use portico_bench::soak::load::{self, LoadSpec};
use portico_bench::soak::origin;
use portico_bench::soak::{
    Fds, KILL_WINDOW_MS, STALE_AFTER_KILL_MS, UNLOGGED_BEFORE_KILL_MS, fds, footprint, http_call,
    judge, metric_sum,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "soak", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Sub>,
    #[command(flatten)]
    run: Args,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Run one soak origin (started by the soak itself).
    #[command(hide = true)]
    Origin {
        /// Name in `X-Served-By` and the body.
        #[arg(long)]
        name: String,
        /// Where it serves.
        #[arg(long)]
        listen: SocketAddr,
        /// Its control listener (`PUT /fault`).
        #[arg(long)]
        control: SocketAddr,
        /// Its request log (appended to).
        #[arg(long)]
        log: PathBuf,
    },
}

/// The churn soak against Portico (release binaries from `make build`, or `PORTICO_BIN_DIR`).
#[derive(clap::Args, Debug)]
struct Args {
    /// How long the load runs, seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Share of the requests that are POSTs.
    #[arg(long, default_value_t = 0.3)]
    post_share: f64,
    /// Seed of every random choice (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest time between two fault steps (a fault or a restore), ms.
    #[arg(long, default_value_t = 1000)]
    fault_min_ms: u64,
    /// Longest time between two fault steps, ms.
    #[arg(long, default_value_t = 4000)]
    fault_max_ms: u64,
    /// At most this many origins down at once (of three).
    #[arg(long, default_value_t = 1)]
    max_faulty: usize,
    /// Shortest time between two reloads, ms.
    #[arg(long, default_value_t = 2000)]
    reload_min_ms: u64,
    /// Longest time between two reloads, ms.
    #[arg(long, default_value_t = 5000)]
    reload_max_ms: u64,
    /// Connections trickling a request head.
    #[arg(long, default_value_t = 50)]
    trickle: usize,
    /// Idle keep-alive connections.
    #[arg(long, default_value_t = 50)]
    idle: usize,
    /// Seconds between two bytes of a trickled head.
    #[arg(long, default_value_t = 2)]
    byte_every_s: u64,
    /// A request without a whole answer after this long is lost, ms.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
    /// The pool's connect timeout, ms.
    #[arg(long, default_value_t = 500)]
    connect_ms: u64,
    /// The pool's response timeout, ms.
    #[arg(long, default_value_t = 1000)]
    response_ms: u64,
    /// The pool's probe interval, ms.
    #[arg(long, default_value_t = 500)]
    probe_ms: u64,
    /// Fail when the node's RSS grew by more than this from start to end, MiB.
    #[arg(long, default_value_t = 64)]
    max_rss_growth_mib: u64,
    /// Fail when the node's open fds, not counting its idle upstream connections (kept up to
    /// a minute, as many as the load's peak needed), grew by more than this from start to end.
    #[arg(long, default_value_t = 64)]
    max_fd_growth: u64,
    /// Leave `node.limits` out even if the build accepts it.
    #[arg(long)]
    no_limits: bool,
    /// Where logs and the config go.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = if cli.cmd.is_some() { 1 } else { 2 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.cmd {
        Some(Sub::Origin {
            name,
            listen,
            control,
            log,
        }) => rt.block_on(origin::serve(name, listen, control, log)),
        None => {
            let failures = rt.block_on(soak(cli.run))?;
            if failures.is_empty() {
                println!("\nsoak passed");
                Ok(())
            } else {
                for f in &failures {
                    eprintln!("FAILED: {f}");
                }
                std::process::exit(1);
            }
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Splits one seed into independent ones (splitmix64).
fn derive(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

async fn soak(args: Args) -> Result<Vec<String>> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let portico = workspace_bin("portico");
    anyhow::ensure!(
        portico.is_file(),
        "{} is missing: run `make build` (or set PORTICO_BIN_DIR)",
        portico.display()
    );
    let exe = std::env::current_exe().context("cannot find the soak binary itself")?;
    std::fs::create_dir_all(&args.out)?;
    let out = args.out.canonicalize()?;
    let dir = out.join("work");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "soak: {} s at {} req/s ({:.0} % POST), seed {seed} (rerun with --seed {seed}); node {}; logs in {}",
        args.seconds,
        args.rate,
        args.post_share * 100.0,
        portico.display(),
        dir.display()
    );

    // Origins.
    let mut slots = Vec::new();
    for name in ["a", "b", "c"] {
        let mut slot = Slot {
            name: name.to_string(),
            port: free_port()?,
            control: loopback(free_port()?),
            log: origin::log_path(&dir, name),
            proc: None,
            state: State::Up,
            starts: 0,
        };
        slot.start(&exe, &dir).await?;
        slots.push(slot);
    }

    // The node's config, with limits when this build takes them.
    let (port, admin) = (free_port()?, free_port()?);
    let mut spec = Spec {
        port,
        admin,
        origins: slots.iter().map(|s| (s.name.clone(), s.port)).collect(),
        connect_ms: args.connect_ms,
        response_ms: args.response_ms,
        probe_ms: args.probe_ms,
        limits: None,
    };
    let path = dir.join("portico.json");
    let weights = [50, 50, 50];
    if !args.no_limits {
        spec.limits = Some(LIMITS.to_string());
        match config::check(&portico, &config::render(&spec, &weights), &path)? {
            Ok(()) => println!("node.limits: {LIMITS}"),
            Err(e) => {
                let first = e.lines().next().unwrap_or_default().to_string();
                println!(
                    "node.limits: not accepted by this build ({first}); the node runs without client limits"
                );
                spec.limits = None;
            }
        }
    }
    let doc = config::render(&spec, &weights);
    if let Err(e) = config::check(&portico, &doc, &path)? {
        bail!("the soak's config does not validate:\n{e}");
    }
    println!("config (weights change with every reload):\n```json\n{doc}```");
    let token = format!("soak-{:016x}", derive(seed, 99));
    let mut cmd = Command::new(&portico);
    cmd.arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("PORTICO_ADMIN_TOKEN", &token);
    let mut node = Proc::spawn("portico", cmd, &dir)?;
    let target = loopback(port);
    if let Err(e) = wait_port(target, Duration::from_secs(15)) {
        node.check_alive()?;
        return Err(e.into());
    }
    wait_port(loopback(admin), Duration::from_secs(15))?;
    // Every origin answers through the node before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..30 {
            if let Ok((200, body)) = http_call(target, "GET", "/warm", &[], "").await {
                seen.insert(body.trim().to_string());
            }
        }
        if seen.len() == 3 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every origin answered through the node within 15 s (saw {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = node.pid();
    let origin_ports: Vec<u16> = slots.iter().map(|s| s.port).collect();
    let fds_now = || fds(pid, &origin_ports, port).unwrap_or_default();
    let start_fp = footprint(pid).context("the node is gone")?;
    let start_fds = fds_now();
    let start_cpu = portico_bench::throughput::procinfo::cpu_time(pid);
    println!(
        "node pid {pid} at start: RSS {:.1} MiB, {} open fds ({} upstream connections)",
        mib(start_fp.rss_kib),
        start_fds.total,
        start_fds.upstream
    );

    // Load, chaos, reloads and the attacker, all at once.
    let stop_load = Arc::new(AtomicBool::new(false));
    let stop_rest = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::run(
        target,
        LoadSpec {
            rate: args.rate,
            post_share: args.post_share,
            client_timeout: Duration::from_millis(args.client_timeout_ms),
            seed: derive(seed, 1),
        },
        stop_load.clone(),
    ));
    anyhow::ensure!(
        (1..=2).contains(&args.max_faulty),
        "--max-faulty is 1 or 2 (of three origins)"
    );
    let slots = Arc::new(tokio::sync::Mutex::new(slots));
    let faults = tokio::spawn(chaos::faults(
        slots.clone(),
        exe.clone(),
        dir.clone(),
        derive(seed, 2),
        (args.fault_min_ms, args.fault_max_ms),
        args.max_faulty,
        stop_rest.clone(),
    ));
    let reloads = tokio::spawn(chaos::reloads(
        spec.clone(),
        path.clone(),
        pid,
        loopback(admin),
        token,
        derive(seed, 3),
        (args.reload_min_ms, args.reload_max_ms),
        stop_rest.clone(),
    ));
    let attack = tokio::spawn(attacker::run(
        target,
        AttackSpec {
            trickle: args.trickle,
            idle: args.idle,
            byte_every: Duration::from_secs(args.byte_every_s),
        },
        stop_rest.clone(),
    ));
    let t0 = Instant::now();
    let mut peak = start_fp;
    let mut last_print = Instant::now();
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        node.check_alive()
            .context("the node died during the soak")?;
        if let Some(f) = footprint(pid) {
            peak.rss_kib = peak.rss_kib.max(f.rss_kib);
            peak.fds = peak.fds.max(f.fds);
            if last_print.elapsed() >= Duration::from_secs(30) {
                println!(
                    "  {:>4} s: RSS {:.1} MiB, {} fds",
                    t0.elapsed().as_secs(),
                    mib(f.rss_kib),
                    f.fds
                );
                last_print = Instant::now();
            }
        }
    }
    stop_load.store(true, Ordering::Relaxed);
    let sent = load.await?;
    stop_rest.store(true, Ordering::Relaxed);
    let tally = faults.await??;
    let reloads = reloads.await??;
    let attack: AttackTally = attack.await?;
    node.check_alive()
        .context("the node died during the soak")?;

    // Let the node close what the clients left, then measure again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end_fp = footprint(pid).context("the node is gone")?;
    let end_fds: Fds = fds_now();
    let cpu = portico_bench::throughput::procinfo::cpu_time(pid).saturating_sub(start_cpu);
    let (_, metrics) = http_call(loopback(admin), "GET", "/metrics", &[], "").await?;
    let reload_counts = portico_bench::config_bench::status::StatusClient::new()
        .reloads(loopback(admin))
        .await
        .unwrap_or_default();

    let slots = slots.lock().await;
    let logs: Vec<Vec<origin::Logged>> = slots
        .iter()
        .map(|s| origin::parse_log(&std::fs::read_to_string(&s.log).unwrap_or_default()))
        .collect();
    let kills: Vec<(usize, u64)> = tally
        .events
        .iter()
        .filter(|e| e.what == "kill")
        .map(|e| (e.origin, e.at_ms))
        .collect();
    let v = judge(&sent, &logs, &kills);
    drop(slots);

    let applied = |src: &str| {
        reload_counts
            .get(&format!("{src}/applied"))
            .copied()
            .unwrap_or(0)
    };
    let rejected: u64 = reload_counts
        .iter()
        .filter(|(k, _)| k.ends_with("/rejected"))
        .map(|(_, n)| *n)
        .sum();
    let by = |v: &[(String, u64)]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            v.iter()
                .map(|(w, n)| format!("{n}× {w}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let median = |v: &[f64]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            format!("{:.1} s", s[s.len() / 2])
        }
    };
    let rss_growth = end_fp.rss_kib as i64 - start_fp.rss_kib as i64;
    let fd_growth = end_fds.own() as i64 - start_fds.own() as i64;

    println!("\n| soak ({} s, seed {seed}) | |", args.seconds);
    println!("|---|---:|");
    println!(
        "| requests sent | {} ({} GET, {} POST) |",
        v.sent, v.gets, v.posts
    );
    println!(
        "| idempotent requests lost (GETs without a good answer) | {} ({}) |",
        v.gets_lost,
        by(&v.gets_lost_by)
    );
    println!(
        "| POST errors | {} ({}) |",
        v.post_errors,
        by(&v.post_errors_by)
    );
    println!(
        "| POSTs that reached a failing origin (origins' logs) | {} ({} at a hung or 503 origin, {} cut by a kill: at the origin up to {} ms before it, or logged nowhere and sent {} ms before to {} ms after it) |",
        v.posts_at_faulty + v.posts_cut_by_kill,
        v.posts_at_faulty,
        v.posts_cut_by_kill,
        KILL_WINDOW_MS,
        UNLOGGED_BEFORE_KILL_MS,
        STALE_AFTER_KILL_MS
    );
    println!(
        "| POST errors no origin failure explains | {} |",
        v.post_errors_unexplained
    );
    println!(
        "| POSTs that reached an origin twice | {} |",
        v.posts_sent_twice
    );
    println!(
        "| origin faults | {} kills, {} hangs, {} × 503, {} restores |",
        tally.count("kill"),
        tally.count("hang"),
        tally.count("503"),
        tally.count("restore")
    );
    println!(
        "| reloads applied (node's metrics) | {} of {} by SIGHUP, {} of {} by PUT /config ({} answered 200); {} rejected |",
        applied("file"),
        reloads.sighup,
        applied("admin"),
        reloads.put,
        reloads.put_ok,
        rejected
    );
    println!(
        "| node RSS start → end (peak) | {:.1} → {:.1} MiB ({:.1}) |",
        mib(start_fp.rss_kib),
        mib(end_fp.rss_kib),
        mib(peak.rss_kib)
    );
    println!(
        "| node open fds start → end (peak) | {} → {} ({}); without idle upstream connections {} → {}; client connections left {} |",
        start_fds.total,
        end_fds.total,
        peak.fds,
        start_fds.own(),
        end_fds.own(),
        end_fds.clients
    );
    println!(
        "| node CPU | {:.1} s ({:.0} % of one core) |",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0
    );
    println!(
        "| retries made / denied, ejections (node's metrics) | {} / {}, {} |",
        metric_sum(&metrics, "portico_retries_total"),
        metric_sum(&metrics, "portico_retries_denied_total"),
        metric_sum(&metrics, "portico_ejections_total")
    );
    println!(
        "| slow clients: trickled heads | {} opened, {} closed by the node (median after {}) |",
        attack.trickle_opened,
        attack.trickle_closed_s.len(),
        median(&attack.trickle_closed_s)
    );
    println!(
        "| slow clients: idle keep-alive | {} opened, {} closed by the node (median {} after the answer) |",
        attack.idle_opened,
        attack.idle_closed_s.len(),
        median(&attack.idle_closed_s)
    );
    if attack.failed_opens > 0 {
        println!(
            "| attacker connections refused or unanswered | {} |",
            attack.failed_opens
        );
    }
    if spec.limits.is_none() {
        println!("\n(node.limits not set: this build does not accept it, or --no-limits)");
    }

    let mut failures = Vec::new();
    if v.gets_lost > 0 {
        failures.push(format!(
            "{} idempotent requests lost ({})",
            v.gets_lost,
            by(&v.gets_lost_by)
        ));
    }
    if v.post_errors_unexplained > 0 {
        failures.push(format!(
            "{} POST errors did not reach a failing origin (ids {:?}; see {})",
            v.post_errors_unexplained,
            v.unexplained_ids,
            dir.display()
        ));
    }
    if v.posts_sent_twice > 0 {
        failures.push(format!(
            "{} POSTs reached an origin twice",
            v.posts_sent_twice
        ));
    }
    if rss_growth > (args.max_rss_growth_mib * 1024) as i64 {
        failures.push(format!(
            "node RSS grew {:.1} MiB (bound {} MiB)",
            rss_growth as f64 / 1024.0,
            args.max_rss_growth_mib
        ));
    }
    if fd_growth > args.max_fd_growth as i64 {
        failures.push(format!(
            "node open fds (without idle upstream connections) grew by {fd_growth} (bound {})",
            args.max_fd_growth
        ));
    }
    if rejected > 0 {
        failures.push(format!("{rejected} reloads were rejected"));
    }
    if !reloads.put_failures.is_empty() {
        failures.push(format!(
            "PUT /config failed {} times: {}",
            reloads.put_failures.len(),
            reloads.put_failures[0]
        ));
    }
    if applied("file") < reloads.sighup || applied("admin") < reloads.put_ok {
        failures.push(format!(
            "reloads applied {} + {} of {} + {} sent",
            applied("file"),
            applied("admin"),
            reloads.sighup,
            reloads.put
        ));
    }
    node.terminate(Duration::from_secs(5));
    Ok(failures)
}
