//! Throughput benchmark: Portico against nginx and HAProxy, one pinned worker each, driven by wrk.

pub mod accesslog;
pub mod peers;
pub mod procinfo;
pub mod stats;
pub mod syscalls;
pub mod wrk;

use crate::procs::{skip_line, which};
use anyhow::{Context, Result, bail};
use peers::{OriginKind, PeerKind, Placement, Running, http_get};
use stats::{fmt_latency, fmt_percent, fmt_rate, fmt_ratio, fmt_us, median, ratio};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use syscalls::{SyscallSample, fmt_per_request};
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
    /// Another `portico` binary measured as peer `portico-before`, if any.
    pub portico_before: Option<PathBuf>,
    /// Length of the extra, unreported run per proxy and case that counts system calls
    /// (zero: none).
    pub syscall_sample: Duration,
    /// The counter to use for it.
    pub syscall_counter: syscalls::Choice,
    /// Directory for configs, logs and `results.json`.
    pub dir: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What wrk saw.
    pub report: WrkReport,
    /// Proxy CPU time (every thread of every process of the proxy) over wall time (1.0: one
    /// core busy).
    pub cpu: f64,
    /// Wall time the CPU was measured over, seconds.
    pub wall_s: f64,
    /// Proxy user CPU time over the run, seconds (part of `cpu`).
    pub user_s: f64,
    /// Proxy system CPU time over the run, seconds (part of `cpu`).
    pub sys_s: f64,
    /// Resident memory of the proxy near the end of the run, KiB.
    pub rss_kib: u64,
    /// How busy the proxy's CPU was over the run (when it is pinned to one CPU). Well above
    /// `cpu`, other work shared the core: compare req/s per core rather than req/s.
    pub core_busy: Option<f64>,
    /// For a peer with its access log on: what the run wrote.
    pub log: Option<accesslog::LogSample>,
}

impl Sample {
    /// Requests per second per busy proxy core.
    pub fn per_core(&self) -> Option<f64> {
        (self.cpu > 0.05).then(|| self.report.rps / self.cpu)
    }

