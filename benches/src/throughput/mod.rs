//! Throughput benchmark: Portico against nginx and HAProxy, one pinned worker each, driven by wrk.

pub mod peers;
pub mod procinfo;
pub mod stats;
pub mod wrk;

use crate::procs::{skip_line, which};
use anyhow::{Context, Result, bail};
use peers::{OriginKind, PeerKind, Placement, Running, http_get};
use stats::{fmt_latency, fmt_percent, fmt_rate, fmt_ratio, median, ratio};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wrk::{WrkReport, WrkRun};

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// A small response over keep-alive connections.
    Small,
    /// A 1 MiB response over keep-alive connections.
    Large,
    /// Many concurrent keep-alive connections (also measures memory per connection).
    Conns,
    /// A new connection for every request (`Connection: close`).
    NewConn,
}

impl CaseKind {
    /// Every case, in report order.
    pub const ALL: [CaseKind; 4] = [
        CaseKind::Small,
        CaseKind::Large,
        CaseKind::Conns,
        CaseKind::NewConn,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CaseKind::Small => "small",
            CaseKind::Large => "large",
            CaseKind::Conns => "conns",
            CaseKind::NewConn => "newconn",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A workload made concrete: what wrk sends and how.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which workload.
    pub kind: CaseKind,
    /// Request path.
    pub path: &'static str,
    /// wrk connections.
    pub connections: usize,
    /// Extra request headers.
    pub headers: Vec<&'static str>,
}

impl Case {
    /// The concrete case for `kind` with the command line's connection counts.
    pub fn new(kind: CaseKind, opts: &Options) -> Self {
        let (path, connections, headers) = match kind {
            CaseKind::Small => ("/", opts.connections, vec![]),
            CaseKind::Large => ("/bytes/1048576", opts.large_connections, vec![]),
            CaseKind::Conns => ("/", opts.many_connections, vec![]),
            CaseKind::NewConn => ("/", opts.connections, vec!["Connection: close"]),
        };
        Case {
            kind,
            path,
            connections,
            headers,
        }
    }

    /// A one-line description.
    pub fn title(&self) -> String {
        let what = match self.kind {
            CaseKind::Small => "small response (13 B) over keep-alive",
            CaseKind::Large => "1 MiB response over keep-alive",
            CaseKind::Conns => "concurrent keep-alive connections, small response",
            CaseKind::NewConn => "new connection per request (Connection: close), small response",
        };
        format!(
            "{what}: GET {}, {} connections",
            self.path, self.connections
        )
    }
}

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// Length of each measured run.
    pub duration: Duration,
    /// Measured runs per proxy and case.
    pub rounds: usize,
    /// Unmeasured run per proxy before each case.
    pub warmup: Duration,
    /// Cases to run.
    pub cases: Vec<CaseKind>,
    /// Proxies to compare (missing ones are skipped).
    pub peers: Vec<PeerKind>,
    /// Connections for the small and new-connection cases.
    pub connections: usize,
    /// Connections for the 1 MiB case.
    pub large_connections: usize,
    /// Connections for the many-connections case.
    pub many_connections: usize,
    /// wrk threads.
    pub wrk_threads: usize,
    /// Where the proxy runs, and where the origin and wrk run.
    pub placement: Placement,
    /// Origin to use; `None`: nginx when installed, else portico-origin.
    pub origin: Option<OriginKind>,
    /// Portico's `node.threads`.
    pub portico_threads: usize,
    /// A minimal Pingora proxy binary (`BIN LISTEN ORIGIN`) to compare with, if any.
    pub pingora_minimal: Option<PathBuf>,
    /// Directory for configs, logs and `results.json`.
    pub dir: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What wrk saw.
    pub report: WrkReport,
    /// Proxy CPU time over wall time (1.0: one core busy).
    pub cpu: f64,
    /// Resident memory of the proxy near the end of the run, KiB.
    pub rss_kib: u64,
    /// How busy the proxy's CPU was over the run (when it is pinned to one CPU). Well above
    /// `cpu`, other work shared the core: compare req/s per core rather than req/s.
    pub core_busy: Option<f64>,
}

