//! The routes rows: Portico and HAProxy with 1 to 10,000 routes (exact hosts or `*.suffix`
//! hosts) to one origin, each on one pinned core, driven by wrk asking for a host in the
//! middle of the list; req/s (rounds alternate between the configs) and memory.

use super::configs::{self, HostKind};
use super::probe;
use crate::procs::{Proc, free_port, pinned, wait_port, which, workspace_bin};
use crate::throughput::wrk::{self, WrkRun};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One proxy with one route table.
#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    /// `portico` or `haproxy`.
    pub proxy: String,
    /// Routes.
    pub routes: usize,
    /// Their hosts.
    pub hosts: HostKind,
    /// The `Host` wrk sent.
    pub request_host: String,
    /// req/s of each round.
    pub rps: Vec<f64>,
    /// Median of `rps`.
    pub rps_median: f64,
    /// p99 latency of the median round, µs.
    pub p99_us: f64,
    /// Errors (socket errors + non-2xx) over every round.
    pub errors: u64,
    /// Resident memory after the runs, MiB.
    pub rss_mib: f64,
    /// Process start → first 200, ms.
    pub serving_ms: Option<f64>,
}

/// How the routes rows run.
#[derive(Debug, Clone)]
pub struct RouteOpts {
    /// Route counts.
    pub counts: Vec<usize>,
    /// Seconds per wrk run.
    pub duration: Duration,
    /// Rounds (each config once per round, order rotated).
    pub rounds: usize,
    /// wrk connections.
    pub connections: usize,
    /// CPU of the proxy (`taskset -c`).
    pub proxy_cpus: Option<String>,
    /// CPU of wrk.
    pub load_cpus: Option<String>,
}

struct Node {
    row: RouteRow,
    addr: SocketAddr,
    proc: Proc,
    config: String,
}

/// Runs every (count, host kind) for `proxy` (`portico` or `haproxy`) against `origin`.
/// Returns the rows and the config of the largest wildcard table (its head) for the report.
pub fn run(
    proxy: &str,
    origin: SocketAddr,
    work: &Path,
    o: &RouteOpts,
) -> Result<(Vec<RouteRow>, String)> {
    let wrk_bin = which("wrk").context("wrk is not installed (make bench-deps)")?;
    let bin = match proxy {
        "portico" => workspace_bin("portico"),
        _ => which("haproxy").context("haproxy is not installed")?,
    };
    let mut nodes = Vec::new();
    for &n in &o.counts {
        for kind in [HostKind::Exact, HostKind::Wildcard] {
            let dir = work.join(format!("routes-{proxy}-{n}-{}", kind.name()));
            std::fs::create_dir_all(&dir)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut cmd = pinned(o.proxy_cpus.as_deref(), &bin);
            let config = if proxy == "portico" {
                let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let text = configs::portico_routes(n, kind, addr, admin, origin);
                let path = dir.join("portico.json");
                std::fs::write(&path, &text)?;
                cmd.arg("--config").arg(&path).env("RUST_LOG", "warn");
                text
            } else {
                let (text, map) = configs::haproxy_routes(n, kind, addr, origin, &dir);
                std::fs::write(dir.join("hosts.map"), map)?;
                let path = dir.join("haproxy.cfg");
                std::fs::write(&path, &text)?;
                cmd.arg("-f").arg(&path).arg("-db");
                text
            };
            let started = Instant::now();
            let mut proc = Proc::spawn(&format!("{proxy}-{n}-{}", kind.name()), cmd, &dir)?;
            let request_host = kind.request_host(n / 2);
            if let Err(e) = wait_port(addr, Duration::from_secs(60)) {
                proc.check_alive()?;
                bail!("{proxy} with {n} routes: {e}");
            }
            let serving =
                probe::wait_serving(addr, &request_host, started, Duration::from_secs(30))
                    .map(|d| d.as_secs_f64() * 1000.0);
            if serving.is_none() {
                proc.check_alive()?;
                bail!(
                    "{proxy} with {n} {} routes never answered 200 for {request_host}",
                    kind.name()
                );
            }
            nodes.push(Node {
                row: RouteRow {
                    proxy: proxy.to_string(),
                    routes: n,
                    hosts: kind,
                    request_host,
                    rps: Vec::new(),
                    rps_median: 0.0,
                    p99_us: 0.0,
                    errors: 0,
                    rss_mib: 0.0,
                    serving_ms: serving,
                },
                addr,
                proc,
                config,
            });
        }
    }
    let mut p99s: Vec<Vec<(f64, f64)>> = vec![Vec::new(); nodes.len()];
    // A short warm-up of each, then the rounds.
    for (round, warm) in std::iter::once(true)
        .chain(std::iter::repeat_n(false, o.rounds))
        .enumerate()
    {
        for k in 0..nodes.len() {
            let i = (k + round) % nodes.len();
            let node = &mut nodes[i];
            node.proc.check_alive()?;
            let url = format!("http://{}/", node.addr);
            let header = format!("Host: {}", node.row.request_host);
            let run = WrkRun {
                url: &url,
                connections: o.connections,
                threads: 1,
                duration: if warm {
                    Duration::from_secs(1)
                } else {
                    o.duration
                },
                headers: &[header.as_str()],
            };
            let child = run
                .command(&wrk_bin, o.load_cpus.as_deref())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting wrk")?;
            let report = wrk::finish(child)?;
            if warm {
                continue;
            }
            node.row.rps.push(report.rps);
            node.row.errors += report.errors();
            p99s[i].push((report.rps, report.p99_us));
            eprintln!(
                "    {proxy:<8} {:>6} {:<8} round {round}: {:>8.0} req/s, p99 {:.0} µs, errors {}",
                node.row.routes,
                node.row.hosts.name(),
                report.rps,
                report.p99_us,
                report.errors()
            );
        }
    }
    let mut shown = String::new();
    let mut rows = Vec::new();
    for (mut node, mut runs) in nodes.into_iter().zip(p99s) {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(mid) = runs.get(runs.len() / 2) {
            node.row.rps_median = mid.0;
            node.row.p99_us = mid.1;
        }
        node.row.rss_mib = probe::rss_mib(node.proc.pid());
        if node.row.hosts == HostKind::Wildcard && Some(&node.row.routes) == o.counts.iter().max() {
            shown = head(&node.config, 40);
        }
        node.proc.terminate(Duration::from_secs(5));
        rows.push(node.row);
    }
    Ok((rows, shown))
}

/// The first `n` lines of a config and how many more there are.
pub fn head(text: &str, n: usize) -> String {
    let total = text.lines().count();
    let mut out: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    if total > n {
        out.push_str(&format!("… ({} more lines; {total} in all)\n", total - n));
    }
    out
}