    /// Proxy CPU time per request wrk completed, µs.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        self.per_request(self.cpu * self.wall_s)
    }

    /// Proxy user CPU time per request, µs: the proxy's own code.
    pub fn user_us_per_request(&self) -> Option<f64> {
        self.per_request(self.user_s)
    }

    /// Proxy system CPU time per request, µs: the kernel's work for it.
    pub fn sys_us_per_request(&self) -> Option<f64> {
        self.per_request(self.sys_s)
    }

    fn per_request(&self, seconds: f64) -> Option<f64> {
        (self.cpu > 0.05 && self.report.requests > 0)
            .then(|| seconds * 1e6 / self.report.requests as f64)
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
    /// The extra run that counted system calls, or why there is none.
    pub syscalls: Result<SyscallSample, String>,
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
    /// Proxy CPU time per request, µs.
    pub cpu_us_per_request: Option<f64>,
    /// Proxy user CPU time per request, µs.
    pub user_us_per_request: Option<f64>,
    /// Proxy system CPU time per request, µs.
    pub sys_us_per_request: Option<f64>,
    /// System calls per request, from the extra counted run.
    pub syscalls_per_request: Option<f64>,
    /// Errors over every run.
    pub errors: u64,
    /// Access log lines per run (peers with the log on).
    pub log_lines: Option<f64>,
    /// Access log lines dropped over every run (Portico with the log on).
    pub log_dropped: Option<u64>,
    /// CPU of Portico's access log writer thread, cores (part of `cpu`).
    pub writer_cpu: Option<f64>,
    /// Lines the writer thread wrote per wakeup (per flush).
    pub lines_per_wakeup: Option<f64>,
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
            cpu_us_per_request: pick(&|s| s.cpu_us_per_request()),
            user_us_per_request: pick(&|s| s.user_us_per_request()),
            sys_us_per_request: pick(&|s| s.sys_us_per_request()),
            syscalls_per_request: self.syscalls.as_ref().ok().and_then(|s| s.per_request()),
            errors: self.samples.iter().map(|s| s.report.errors()).sum(),
            log_lines: pick(&|s| s.log.as_ref().map(|l| l.lines as f64)),
            log_dropped: self
                .samples
                .iter()
                .filter_map(|s| s.log.as_ref()?.dropped)
                .reduce(|a, b| a + b),
            writer_cpu: pick(&|s| Some(s.log.as_ref()?.writer.as_ref()?.cpu)),
            lines_per_wakeup: pick(&|s| {
                let log = s.log.as_ref()?;
                let n = log.writer.as_ref()?.wakeups?;
                (n > 0).then(|| log.lines as f64 / n as f64)
            }),
            rss_growth_kib: self
                .samples
                .iter()
                .map(|s| s.rss_kib)
                .max()
                .map(|peak| peak.saturating_sub(self.idle_rss_kib)),
        }
    }

    /// Where Portico's access log writer thread ran over the runs: `(allowed CPUs, CPUs it
    /// was last seen on)`, if it has one.
    pub fn writer_placement(&self) -> Option<(String, String)> {
        let writers: Vec<&accesslog::WriterSample> = self
            .samples
            .iter()
            .filter_map(|s| s.log.as_ref()?.writer.as_ref())
            .collect();
        if writers.is_empty() {
            return None;
        }
        let mut allowed: Vec<String> = writers
            .iter()
            .map(|w| w.cpus_allowed.clone().unwrap_or_else(|| "?".into()))
            .collect();
        allowed.sort();
        allowed.dedup();
        let mut ran: Vec<u32> = writers.iter().filter_map(|w| w.last_cpu).collect();
        ran.sort_unstable();
        ran.dedup();
        let ran: Vec<String> = ran.iter().map(u32::to_string).collect();
        Some((allowed.join(" / "), ran.join(", ")))
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

/// Runs wrk once against `addr`, measuring the proxy `proxy` (if any) meanwhile: its CPU, its
/// memory, and for a peer with the access log on, what the run wrote to it.
fn measure(
    wrk_bin: &Path,
    opts: &Options,
    case: &Case,
    addr: std::net::SocketAddr,
    proxy: Option<&Running>,
    duration: Duration,
) -> Result<Sample> {
    let pid = proxy.map(|p| p.proc.pid());
    let log_before = match proxy {
        Some(p) => accesslog::before(p)?,
        None => accesslog::Before::default(),
    };
    let url = format!("http://{addr}{}", case.path);
    let run = WrkRun {
        url: &url,
        connections: case.connections,
        threads: opts.wrk_threads,
        duration,
        headers: &case.headers,
    };
    let cpu_before = pid.map(procinfo::cpu_split);
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
    let used = match (pid, cpu_before) {
        (Some(pid), Some(before)) => procinfo::cpu_split(pid).since(before),
        _ => procinfo::CpuSplit::default(),
    };
    let log = match proxy {
        Some(p) => accesslog::after(p, log_before, wall)?,
        None => None,
    };
    Ok(Sample {
        report,
        cpu: used.total().as_secs_f64() / wall,
        wall_s: wall,
        user_s: used.user.as_secs_f64(),
        sys_s: used.system.as_secs_f64(),
        rss_kib,
        core_busy,
        log,
    })
}

/// For a run of a peer with the access log on: `  log 147,210 lines (…)`.
pub fn log_note(s: &Sample) -> String {
    let Some(log) = &s.log else {
        return String::new();
    };
    let mut out = format!(
        "  log {} lines of {} B",
        fmt_rate(Some(log.lines as f64)),
        log.bytes.checked_div(log.lines).unwrap_or(0)
    );
    if let Some(d) = log.dropped {
        let _ = write!(out, ", {d} dropped");
    }
    if let Some(w) = &log.writer {
        let _ = write!(
            out,
            ", writer thread {} on CPU {}",
            fmt_percent(Some(w.cpu)),
            w.last_cpu.map_or_else(|| "?".into(), |c| c.to_string())
        );
        if let Some(n) = w.wakeups {
            let _ = write!(
                out,
                ", woken {} times ({:.1} lines each)",
                fmt_rate(Some(n as f64)),
                log.lines as f64 / n.max(1) as f64
            );
        }
        if let Some(n) = w.write_calls {
            let _ = write!(out, ", {} write calls", fmt_rate(Some(n as f64)));
        }
    }
    out
}

/// Why a proxy's system calls were not counted (see [`syscalls::not_counted`]).
fn not_counted(opts: &Options, tool: Option<&syscalls::Tool>) -> Option<String> {
    syscalls::not_counted(opts.syscall_sample, opts.syscall_counter, tool)
}

/// The extra run that counts `p`'s system calls: `tool` attached to every process of the
/// proxy, then wrk for `opts.syscall_sample`. Counting slows the proxy, so this run's req/s
/// and CPU are reported nowhere; only the count per request is.
fn count_syscalls(
    wrk_bin: &Path,
    opts: &Options,
    case: &Case,
    p: &Running,
    tool: &syscalls::Tool,
) -> Result<SyscallSample> {
    let out = opts
        .dir
        .join(format!("syscalls-{}-{}.txt", p.name, case.kind.name()));
    let counting = syscalls::start(tool, &procinfo::tree(p.proc.pid()), &out)?;
    std::thread::sleep(syscalls::ATTACH_PAUSE);
    let run = measure(wrk_bin, opts, case, p.addr, None, opts.syscall_sample);
    // Detach before looking at the run, so a failed run never leaves the proxy traced.
    let (syscalls, extra) = counting.stop()?;
    let report = run?.report;
    if let Some(log) = &p.access_log {
        accesslog::settle(log, Duration::from_secs(2));
        accesslog::empty(log)?;
    }
    Ok(SyscallSample {
        tool: tool.describe(),
        syscalls,
        requests: report.requests,
        rps: report.rps,
        extra,
    })
}

/// Runs one case against every proxy: a ceiling run straight to the origin, a warm-up per
/// proxy, `rounds` rounds alternating between the proxies, then one run per proxy counting
/// its system calls (with `tool`, when there is one).
pub fn run_case(
    wrk_bin: &Path,
    opts: &Options,
    case: &Case,
    origin: &Running,
    proxies: &mut [Running],
    tool: Option<&syscalls::Tool>,
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
            syscalls: Err(not_counted(opts, tool).unwrap_or_default()),
        })
        .collect();
    for p in proxies.iter_mut() {
        p.proc.check_alive()?;
        if !opts.warmup.is_zero() {
            measure(wrk_bin, opts, case, p.addr, None, opts.warmup)
                .with_context(|| format!("warming up {}", p.name))?;
            if let Some(log) = &p.access_log {
                // The warm-up's lines: gone before the disk notices.
                accesslog::settle(log, Duration::from_secs(2));
                accesslog::empty(log)?;
            }
        }
    }
    for round in 0..opts.rounds {
        for i in round_order(proxies.len(), round) {
            let p = &mut proxies[i];
            p.proc.check_alive()?;
            let s = measure(wrk_bin, opts, case, p.addr, Some(&*p), opts.duration)
                .with_context(|| format!("measuring {}", p.name))?;
            println!(
                "  round {} {:<17} {:>9} req/s  p50 {:>9}  p99 {:>9}  proxy CPU {:>4}  errors {}{}{}",
                round + 1,
                p.name,
                fmt_rate(Some(s.report.rps)),
                fmt_latency(Some(s.report.p50_us)),
                fmt_latency(Some(s.report.p99_us)),
                fmt_percent(Some(s.cpu)),
                s.report.errors(),
                log_note(&s),
                shared_core_note(&s)
            );
            results[i].samples.push(s);
        }
    }
    if let (Some(tool), None) = (tool, not_counted(opts, tool)) {
        for (p, r) in proxies.iter_mut().zip(results.iter_mut()) {
            p.proc.check_alive()?;
            r.syscalls = count_syscalls(wrk_bin, opts, case, p, tool)
                .map_err(|e| format!("counting failed: {e:#}"));
            println!(
                "  syscalls {:<17} {}",
                p.name,
                match &r.syscalls {
                    Ok(s) => format!(
                        "{} per request: {} calls over {} requests ({}; this run's {} req/s are slowed by the counting and reported nowhere else){}",
                        fmt_per_request(s.per_request()),
                        fmt_rate(Some(s.syscalls as f64)),
                        fmt_rate(Some(s.requests as f64)),
                        s.tool,
                        fmt_rate(Some(s.rps)),
                        s.extra_note(),
                    ),
                    Err(e) => e.clone(),
                }
            );
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
        "  {:<17} {:>9} {:>10} {:>10} {:>9} {:>14} {:>9} {:>9} {:>9} {:>12} {:>7}",
        "median of runs",
        "req/s",
        "p50",
        "p99",
        "proxy CPU",
        "req/s per core",
        "CPU/req",
        "user/req",
        "sys/req",
        "syscalls/req",
        "errors"
    );
    for p in &r.peers {
        let s = p.summary();
        let _ = writeln!(
            out,
            "  {:<17} {:>9} {:>10} {:>10} {:>9} {:>14} {:>9} {:>9} {:>9} {:>12} {:>7}",
            p.peer,
            fmt_rate(s.rps),
            fmt_latency(s.p50_us),
            fmt_latency(s.p99_us),
            fmt_percent(s.cpu),
            fmt_rate(s.per_core),
            fmt_us(s.cpu_us_per_request),
            fmt_us(s.user_us_per_request),
            fmt_us(s.sys_us_per_request),
            fmt_per_request(s.syscalls_per_request),
            s.errors
        );
    }
    let _ = writeln!(out, "  {}", per_request_note(&r.peers));
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
        for peer in ["nginx", "haproxy", "pingora-minimal", "portico-before"] {
            if let Some(other) = r.summary_of(peer) {
                let _ = writeln!(
                    out,
                    "  portico/{peer}: req/s {}, per core {}, p50 {}, p99 {}, user/req {}, sys/req {}, syscalls/req {}",
                    fmt_ratio(ratio(portico.rps, other.rps)),
                    fmt_ratio(ratio(portico.per_core, other.per_core)),
                    fmt_ratio(ratio(portico.p50_us, other.p50_us)),
                    fmt_ratio(ratio(portico.p99_us, other.p99_us)),
                    fmt_ratio(ratio(
                        portico.user_us_per_request,
                        other.user_us_per_request
                    )),
                    fmt_ratio(ratio(portico.sys_us_per_request, other.sys_us_per_request)),
                    fmt_ratio(ratio(
                        portico.syscalls_per_request,
                        other.syscalls_per_request
                    )),
                );
            }
        }
    }
    for (on, off, p) in access_log_pairs(r) {
        let _ = writeln!(
            out,
            "  {}/{}: req/s {}, CPU per request {} ({} → {}), per core {}, p50 {}, p99 {}",
            p.peer,
            off_name(&p.peer),
            fmt_ratio(ratio(on.rps, off.rps)),
            fmt_ratio(ratio(on.cpu_us_per_request, off.cpu_us_per_request)),
            fmt_latency(off.cpu_us_per_request),
            fmt_latency(on.cpu_us_per_request),
            fmt_ratio(ratio(on.per_core, off.per_core)),
            fmt_ratio(ratio(on.p50_us, off.p50_us)),
            fmt_ratio(ratio(on.p99_us, off.p99_us)),
        );
        let _ = writeln!(out, "  {}: {}", p.peer, writer_line(p, &on));
    }
    out
}