impl Sample {
    /// Requests per second per busy proxy core.
    pub fn per_core(&self) -> Option<f64> {
        (self.cpu > 0.05).then(|| self.report.rps / self.cpu)
    }
}

/// A proxy's runs of one case, and their medians.
#[derive(Debug, Clone)]
pub struct PeerResult {
    /// Proxy name.
    pub peer: String,
    /// Resident memory before the case started, KiB.
    pub idle_rss_kib: u64,
    /// Measured runs in order.
    pub samples: Vec<Sample>,
}

/// Medians over a proxy's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Requests per second.
    pub rps: Option<f64>,
    /// p50 latency, µs.
    pub p50_us: Option<f64>,
    /// p99 latency, µs.
    pub p99_us: Option<f64>,
    /// Proxy CPU use (cores).
    pub cpu: Option<f64>,
    /// Requests per second per busy proxy core.
    pub per_core: Option<f64>,
    /// Errors over every run.
    pub errors: u64,
    /// Highest resident memory seen in a run minus the resident memory before, KiB.
    pub rss_growth_kib: Option<u64>,
}

impl PeerResult {
    /// Medians of the runs.
    pub fn summary(&self) -> Summary {
        let pick = |f: &dyn Fn(&Sample) -> Option<f64>| -> Option<f64> {
            median(&self.samples.iter().filter_map(f).collect::<Vec<_>>())
        };
        Summary {
            rps: pick(&|s| Some(s.report.rps)),
            p50_us: pick(&|s| Some(s.report.p50_us)),
            p99_us: pick(&|s| Some(s.report.p99_us)),
            cpu: pick(&|s| Some(s.cpu)),
            per_core: pick(&|s| s.per_core()),
            errors: self.samples.iter().map(|s| s.report.errors()).sum(),
            rss_growth_kib: self
                .samples
                .iter()
                .map(|s| s.rss_kib)
                .max()
                .map(|peak| peak.saturating_sub(self.idle_rss_kib)),
        }
    }
}

/// Every proxy's results for one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// wrk straight to the origin (same CPUs as in the proxied runs): the ceiling.
    pub direct: Option<WrkReport>,
    /// One entry per proxy.
    pub peers: Vec<PeerResult>,
}

impl CaseResult {
    fn summary_of(&self, peer: &str) -> Option<Summary> {
        self.peers
            .iter()
            .find(|p| p.peer == peer)
            .map(PeerResult::summary)
    }
}

/// Order of the proxies in round `round`: rotated so none always runs first.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|k| (k + round) % n).collect()
}

/// Runs wrk once against `addr`, measuring the proxy process `pid` (if any) meanwhile.
fn measure(
    wrk_bin: &Path,
    opts: &Options,
    case: &Case,
    addr: std::net::SocketAddr,
    pid: Option<u32>,
    duration: Duration,
) -> Result<Sample> {
    let url = format!("http://{addr}{}", case.path);
    let run = WrkRun {
        url: &url,
        connections: case.connections,
        threads: opts.wrk_threads,
        duration,
        headers: &case.headers,
    };
    let cpu_before = pid.map(procinfo::cpu_time);
    let proxy_cpu: Option<usize> = opts
        .placement
        .proxy_cpus
        .as_deref()
        .and_then(|c| c.parse().ok());
    let core_before = proxy_cpu.and_then(procinfo::cpu_times);
    let start = Instant::now();
    let child = run
        .command(wrk_bin, opts.placement.load_cpus.as_deref())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting wrk")?;
    // Sample memory while every connection is open.
    std::thread::sleep(duration.mul_f64(0.8));
    let rss_kib = pid.map(procinfo::rss_kib).unwrap_or(0);
    let report = wrk::finish(child)?;
    let wall = start.elapsed().as_secs_f64();
    let core_busy = match (proxy_cpu, core_before) {
        (Some(c), Some(before)) => {
            procinfo::cpu_times(c).and_then(|after| procinfo::busy_share(before, after))
        }
        _ => None,
    };
    let cpu = match (pid, cpu_before) {
        (Some(pid), Some(before)) => {
            (procinfo::cpu_time(pid).saturating_sub(before)).as_secs_f64() / wall
        }
        _ => 0.0,
    };
    Ok(Sample {
        report,
        cpu,
        rss_kib,
        core_busy,
    })
}

