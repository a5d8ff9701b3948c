//! `bench-scale`: what one node costs as origins and routes grow (issue 19) — Portico beside
//! HAProxy (same servers, same checks) and nginx (memory and reloads; no active checks) — a
//! table with the targets, PASS/FAIL, every config's head, and JSON.

use anyhow::{Context, Result, bail};
use clap::Parser;
use portico_bench::procs::{which, workspace_bin};
use portico_bench::scale::configs::{self, Estate, NodeSection};
use portico_bench::scale::origins::{self, Kind, OriginRow, Origins, Phases};
use portico_bench::scale::report;
use portico_bench::scale::routes::{self, RouteOpts, RouteRow};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One node in front of 10 to 5,000 origins (one nginx answering on that many loopback
/// addresses), probing every 5 s and every 1 s; then 1 to 10,000 routes under wrk.
#[derive(Parser, Debug)]
#[command(name = "bench-scale")]
struct Args {
    /// Origin counts (pools of up to 50 origins, one route per pool).
    #[arg(long, default_value = "10,100,1000,5000", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Probe intervals, ms.
    #[arg(long, default_value = "5000,1000", value_delimiter = ',')]
    intervals_ms: Vec<u64>,
    /// Origin counts of the TLS-origin rows (5 s probes); `--tls-sizes` alone: none.
    #[arg(long, default_value = "1000", value_delimiter = ',', num_args = 0..)]
    tls_sizes: Vec<usize>,
    /// Origin counts of the store-reload rows (a node following etcd; 5 s probes);
    /// `--store-sizes` alone: none.
    #[arg(long, default_value = "1000", value_delimiter = ',', num_args = 0..)]
    store_sizes: Vec<usize>,
    /// Proxies of the origins rows: portico, haproxy, nginx.
    #[arg(long, default_value = "portico,haproxy,nginx", value_delimiter = ',')]
    proxies: Vec<String>,
    /// Route counts of the routes rows (exact and wildcard hosts each); `--routes` alone: none.
    #[arg(long, default_value = "1,1000,10000", value_delimiter = ',', num_args = 0..)]
    routes: Vec<usize>,
    /// Proxies of the routes rows: portico, haproxy.
    #[arg(long, default_value = "portico,haproxy", value_delimiter = ',')]
    route_proxies: Vec<String>,
    /// Seconds per wrk run of the routes rows.
    #[arg(long, default_value_t = 3)]
    route_seconds: u64,
    /// Rounds of the routes rows (the median is reported).
    #[arg(long, default_value_t = 3)]
    route_rounds: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Idle window after probes settle, s (1 s probes: at most 5 s).
    #[arg(long, default_value_t = 10)]
    idle_s: u64,
    /// Reloads once settled (one origin's weight changes each time).
    #[arg(long, default_value_t = 10)]
    reloads: usize,
    /// Reloads right after start, while probes start (a second start of the same config).
    #[arg(long, default_value_t = 5)]
    start_reloads: usize,
    /// Sequential keep-alive GETs for the latency numbers.
    #[arg(long, default_value_t = 300)]
    gets: usize,
    /// Longest wait for every origin's first good probe, s.
    #[arg(long, default_value_t = 60)]
    settle_timeout_s: u64,
    /// Longest wait for one reload, s.
    #[arg(long, default_value_t = 30)]
    reload_timeout_s: u64,
    /// A row stops when the proxy's memory passes this, MiB.
    #[arg(long, default_value_t = 6144.0)]
    max_rss_mib: f64,
    /// CPU of the proxy in the routes rows (`taskset -c`).
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// CPU of wrk and the origin nginx.
    #[arg(long, default_value = "1")]
    load_cpus: String,
    /// Where results go.
    #[arg(long, default_value = "target/bench-scale")]
    out: PathBuf,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let portico = workspace_bin("portico");
    if !portico.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p portico -p portico-origin -p portico-bench` (make bench-scale does)",
            portico.display()
        );
    }
    std::fs::create_dir_all(&args.out)?;
    args.out = args.out.canonicalize()?;
    let work = args.out.join("work");
    let configs_dir = args.out.join("configs");
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&configs_dir)?;
    let started = Instant::now();
    let load_before = loadavg();
    let max_plain = args
        .sizes
        .iter()
        .chain(&args.store_sizes)
        .copied()
        .max()
        .unwrap_or(1);
    let max_tls = args.tls_sizes.iter().copied().max().unwrap_or(0);
    eprintln!(
        "bench-scale: origins {:?} × probes {:?} ms (TLS rows {:?}, store rows {:?}) × {:?}; routes {:?} × {:?}; load average {load_before}; results in {}",
        args.sizes,
        args.intervals_ms,
        args.tls_sizes,
        args.store_sizes,
        args.proxies,
        args.routes,
        args.route_proxies,
        args.out.display()
    );
    let mut origin_nginx = Origins::start(&work, max_plain.max(1), max_tls, Some(&args.load_cpus))?;
    let ph = Phases {
        settle_timeout: Duration::from_secs(args.settle_timeout_s),
        idle: Duration::from_secs(args.idle_s),
        reloads: args.reloads,
        start_reloads: args.start_reloads,
        reload_timeout: Duration::from_secs(args.reload_timeout_s),
        gets: args.gets,
        max_rss_mib: args.max_rss_mib,
    };
    let mut bins = Vec::new();
    for p in &args.proxies {
        let found = match p.as_str() {
            "portico" => Some((Kind::Portico, portico.clone())),
            "haproxy" => which("haproxy").map(|b| (Kind::Haproxy, b)),
            "nginx" => which("nginx").map(|b| (Kind::Nginx, b)),
            other => bail!("unknown proxy {other}: portico, haproxy or nginx"),
        };
        match found {
            Some(f) => bins.push(f),
            None => eprintln!("{}", portico_bench::procs::skip_line(p, p)),
        }
    }
    let (plain_port, tls_origin) = (origin_nginx.plain_port, origin_nginx.tls.clone());
    let estate = |n: usize, interval_ms: u64, tls: bool| -> Estate {
        Estate {
            origins: n,
            port: if tls {
                tls_origin.as_ref().map_or(0, |t| t.0)
            } else {
                plain_port
            },
            interval_ms,
            tls,
            ca_file: tls_origin.as_ref().map(|t| t.1.display().to_string()),
            generation: 0,
        }
    };
    let mut plan: Vec<(Kind, PathBuf, Estate)> = Vec::new();
    for &n in &args.sizes {
        for (i, &interval) in args.intervals_ms.iter().enumerate() {
            for (kind, bin) in &bins {
                if *kind == Kind::Nginx && i > 0 {
                    continue;
                }
                plan.push((*kind, bin.clone(), estate(n, interval, false)));
            }
        }
    }
    for &n in &args.tls_sizes {
        for (kind, bin) in &bins {
            plan.push((*kind, bin.clone(), estate(n, 5000, true)));
        }
    }
    let mut rows: Vec<OriginRow> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (kind, bin, e) in &plan {
        let mut phases = ph.clone();
        phases.idle = phases
            .idle
            .min(Duration::from_millis((2 * e.interval_ms).max(5000)));
        eprintln!(
            "  {:>5} origins, probes every {} ms{}, {}…",
            e.origins,
            e.interval_ms,
            if e.tls { ", TLS" } else { "" },
            kind.name()
        );
        // One proxy failing one row (its processes are killed) does not lose the others.
        match origins::run_row(*kind, e, bin, &work, &phases) {
            Ok(row) => {
                eprintln!("{}", summary(&row));
                rows.push(row);
            }
            Err(err) => {
                eprintln!("        FAILED: {err:#}");
                failures.push(format!(
                    "{} with {} origins: {err:#}",
                    kind.name(),
                    e.origins
                ));
            }
        }
        origin_nginx.check_alive()?;
    }
    if !args.store_sizes.is_empty() && bins.iter().any(|(k, _)| *k == Kind::Portico) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        for &n in &args.store_sizes {
            eprintln!("  {n:>5} origins, probes every 5000 ms, portico following etcd…");
            let row = origins::run_store_row(&estate(n, 5000, false), &portico, &work, &ph, &rt)
                .with_context(|| format!("the store row with {n} origins"))?;
            eprintln!("{}", summary(&row));
            rows.push(row);
        }
    }
    let mut route_rows: Vec<RouteRow> = Vec::new();
    let mut route_configs = Vec::new();
    if !args.routes.is_empty() {
        let ro = RouteOpts {
            counts: args.routes.clone(),
            duration: Duration::from_secs(args.route_seconds),
            rounds: args.route_rounds,
            connections: args.connections,
            proxy_cpus: Some(args.proxy_cpus.clone()),
            load_cpus: Some(args.load_cpus.clone()),
        };
        let origin = SocketAddr::from((configs::origin_ip(0), origin_nginx.plain_port));
        for p in &args.route_proxies {
            eprintln!(
                "  routes {:?} through {p} (pinned to CPU {}, wrk on {})…",
                args.routes, args.proxy_cpus, args.load_cpus
            );
            let (r, shown) = routes::run(p, origin, &work, &ro)
                .with_context(|| format!("routes through {p}"))?;
            route_rows.extend(r);
            route_configs.push((p.clone(), shown));
        }
    }
    drop(origin_nginx);
    let load_after = loadavg();
    let targets = report::targets(&rows, &route_rows);
    let text = render(
        &args,
        &rows,
        &route_rows,
        &targets,
        &route_configs,
        &configs_dir,
        started,
        &load_before,
        &load_after,
    )?;
    println!("{text}");
    for f in &failures {
        println!("FAILED row: {f}");
    }
    std::fs::write(args.out.join("results.md"), &text)?;
    let json = serde_json::json!({
        "args": format!("{args:?}"),
        "elapsed_s": started.elapsed().as_secs_f64(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "origins": rows,
        "routes": route_rows,
        "targets": targets,
        "failed_rows": failures,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    eprintln!(
        "wrote {0}/results.json, {0}/results.md and {0}/configs/ in {1:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn summary(r: &OriginRow) -> String {
    format!(
        "        serving {:.0} ms, CPU to settle {:.2} s{}, idle {}, RSS {:.0} MiB (peak {:.0}), reloads {:?} (+{} timed out), while starting {:?} (+{} timed out) {}",
        r.serving_ms.unwrap_or(f64::NAN),
        r.settle_cpu_s,
        r.settle_s
            .map_or(" (not settled)".into(), |s| format!(" in {s:.1} s")),
        r.idle_cpu_pct.map_or("—".into(), |c| format!("{c:.1} %")),
        r.rss_mib,
        r.rss_peak_mib,
        r.reload_ms
            .iter()
            .map(|v| v.round() as i64)
            .collect::<Vec<_>>(),
        r.reload_timeouts,
        r.start_reload_ms
            .iter()
            .map(|v| v.round() as i64)
            .collect::<Vec<_>>(),
        r.start_reload_timeouts,
        r.note
    )
}

#[allow(clippy::too_many_arguments)]
fn render(
    args: &Args,
    rows: &[OriginRow],
    route_rows: &[RouteRow],
    targets: &[report::Target],
    route_configs: &[(String, String)],
    configs_dir: &std::path::Path,
    started: Instant,
    load_before: &str,
    load_after: &str,
) -> Result<String> {
    let mut s = format!(
        "## bench-scale\n\nOne node in front of N origins (one nginx answering on N loopback addresses 127.1.x.y, pools of ≤ {}), no client traffic but the probes; \
         CPU from /proc/PID/stat (every process of the proxy), idle CPU averaged over up to {} s once every origin passed its first probe. \
         Reloads change one origin's weight: Portico's is applied when its log says `config V applied` (file + SIGHUP, or an etcd put for `portico-store`), \
         HAProxy's (master-worker, SIGUSR2) and nginx's (SIGHUP) when a new connection is answered by the new generation. \
         KiB/origin: RSS beyond the smallest row of the same proxy and interval, per extra origin. {} s in all; load average {load_before} before, {load_after} after (a shared 2-core machine).\n\n",
        configs::POOL_SIZE,
        args.idle_s,
        started.elapsed().as_secs()
    );
    s.push_str(&report::origins_table(rows));
    if !route_rows.is_empty() {
        s.push_str(&format!(
            "\nRoutes: one origin behind N routes; the proxy pinned to CPU {}, wrk (1 thread, {} connections, {} s × {} rounds, median) and the origin on CPU {}; the request's Host matches the route in the middle of the list.\n\n",
            args.proxy_cpus, args.connections, args.route_seconds, args.route_rounds, args.load_cpus
        ));
        s.push_str(&report::routes_table(route_rows));
    }
    s.push_str("\nTargets (issue 19), checked on Portico:\n\n");
    s.push_str(&report::targets_table(targets));
    // The configs of the largest estate each proxy ran: written whole, printed as a head.
    let largest = rows
        .iter()
        .filter(|r| !r.tls)
        .map(|r| r.origins)
        .max()
        .unwrap_or(0);
    if largest > 0 {
        let e = Estate {
            origins: largest,
            port: 0,
            interval_ms: 5000,
            tls: false,
            ca_file: None,
            generation: 0,
        };
        let listen: SocketAddr = "127.0.0.1:8080".parse()?;
        let dir = PathBuf::from("/tmp/bench-scale");
        let portico = configs::portico(
            &e,
            NodeSection::File {
                listen,
                admin: "127.0.0.1:9901".parse()?,
            },
        );
        let (haproxy, map) = configs::haproxy(&e, listen, &dir);
        let nginx = configs::nginx(&e, listen, &dir);
        for (name, text) in [
            ("portico.json", &portico),
            ("haproxy.cfg", &haproxy),
            ("hosts.map", &map),
            ("nginx.conf", &nginx),
        ] {
            std::fs::write(configs_dir.join(format!("{largest}-{name}")), text)?;
        }
        for (name, text, servers) in [
            ("Portico", &portico, portico.matches("\"address\"").count()),
            ("HAProxy", &haproxy, haproxy.matches("    server o").count()),
            (
                "nginx",
                &nginx,
                nginx.matches("        server 127.").count(),
            ),
        ] {
            s.push_str(&format!(
                "\n{name} with {largest} origins ({servers} servers; ports shown as 0; whole file in {}):\n```\n{}```\n",
                configs_dir.display(),
                routes::head(text, 30)
            ));
        }
    }
    for (p, shown) in route_configs {
        s.push_str(&format!(
            "\n{p} with the largest wildcard route table:\n```\n{shown}```\n"
        ));
    }
    Ok(s)
}