/// What the per-request columns mean, and which tool counted the system calls (or why none).
pub fn per_request_note(peers: &[PeerResult]) -> String {
    let counted = peers.iter().find_map(|p| p.syscalls.as_ref().ok());
    let syscalls = match (
        counted,
        peers.iter().find_map(|p| p.syscalls.as_ref().err()),
    ) {
        (Some(s), _) => format!(
            "syscalls/req: counted by `{}` in one extra run per proxy, never in the runs above (counting slows the proxy)",
            s.tool
        ),
        (None, Some(why)) => format!("syscalls/req: {why}"),
        (None, None) => "syscalls/req: not counted".into(),
    };
    format!(
        "CPU, user and sys per request: µs of proxy CPU time from /proc (10 ms ticks, summed over each whole run) over the requests wrk completed; {syscalls}"
    )
}

fn off_name(peer: &str) -> &'static str {
    PeerKind::from_name(peer)
        .and_then(PeerKind::without_access_log)
        .map_or("?", PeerKind::name)
}

/// Every peer of `r` with its access log on whose log-off twin ran too: `(on, off, peer)`.
fn access_log_pairs(r: &CaseResult) -> Vec<(Summary, Summary, &PeerResult)> {
    r.peers
        .iter()
        .filter_map(|p| {
            let off = PeerKind::from_name(&p.peer)?.without_access_log()?;
            Some((p.summary(), r.summary_of(off.name())?, p))
        })
        .collect()
}