/// Runs one case against every proxy: a ceiling run straight to the origin, a warm-up per
/// proxy, then `rounds` rounds alternating between the proxies.
fn run_case(
    wrk_bin: &Path,
    opts: &Options,
    case: &Case,
    origin: &Running,
    proxies: &mut [Running],
) -> Result<CaseResult> {
    println!("\n== {} ==", case.title());
    let direct = match measure(wrk_bin, opts, case, origin.addr, None, opts.duration) {
        Ok(s) => {
            println!(
                "  direct to the origin (wrk and origin sharing their CPU): {} req/s, p99 {} — the ceiling here",
                fmt_rate(Some(s.report.rps)),
                fmt_latency(Some(s.report.p99_us))
            );
            Some(s.report)
        }
        Err(e) => {
            println!("  direct to the origin failed: {e:#}");
            None
        }
    };
    let mut results: Vec<PeerResult> = proxies
        .iter()
        .map(|p| PeerResult {
            peer: p.name.clone(),
            idle_rss_kib: procinfo::rss_kib(p.proc.pid()),
            samples: Vec::new(),
        })
        .collect();
    for p in proxies.iter_mut() {
        p.proc.check_alive()?;
        if !opts.warmup.is_zero() {
            measure(wrk_bin, opts, case, p.addr, None, opts.warmup)
                .with_context(|| format!("warming up {}", p.name))?;
        }
    }
    for round in 0..opts.rounds {
        for i in round_order(proxies.len(), round) {
            let p = &mut proxies[i];
            p.proc.check_alive()?;
            let s = measure(
                wrk_bin,
                opts,
                case,
                p.addr,
                Some(p.proc.pid()),
                opts.duration,
            )
            .with_context(|| format!("measuring {}", p.name))?;
            println!(
                "  round {} {:<16} {:>9} req/s  p50 {:>9}  p99 {:>9}  proxy CPU {:>4}  errors {}{}",
                round + 1,
                p.name,
                fmt_rate(Some(s.report.rps)),
                fmt_latency(Some(s.report.p50_us)),
                fmt_latency(Some(s.report.p99_us)),
                fmt_percent(Some(s.cpu)),
                s.report.errors(),
                shared_core_note(&s)
            );
            results[i].samples.push(s);
        }
    }
    let result = CaseResult {
        case: case.clone(),
        direct,
        peers: results,
    };
    print!("{}", case_table(&result));
    Ok(result)
}

/// ` (core shared: 100% busy)` when the proxy's core did much more than run the proxy.
pub fn shared_core_note(s: &Sample) -> String {
    match s.core_busy {
        Some(busy) if busy - s.cpu > 0.15 => format!(
            "  (core shared: {} busy, other work on it; compare per core)",
            fmt_percent(Some(busy))
        ),
        _ => String::new(),
    }
}

/// The per-case table of medians, with Portico's ratios to nginx and HAProxy.
pub fn case_table(r: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<16} {:>9} {:>10} {:>10} {:>9} {:>14} {:>7}",
        "median of runs", "req/s", "p50", "p99", "proxy CPU", "req/s per core", "errors"
    );
    for p in &r.peers {
        let s = p.summary();
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>10} {:>10} {:>9} {:>14} {:>7}",
            p.peer,
            fmt_rate(s.rps),
            fmt_latency(s.p50_us),
            fmt_latency(s.p99_us),
            fmt_percent(s.cpu),
            fmt_rate(s.per_core),
            s.errors
        );
    }
    let shared = r
        .peers
        .iter()
        .flat_map(|p| &p.samples)
        .filter(|s| !shared_core_note(s).is_empty())
        .count();
    if shared > 0 {
        let _ = writeln!(
            out,
            "  note: in {shared} run(s) other work shared the proxy's core; req/s per core is the fairer column"
        );
    }
    if r.case.kind == CaseKind::Conns {
        for p in &r.peers {
            let s = p.summary();
            if let Some(growth) = s.rss_growth_kib {
                let _ = writeln!(
                    out,
                    "  {:<16} memory: {} KiB idle, +{} KiB with {} connections = {:.1} KiB per connection",
                    p.peer,
                    p.idle_rss_kib,
                    growth,
                    r.case.connections,
                    growth as f64 / r.case.connections as f64
                );
            }
        }
    }
    if let Some(portico) = r.summary_of("portico") {
        for peer in ["nginx", "haproxy", "pingora-minimal"] {
            if let Some(other) = r.summary_of(peer) {
                let _ = writeln!(
                    out,
                    "  portico/{peer}: req/s {}, per core {}, p50 {}, p99 {}",
                    fmt_ratio(ratio(portico.rps, other.rps)),
                    fmt_ratio(ratio(portico.per_core, other.per_core)),
                    fmt_ratio(ratio(portico.p50_us, other.p50_us)),
                    fmt_ratio(ratio(portico.p99_us, other.p99_us)),
                );
            }
        }
    }
    out
}

/// The closing Markdown tables (ready for the README).
pub fn markdown(results: &[CaseResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Case | Proxy | req/s | p50 | p99 | proxy CPU | req/s per core |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for r in results {
        let label = match r.case.kind {
            CaseKind::Small => "small, keep-alive".to_string(),
            CaseKind::Large => "1 MiB, keep-alive".to_string(),
            CaseKind::Conns => format!("{} connections", r.case.connections),
            CaseKind::NewConn => "new conn per request".to_string(),
        };
        for p in &r.peers {
            let s = p.summary();
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} | {} |",
                p.peer,
                fmt_rate(s.rps),
                fmt_latency(s.p50_us),
                fmt_latency(s.p99_us),
                fmt_percent(s.cpu),
                fmt_rate(s.per_core)
            );
        }
    }
    let ratios: Vec<&str> = ["nginx", "haproxy"]
        .into_iter()
        .filter(|peer| results.iter().any(|r| r.summary_of(peer).is_some()))
        .collect();
    if results.iter().any(|r| r.summary_of("portico").is_some()) && !ratios.is_empty() {
        let _ = writeln!(out);
        let mut head = "| Case |".to_string();
        let mut rule = "|---|".to_string();
        for peer in &ratios {
            let _ = write!(
                head,
                " Portico/{peer} req/s | Portico/{peer} per core | Portico/{peer} p99 |"
            );
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for r in results {
            let Some(portico) = r.summary_of("portico") else {
                continue;
            };
            let mut row = format!("| {} |", r.case.kind.name());
            for peer in &ratios {
                let other = r.summary_of(peer).unwrap_or_default();
                let _ = write!(
                    row,
                    " {} | {} | {} |",
                    fmt_ratio(ratio(portico.rps, other.rps)),
                    fmt_ratio(ratio(portico.per_core, other.per_core)),
                    fmt_ratio(ratio(portico.p99_us, other.p99_us))
                );
            }
            let _ = writeln!(out, "{row}");
        }
    }
    for r in results.iter().filter(|r| r.case.kind == CaseKind::Conns) {
        let _ = writeln!(
            out,
            "\n| Memory, {} keep-alive connections | idle RSS | growth | per connection |",
            r.case.connections
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for p in &r.peers {
            if let Some(g) = p.summary().rss_growth_kib {
                let _ = writeln!(
                    out,
                    "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
                    p.peer,
                    p.idle_rss_kib as f64 / 1024.0,
                    g as f64 / 1024.0,
                    g as f64 / r.case.connections as f64
                );
            }
        }
    }
    out
}

/// The results as JSON (every run), for later comparison.
pub fn to_json(results: &[CaseResult]) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let peers: Vec<serde_json::Value> = r
                .peers
                .iter()
                .map(|p| {
                    let s = p.summary();
                    serde_json::json!({
                        "peer": p.peer,
                        "median_rps": s.rps,
                        "median_p50_us": s.p50_us,
                        "median_p99_us": s.p99_us,
                        "median_cpu": s.cpu,
                        "median_rps_per_core": s.per_core,
                        "errors": s.errors,
                        "idle_rss_kib": p.idle_rss_kib,
                        "rss_growth_kib": s.rss_growth_kib,
                        "runs": p.samples.iter().map(|x| serde_json::json!({
                            "rps": x.report.rps, "p50_us": x.report.p50_us, "p99_us": x.report.p99_us,
                            "requests": x.report.requests, "errors": x.report.errors(),
                            "cpu": x.cpu, "rss_kib": x.rss_kib, "core_busy": x.core_busy,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::json!({
                "case": r.case.kind.name(),
                "path": r.case.path,
                "connections": r.case.connections,
                "direct_rps": r.direct.as_ref().map(|d| d.rps),
                "peers": peers,
            })
        })
        .collect();
    serde_json::json!({ "cases": cases })
}

/// Runs the whole benchmark and prints the report.
pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    let Some(wrk_bin) = which("wrk") else {
        println!("{}", skip_line("every case", "wrk"));
        return Ok(());
    };
    std::fs::create_dir_all(&opts.dir)?;
    let origin_kind = opts.origin.unwrap_or(if which("nginx").is_some() {
        OriginKind::Nginx
    } else {
        OriginKind::PorticoOrigin
    });
    println!(
        "Throughput benchmark: proxy on CPU {}, wrk ({} thread) and origin on CPU {}; {} round(s) of {} s per proxy and case, {} s warm-up; files in {}",
        opts.placement.proxy_cpus.as_deref().unwrap_or("any"),
        opts.wrk_threads,
        opts.placement.load_cpus.as_deref().unwrap_or("any"),
        opts.rounds,
        opts.duration.as_secs(),
        opts.warmup.as_secs(),
        opts.dir.display()
    );
    if which("taskset").is_none() {
        println!("taskset not found: nothing is pinned (install util-linux)");
    }
    let origin = peers::start_origin(origin_kind, &opts.dir, &opts.placement)?;
    println!(
        "\n-- {} at {} --\n{}",
        origin.name, origin.addr, origin.config
    );
    let (status, len) = http_get(origin.addr, "/bytes/1048576")?;
    if status != 200 || len != peers::LARGE_BYTES {
        bail!("the origin answers /bytes/1048576 with {status} and {len} bytes");
    }

    let mut proxies: Vec<Running> = Vec::new();
    for &kind in &opts.peers {
        let missing = match kind {
            PeerKind::Nginx => which("nginx").is_none().then_some("nginx"),
            PeerKind::Haproxy => which("haproxy").is_none().then_some("haproxy"),
            _ => None,
        };
        if let Some(pkg) = missing {
            println!("{}", skip_line(kind.name(), pkg));
            continue;
        }
        if kind == PeerKind::PingoraMinimal && opts.pingora_minimal.is_none() {
            println!(
                "skipped pingora-minimal: not built (`cargo build --release -p portico-bench`)"
            );
            continue;
        }
        let p = peers::start_proxy(
            kind,
            &opts.dir,
            &opts.placement,
            origin.addr,
            opts.portico_threads,
            opts.pingora_minimal.as_deref(),
        )
        .with_context(|| format!("starting {}", kind.name()))?;
        println!("\n-- {} at {} --\n{}", p.name, p.addr, p.config);
        proxies.push(p);
    }
    if proxies.is_empty() {
        bail!("no proxy to measure");
    }

    let mut results = Vec::new();
    for &kind in &opts.cases {
        let case = Case::new(kind, opts);
        results.push(run_case(&wrk_bin, opts, &case, &origin, &mut proxies)?);
    }

    println!("\n== Summary (medians; proxy on one pinned core) ==\n");
    print!("{}", markdown(&results));
    let json = opts.dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&to_json(&results))?)?;
    println!("\nEvery run: {}", json.display());
    println!(
        "Configs each proxy got: printed above, and under {}",
        opts.dir.display()
    );
    println!("Total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rps: f64, p99: f64) -> WrkReport {
        WrkReport {
            requests: (rps * 10.0) as u64,
            seconds: 10.0,
            rps,
            p50_us: p99 / 2.0,
            p99_us: p99,
            socket_errors: 0,
            non_2xx: 1,
        }
    }

    fn peer(name: &str, runs: &[(f64, f64, f64)]) -> PeerResult {
        PeerResult {
            peer: name.into(),
            idle_rss_kib: 1000,
            samples: runs
                .iter()
                .map(|&(rps, p99, cpu)| Sample {
                    report: report(rps, p99),
                    cpu,
                    rss_kib: 1000 + rps as u64 / 10,
                    core_busy: None,
                })
                .collect(),
        }
    }

    fn options() -> Options {
        Options {
            duration: Duration::from_secs(8),
            rounds: 3,
            warmup: Duration::from_secs(2),
            cases: CaseKind::ALL.to_vec(),
            peers: vec![PeerKind::Portico, PeerKind::Nginx, PeerKind::Haproxy],
            connections: 64,
            large_connections: 16,
            many_connections: 5000,
            wrk_threads: 1,
            placement: Placement {
                proxy_cpus: Some("0".into()),
                load_cpus: Some("1".into()),
            },
            origin: None,
            portico_threads: 1,
            pingora_minimal: None,
            dir: "/tmp/x".into(),
        }
    }

    #[test]
    fn a_shared_core_is_pointed_out() {
        let mut s = peer("portico", &[(100.0, 1.0, 0.6)]).samples.remove(0);
        assert_eq!(shared_core_note(&s), "");
        s.core_busy = Some(0.65);
        assert_eq!(shared_core_note(&s), "");
        s.core_busy = Some(1.0);
        assert!(shared_core_note(&s).contains("core shared: 100% busy"));
    }

    #[test]
    fn rounds_rotate_the_order() {
        assert_eq!(round_order(3, 0), [0, 1, 2]);
        assert_eq!(round_order(3, 1), [1, 2, 0]);
        assert_eq!(round_order(3, 2), [2, 0, 1]);
        assert_eq!(round_order(3, 3), [0, 1, 2]);
    }

    #[test]
    fn summary_takes_medians() {
        let p = peer(
            "portico",
            &[(100.0, 9.0, 1.0), (300.0, 1.0, 1.0), (200.0, 5.0, 0.5)],
        );
        let s = p.summary();
        assert_eq!(s.rps, Some(200.0));
        assert_eq!(s.p99_us, Some(5.0));
        assert_eq!(s.p50_us, Some(2.5));
        assert_eq!(s.cpu, Some(1.0));
        // Per core: 100, 300, 400 → 300.
        assert_eq!(s.per_core, Some(300.0));
        assert_eq!(s.errors, 3);
        assert_eq!(s.rss_growth_kib, Some(30));
    }

    #[test]
    fn tables_show_ratios() {
        let opts = options();
        let result = CaseResult {
            case: Case::new(CaseKind::Small, &opts),
            direct: None,
            peers: vec![
                peer("portico", &[(50.0, 4.0, 1.0)]),
                peer("nginx", &[(100.0, 2.0, 1.0)]),
                peer("haproxy", &[(25.0, 8.0, 1.0)]),
            ],
        };
        let table = case_table(&result);
        assert!(
            table.contains("portico/nginx: req/s 0.50×, per core 0.50×, p50 2.00×, p99 2.00×"),
            "{table}"
        );
        assert!(table.contains("portico/haproxy: req/s 2.00×"), "{table}");
        let md = markdown(&[result]);
        assert!(md.contains("| small, keep-alive | nginx | 100 |"), "{md}");
        assert!(
            md.contains("| small | 0.50× | 0.50× | 2.00× | 2.00× |"),
            "{md}"
        );
    }

    #[test]
    fn cases_follow_the_options() {
        let opts = options();
        let conns = Case::new(CaseKind::Conns, &opts);
        assert_eq!(conns.connections, 5000);
        let close = Case::new(CaseKind::NewConn, &opts);
        assert_eq!(close.headers, ["Connection: close"]);
        assert_eq!(Case::new(CaseKind::Large, &opts).path, "/bytes/1048576");
        for k in CaseKind::ALL {
            assert_eq!(CaseKind::from_name(k.name()), Some(k));
        }
    }

    #[test]
    fn memory_table_for_many_connections() {
        let opts = options();
        let result = CaseResult {
            case: Case::new(CaseKind::Conns, &opts),
            direct: None,
            peers: vec![peer("portico", &[(51_200.0, 4.0, 1.0)])],
        };
        // Growth 5,120 KiB over 5,000 connections.
        assert!(markdown(&[result]).contains("| portico | 1.0 MiB | 5.0 MiB | 1.0 KiB |"));
    }
}