/// Where the log was written from, what it cost and whether every line made it.
fn writer_line(p: &PeerResult, on: &Summary) -> String {
    let requests = median(
        &p.samples
            .iter()
            .map(|s| s.report.requests as f64)
            .collect::<Vec<_>>(),
    );
    let lines = format!(
        "{} lines per run for {} requests wrk counted (median)",
        fmt_rate(on.log_lines),
        fmt_rate(requests)
    );
    match p.writer_placement() {
        Some((allowed, ran)) => format!(
            "writer thread on CPU {ran} (allowed: {allowed}; taskset pins the whole process, so it shares the proxy's core), {} of a core (median), counted in proxy CPU, {} lines per wakeup; {lines}, {} dropped{}",
            fmt_percent(on.writer_cpu),
            on.lines_per_wakeup
                .map_or_else(|| "?".into(), |l| format!("{l:.1}")),
            on.log_dropped.map_or_else(|| "?".into(), |d| d.to_string()),
            if on.log_dropped.unwrap_or(0) > 0 {
                " (the writer fell behind: the cost of keeping every line is higher than measured)"
            } else {
                ""
            }
        ),
        None => format!("the worker writes its own log lines (no separate thread); {lines}"),
    }
}

/// The closing Markdown tables (ready for docs/benchmarks.md).
pub fn markdown(results: &[CaseResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Case | Proxy | req/s | p50 | p99 | proxy CPU | req/s per core | user µs/req | sys µs/req | syscalls/req |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
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
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.peer,
                fmt_rate(s.rps),
                fmt_latency(s.p50_us),
                fmt_latency(s.p99_us),
                fmt_percent(s.cpu),
                fmt_rate(s.per_core),
                fmt_us(s.user_us_per_request),
                fmt_us(s.sys_us_per_request),
                fmt_per_request(s.syscalls_per_request)
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
    if results.iter().any(|r| !access_log_pairs(r).is_empty()) {
        let _ = writeln!(
            out,
            "\n| Case | Access log on / off | req/s | on/off | CPU per request | on/off | p99 on/off | writer thread CPU | lines dropped |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in results {
            for (on, off, p) in access_log_pairs(r) {
                let _ = writeln!(
                    out,
                    "| {} | {} / {} | {} / {} | {} | {} / {} | {} | {} | {} | {} |",
                    r.case.kind.name(),
                    p.peer,
                    off_name(&p.peer),
                    fmt_rate(on.rps),
                    fmt_rate(off.rps),
                    fmt_ratio(ratio(on.rps, off.rps)),
                    fmt_latency(on.cpu_us_per_request),
                    fmt_latency(off.cpu_us_per_request),
                    fmt_ratio(ratio(on.cpu_us_per_request, off.cpu_us_per_request)),
                    fmt_ratio(ratio(on.p99_us, off.p99_us)),
                    fmt_percent(on.writer_cpu),
                    on.log_dropped
                        .map_or_else(|| "-".into(), |d| fmt_rate(Some(d as f64))),
                );
            }
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

/// One measured run as JSON.
fn sample_json(x: &Sample) -> serde_json::Value {
    serde_json::json!({
        "rps": x.report.rps, "p50_us": x.report.p50_us, "p99_us": x.report.p99_us,
        "requests": x.report.requests, "errors": x.report.errors(),
        "cpu": x.cpu, "wall_s": x.wall_s, "rss_kib": x.rss_kib, "core_busy": x.core_busy,
        "cpu_us_per_request": x.cpu_us_per_request(),
        "user_s": x.user_s, "sys_s": x.sys_s,
        "user_us_per_request": x.user_us_per_request(),
        "sys_us_per_request": x.sys_us_per_request(),
        "log": x.log.as_ref().map(|l| serde_json::json!({
            "lines": l.lines, "bytes": l.bytes, "dropped": l.dropped,
            "writer": l.writer.as_ref().map(|w| serde_json::json!({
                "cpu": w.cpu, "last_cpu": w.last_cpu, "cpus_allowed": w.cpus_allowed,
                "wakeups": w.wakeups, "write_calls": w.write_calls,
            })),
        })),
    })
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
                        "median_cpu_us_per_request": s.cpu_us_per_request,
                        "median_user_us_per_request": s.user_us_per_request,
                        "median_sys_us_per_request": s.sys_us_per_request,
                        "syscalls_per_request": s.syscalls_per_request,
                        "syscall_sample": match &p.syscalls {
                            Ok(x) => x.to_json(),
                            Err(why) => serde_json::json!({ "not_counted": why }),
                        },
                        "errors": s.errors,
                        "access_log": p.samples.iter().any(|x| x.log.is_some()),
                        "median_log_lines": s.log_lines,
                        "log_dropped": s.log_dropped,
                        "median_writer_cpu": s.writer_cpu,
                        "idle_rss_kib": p.idle_rss_kib,
                        "rss_growth_kib": s.rss_growth_kib,
                        "runs": p.samples.iter().map(sample_json).collect::<Vec<_>>(),
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
            PeerKind::Nginx | PeerKind::NginxAccessLog => {
                which("nginx").is_none().then_some("nginx")
            }
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
        if kind == PeerKind::PorticoBefore && opts.portico_before.is_none() {
            println!("skipped portico-before: no binary given (`--portico-before BIN`)");
            continue;
        }
        let p = peers::start_proxy(
            kind,
            &opts.dir,
            &opts.placement,
            origin.addr,
            opts.portico_threads,
            opts.pingora_minimal.as_deref(),
            opts.portico_before.as_deref(),
        )
        .with_context(|| format!("starting {}", kind.name()))?;
        println!("\n-- {} at {} --\n{}", p.name, p.addr, p.config);
        if matches!(
            kind,
            PeerKind::Portico | PeerKind::PorticoAccessLog | PeerKind::PorticoBefore
        ) {
            println!(
                "{}: {}; proxy CPU counts every thread of the process{}",
                p.name,
                accesslog::threads_line(p.proc.pid()),
                if kind != PeerKind::PorticoAccessLog {
                    " (the access log writer exists but is idle: node.access_log is null)"
                } else {
                    ", the access log writer's included"
                }
            );
        }
        if let Some(log) = &p.access_log {
            accesslog::settle(log, Duration::from_secs(2));
            println!(
                "{}: access log {} ({} filesystem), emptied before and after every measured run; the readiness check's line: {}",
                p.name,
                log.display(),
                accesslog::filesystem(log).unwrap_or_else(|| "unknown".into()),
                accesslog::first_line(log)
                    .unwrap_or_else(|| "(none yet: still in the log's buffer)".into())
            );
        }
        proxies.push(p);
    }
    if proxies.is_empty() {
        bail!("no proxy to measure");
    }

    let tool = syscalls::Tool::detect(opts.syscall_counter);
    match (&tool, not_counted(opts, tool.as_ref())) {
        (Some(t), None) => println!(
            "system calls per request: counted by `{}` in one extra {} s run per proxy and case after the measured rounds; never in the measured runs",
            t.describe(),
            opts.syscall_sample.as_secs()
        ),
        (_, why) => println!("system calls per request: {}", why.unwrap_or_default()),
    }
    let mut results = Vec::new();
    for &kind in &opts.cases {
        let case = Case::new(kind, opts);
        results.push(run_case(
            &wrk_bin,
            opts,
            &case,
            &origin,
            &mut proxies,
            tool.as_ref(),
        )?);
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
                    wall_s: 10.0,
                    user_s: cpu * 10.0 * 0.4,
                    sys_s: cpu * 10.0 * 0.6,
                    rss_kib: 1000 + rps as u64 / 10,
                    core_busy: None,
                    log: None,
                })
                .collect(),
            syscalls: Err("not counted".into()),
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
            portico_before: None,
            syscall_sample: Duration::from_secs(3),
            syscall_counter: syscalls::Choice::Auto,
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
    fn per_request_columns_split_user_and_system_time() {
        let opts = options();
        let mut portico = peer("portico", &[(100.0, 4.0, 1.0)]);
        portico.syscalls = Ok(SyscallSample {
            tool: "strace -c -f",
            syscalls: 536,
            requests: 100,
            rps: 10.0,
            extra: syscalls::Extra::default(),
        });
        let result = CaseResult {
            case: Case::new(CaseKind::Small, &opts),
            direct: None,
            peers: vec![portico, peer("nginx", &[(200.0, 2.0, 1.0)])],
        };
        // One core for 10 s over 1,000 requests: 10 ms each, 40 % of it user time.
        let s = result.summary_of("portico").unwrap();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-6;
        assert!(close(s.user_us_per_request, 4_000.0), "{s:?}");
        assert!(close(s.sys_us_per_request, 6_000.0), "{s:?}");
        assert!(close(s.cpu_us_per_request, 10_000.0), "{s:?}");
        assert_eq!(s.syscalls_per_request, Some(5.36));
        let table = case_table(&result);
        assert!(table.contains("user/req"), "{table}");
        assert!(
            table.contains("counted by `strace -c -f` in one extra run"),
            "{table}"
        );
        assert!(
            table.contains("user/req 2.00×, sys/req 2.00×, syscalls/req -"),
            "{table}"
        );
        let md = markdown(&[result]);
        assert!(
            md.contains("| small, keep-alive | portico | 100 | 2 µs | 4 µs | 100% | 100 | 4.00 ms | 6.00 ms | 5.36 |"),
            "{md}"
        );
        assert!(md.contains("| small, keep-alive | nginx | 200 |"), "{md}");
        let json = to_json(&[CaseResult {
            case: Case::new(CaseKind::Small, &opts),
            direct: None,
            peers: vec![peer("haproxy", &[(100.0, 4.0, 1.0)])],
        }]);
        let p = &json["cases"][0]["peers"][0];
        assert_eq!(p["syscall_sample"]["not_counted"], "not counted");
        assert!(p["median_user_us_per_request"].as_f64().is_some(), "{p}");
    }

    #[test]
    fn access_log_cost_is_a_ratio_to_the_same_proxy_without_it() {
        let opts = options();
        let mut on = peer("portico+accesslog", &[(90.0, 3.0, 1.0), (80.0, 3.0, 1.0)]);
        for s in &mut on.samples {
            s.log = Some(accesslog::LogSample {
                lines: s.report.requests,
                bytes: s.report.requests * 300,
                dropped: Some(1),
                writer: Some(accesslog::WriterSample {
                    cpu: 0.04,
                    last_cpu: Some(0),
                    cpus_allowed: Some("0".into()),
                    wakeups: Some(s.report.requests / 4),
                    write_calls: Some(s.report.requests / 4),
                }),
            });
        }
        let result = CaseResult {
            case: Case::new(CaseKind::Small, &opts),
            direct: None,
            peers: vec![
                peer("portico", &[(100.0, 2.0, 1.0)]),
                on,
                peer("nginx", &[(200.0, 1.0, 1.0)]),
            ],
        };
        let s = result.summary_of("portico+accesslog").unwrap();
        assert_eq!(s.rps, Some(85.0));
        assert_eq!(s.log_dropped, Some(2));
        assert_eq!(s.writer_cpu, Some(0.04));
        // 1 core × 10 s over 900 and 800 requests: the median of 11.1 and 12.5 ms.
        let per_req = s.cpu_us_per_request.unwrap();
        assert!(
            (per_req - (1e7 / 900.0 + 1e7 / 800.0) / 2.0).abs() < 1.0,
            "{per_req}"
        );
        let table = case_table(&result);
        assert!(
            table.contains("portico+accesslog/portico: req/s 0.85×, CPU per request 1.18×"),
            "{table}"
        );
        assert!(
            table.contains("writer thread on CPU 0 (allowed: 0;"),
            "{table}"
        );
        assert!(
            table.contains("2 dropped (the writer fell behind"),
            "{table}"
        );
        assert!(table.contains("4.0 lines per wakeup"), "{table}");
        // Only the access-log twin is compared, not nginx.
        assert!(!table.contains("portico+accesslog/nginx"), "{table}");
        let md = markdown(&[result]);
        assert!(
            md.contains("| small | portico+accesslog / portico | 85 / 100 | 0.85× |"),
            "{md}"
        );
        assert!(md.contains("| 4% | 2 |"), "{md}");
    }

    #[test]
    fn no_access_log_table_without_both_twins() {
        let opts = options();
        let result = CaseResult {
            case: Case::new(CaseKind::Small, &opts),
            direct: None,
            peers: vec![peer("portico+accesslog", &[(90.0, 3.0, 1.0)])],
        };
        assert!(!case_table(&result).contains("/portico:"));
        assert!(!markdown(&[result]).contains("Access log on / off"));
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
