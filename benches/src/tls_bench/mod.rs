//! TLS benchmark: Portico, nginx and HAProxy terminating TLS (one pinned core each, the same
//! ECDSA P-256 certificate) for full handshakes, HTTP/1.1 keep-alive and HTTP/2 keep-alive.

pub mod load;
pub mod peers;

use crate::procs::{skip_line, which};
use crate::throughput::peers::{OriginKind, Placement, Running, start_origin};
use crate::throughput::stats::{
    fmt_latency, fmt_percent, fmt_rate, fmt_ratio, fmt_us, median, ratio,
};
use crate::throughput::syscalls::{self, SyscallSample, fmt_per_request};
use crate::throughput::{procinfo, round_order, wrk};
use anyhow::{Context, Result, bail};
use load::{H2loadRun, HandshakeClient, LoadReport};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One TLS workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsCase {
    /// A new TLS connection (full handshake) per request.
    Handshake,
    /// A new TLS connection per request, resuming the session of the client thread's last
    /// connection (a TLS 1.3 ticket).
    Resumed,
    /// HTTP/1.1 over TLS keep-alive, small response (wrk).
    KeepAlive,
    /// HTTP/2 keep-alive, several streams per connection (h2load).
    H2,
}

impl TlsCase {
    /// Every case, in report order.
    pub const ALL: [TlsCase; 4] = [
        TlsCase::Handshake,
        TlsCase::Resumed,
        TlsCase::KeepAlive,
        TlsCase::H2,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            TlsCase::Handshake => "handshake",
            TlsCase::Resumed => "resumed",
            TlsCase::KeepAlive => "keepalive",
            TlsCase::H2 => "h2",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
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
    pub cases: Vec<TlsCase>,
    /// Proxies (portico, nginx, haproxy).
    pub peers: Vec<String>,
    /// Concurrent connections of the handshake client.
    pub handshake_connections: usize,
    /// wrk connections for TLS keep-alive.
    pub connections: usize,
    /// h2load connections.
    pub h2_clients: usize,
    /// h2load concurrent streams per connection.
    pub h2_streams: usize,
    /// Where the proxy runs, and where the origin and the load run.
    pub placement: Placement,
    /// Portico's `node.threads`.
    pub portico_threads: usize,
    /// Length of the extra, unreported run per proxy and case that counts system calls
    /// (zero: none).
    pub syscall_sample: Duration,
    /// The counter to use for it.
    pub syscall_counter: syscalls::Choice,
    /// Directory for certificates, configs, logs and `results.json`.
    pub dir: PathBuf,
}

impl Options {
    /// One line describing `case`'s load.
    pub fn title(&self, case: TlsCase) -> String {
        match case {
            TlsCase::Handshake => format!(
                "new TLS connection per request (full handshake, no resumption), GET / with Connection: close, {} concurrent connections (this benchmark's client)",
                self.handshake_connections
            ),
            TlsCase::Resumed => format!(
                "new TLS connection per request resuming the thread's last session (ticket; each thread's first handshake is full), GET / with Connection: close, {} concurrent connections (this benchmark's client)",
                self.handshake_connections
            ),
            TlsCase::KeepAlive => format!(
                "HTTP/1.1 over TLS keep-alive, small response, {} connections (wrk)",
                self.connections
            ),
            TlsCase::H2 => format!(
                "HTTP/2 keep-alive, small response, {} connections × {} concurrent streams (h2load)",
                self.h2_clients, self.h2_streams
            ),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What the load generator saw.
    pub report: LoadReport,
    /// Proxy CPU time over wall time (1.0: one core busy).
    pub cpu: f64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Proxy user CPU time over the run, seconds (part of `cpu`).
    pub user_s: f64,
    /// Proxy system CPU time over the run, seconds (part of `cpu`).
    pub sys_s: f64,
}

impl Sample {
    /// Requests per second per busy proxy core.
    pub fn per_core(&self) -> Option<f64> {
        (self.cpu > 0.05).then(|| self.report.rps / self.cpu)
    }

    /// Proxy user CPU time per request (handshake), µs.
    pub fn user_us_per_request(&self) -> Option<f64> {
        self.per_request(self.user_s)
    }

    /// Proxy system CPU time per request (handshake), µs.
    pub fn sys_us_per_request(&self) -> Option<f64> {
        self.per_request(self.sys_s)
    }

    fn per_request(&self, seconds: f64) -> Option<f64> {
        (self.cpu > 0.05 && self.report.requests > 0)
            .then(|| seconds * 1e6 / self.report.requests as f64)
    }
}

/// Medians of one proxy's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Requests (for the handshake case: handshakes) per second.
    pub rps: Option<f64>,
    /// Per busy proxy core.
    pub per_core: Option<f64>,
    /// p50 latency, µs.
    pub p50_us: Option<f64>,
    /// p99 latency, µs.
    pub p99_us: Option<f64>,
    /// Mean latency, µs.
    pub mean_us: Option<f64>,
    /// Proxy CPU (cores).
    pub cpu: Option<f64>,
    /// Proxy user CPU time per request, µs.
    pub user_us_per_request: Option<f64>,
    /// Proxy system CPU time per request, µs.
    pub sys_us_per_request: Option<f64>,
    /// System calls per request, from the extra counted run.
    pub syscalls_per_request: Option<f64>,
    /// Errors over every run.
    pub errors: u64,
    /// Resumed handshakes over every run.
    pub resumed: u64,
}

/// One proxy's runs of one case.
#[derive(Debug, Clone)]
pub struct PeerResult {
    /// Proxy name.
    pub peer: String,
    /// Measured runs.
    pub samples: Vec<Sample>,
    /// The extra run that counted system calls, or why there is none.
    pub syscalls: Result<SyscallSample, String>,
}

impl PeerResult {
    /// Medians of the runs.
    pub fn summary(&self) -> Summary {
        let pick = |f: &dyn Fn(&Sample) -> Option<f64>| -> Option<f64> {
            median(&self.samples.iter().filter_map(f).collect::<Vec<_>>())
        };
        Summary {
            rps: pick(&|s| Some(s.report.rps)),
            per_core: pick(&|s| s.per_core()),
            p50_us: pick(&|s| s.report.p50_us),
            p99_us: pick(&|s| s.report.p99_us),
            mean_us: pick(&|s| s.report.mean_us),
            cpu: pick(&|s| Some(s.cpu)),
            user_us_per_request: pick(&|s| s.user_us_per_request()),
            sys_us_per_request: pick(&|s| s.sys_us_per_request()),
            syscalls_per_request: self.syscalls.as_ref().ok().and_then(|s| s.per_request()),
            errors: self.samples.iter().map(|s| s.report.errors).sum(),
            resumed: self.samples.iter().map(|s| s.report.resumed).sum(),
        }
    }
}

/// Every proxy's results of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: TlsCase,
    /// Its one-line description.
    pub title: String,
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

/// The tools the cases need, found on `PATH`.
struct Tools {
    wrk: Option<PathBuf>,
    h2load: Option<PathBuf>,
}

/// Runs `case` once against `proxy`, measuring its CPU.
fn measure(
    tools: &Tools,
    opts: &Options,
    case: TlsCase,
    proxy: &Running,
    duration: Duration,
) -> Result<Sample> {
    let pid = proxy.proc.pid();
    let load = opts.placement.load_cpus.as_deref();
    let url = format!("https://127.0.0.1:{}/", proxy.addr.port());
    let cpu_before = procinfo::cpu_split(pid);
    let start = Instant::now();
    let report = match case {
        TlsCase::Handshake | TlsCase::Resumed => {
            let client = HandshakeClient {
                addr: proxy.addr,
                sni: peers::HOST.into(),
                connections: opts.handshake_connections,
                duration,
                resume: case == TlsCase::Resumed,
            };
            let child = client
                .command(load)?
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("starting the handshake client")?;
            load::finish_client(child)?
        }
        TlsCase::KeepAlive => {
            let wrk_bin = tools.wrk.as_deref().context("wrk is not installed")?;
            let run = wrk::WrkRun {
                url: &url,
                connections: opts.connections,
                threads: 1,
                duration,
                headers: &[],
            };
            let child = run
                .command(wrk_bin, load)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("starting wrk")?;
            let r = wrk::finish(child)?;
            LoadReport {
                requests: r.requests,
                seconds: r.seconds,
                rps: r.rps,
                p50_us: Some(r.p50_us),
                p99_us: Some(r.p99_us),
                mean_us: None,
                errors: r.errors(),
                negotiated: "wrk (HTTP/1.1 over TLS, one handshake per connection)".into(),
                resumed: 0,
            }
        }
        TlsCase::H2 => {
            let h2load = tools.h2load.as_deref().context("h2load is not installed")?;
            let run = H2loadRun {
                url: &url,
                clients: opts.h2_clients,
                streams: opts.h2_streams,
                duration,
            };
            let child = run
                .command(h2load, load)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("starting h2load")?;
            load::finish_h2load(child)?
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let used = procinfo::cpu_split(pid).since(cpu_before);
    Ok(Sample {
        report,
        cpu: used.total().as_secs_f64() / wall,
        wall_s: wall,
        user_s: used.user.as_secs_f64(),
        sys_s: used.system.as_secs_f64(),
    })
}

/// Why a proxy's system calls were not counted (see [`syscalls::not_counted`]).
fn not_counted(opts: &Options, tool: Option<&syscalls::Tool>) -> Option<String> {
    syscalls::not_counted(opts.syscall_sample, opts.syscall_counter, tool)
}

/// The extra run that counts `proxy`'s system calls (its req/s, slowed by the counting, are
/// reported nowhere).
fn count_syscalls(
    tools: &Tools,
    opts: &Options,
    case: TlsCase,
    proxy: &Running,
    tool: &syscalls::Tool,
) -> Result<SyscallSample> {
    let out = opts
        .dir
        .join(format!("syscalls-{}-{}.txt", proxy.name, case.name()));
    let counting = syscalls::start(tool, &procinfo::tree(proxy.proc.pid()), &out)?;
    std::thread::sleep(syscalls::ATTACH_PAUSE);
    let run = measure(tools, opts, case, proxy, opts.syscall_sample);
    let (syscalls, extra) = counting.stop()?;
    let report = run?.report;
    Ok(SyscallSample {
        tool: tool.describe(),
        syscalls,
        requests: report.requests,
        rps: report.rps,
        extra,
    })
}

/// A warm-up per proxy, `rounds` rounds alternating between the proxies, then one run per
/// proxy counting its system calls (with `tool`, when there is one).
fn run_case(
    tools: &Tools,
    opts: &Options,
    case: TlsCase,
    proxies: &mut [Running],
    tool: Option<&syscalls::Tool>,
) -> Result<CaseResult> {
    let title = opts.title(case);
    println!("\n== TLS: {title} ==");
    for p in proxies.iter_mut() {
        p.proc.check_alive()?;
        if !opts.warmup.is_zero() {
            measure(tools, opts, case, p, opts.warmup)
                .with_context(|| format!("warming up {}", p.name))?;
        }
    }
    let mut results: Vec<PeerResult> = proxies
        .iter()
        .map(|p| PeerResult {
            peer: p.name.clone(),
            samples: Vec::new(),
            syscalls: Err(not_counted(opts, tool).unwrap_or_default()),
        })
        .collect();
    for round in 0..opts.rounds {
        for i in round_order(proxies.len(), round) {
            let p = &mut proxies[i];
            p.proc.check_alive()?;
            let s = measure(tools, opts, case, p, opts.duration)
                .with_context(|| format!("measuring {}", p.name))?;
            println!(
                "  round {} {:<8} {:>9} req/s  p50 {:>9}  p99 {:>9}  mean {:>9}  proxy CPU {:>4}  errors {}  resumed {}  [{}]",
                round + 1,
                p.name,
                fmt_rate(Some(s.report.rps)),
                fmt_latency(s.report.p50_us),
                fmt_latency(s.report.p99_us),
                fmt_latency(s.report.mean_us),
                fmt_percent(Some(s.cpu)),
                s.report.errors,
                s.report.resumed,
                s.report.negotiated
            );
            results[i].samples.push(s);
        }
    }
    if let (Some(tool), None) = (tool, not_counted(opts, tool)) {
        for (p, r) in proxies.iter_mut().zip(results.iter_mut()) {
            p.proc.check_alive()?;
            r.syscalls = count_syscalls(tools, opts, case, p, tool)
                .map_err(|e| format!("counting failed: {e:#}"));
            println!(
                "  syscalls {:<8} {}",
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
        case,
        title,
        peers: results,
    };
    print!("{}", case_table(&result));
    Ok(result)
}

/// The per-case table of medians and Portico's ratios to nginx and HAProxy.
pub fn case_table(r: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<16} {:>9} {:>10} {:>10} {:>10} {:>9} {:>14} {:>9} {:>9} {:>12} {:>7}",
        "median of runs",
        "req/s",
        "p50",
        "p99",
        "mean",
        "proxy CPU",
        "req/s per core",
        "user/req",
        "sys/req",
        "syscalls/req",
        "errors"
    );
    for p in &r.peers {
        let s = p.summary();
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>10} {:>10} {:>10} {:>9} {:>14} {:>9} {:>9} {:>12} {:>7}",
            p.peer,
            fmt_rate(s.rps),
            fmt_latency(s.p50_us),
            fmt_latency(s.p99_us),
            fmt_latency(s.mean_us),
            fmt_percent(s.cpu),
            fmt_rate(s.per_core),
            fmt_us(s.user_us_per_request),
            fmt_us(s.sys_us_per_request),
            fmt_per_request(s.syscalls_per_request),
            s.errors
        );
    }
    let counted = r.peers.iter().find_map(|p| p.syscalls.as_ref().ok());
    let why = r.peers.iter().find_map(|p| p.syscalls.as_ref().err());
    let _ = writeln!(
        out,
        "  user and sys per request (per handshake in the handshake case): µs of proxy CPU time from /proc (10 ms ticks, summed over each whole run); syscalls/req: {}",
        match (counted, why) {
            (Some(s), _) => format!(
                "counted by `{}` in one extra run per proxy, never in the runs above (counting slows the proxy)",
                s.tool
            ),
            (None, Some(why)) => why.clone(),
            (None, None) => "not counted".into(),
        }
    );
    if r.case == TlsCase::Resumed {
        let _ = writeln!(
            out,
            "  handshakes resumed (each client thread's first is full): {}",
            resumed_counts(r)
        );
    }
    if let Some(portico) = r.summary_of("portico") {
        for peer in ["nginx", "haproxy"] {
            if let Some(other) = r.summary_of(peer) {
                let _ = writeln!(
                    out,
                    "  portico/{peer}: req/s {}, per core {}, p99 {}, mean {}, user/req {}, sys/req {}, syscalls/req {}",
                    fmt_ratio(ratio(portico.rps, other.rps)),
                    fmt_ratio(ratio(portico.per_core, other.per_core)),
                    fmt_ratio(ratio(portico.p99_us, other.p99_us)),
                    fmt_ratio(ratio(portico.mean_us, other.mean_us)),
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
    out
}

/// Each proxy's resumed handshakes over its answered requests, over every run.
fn resumed_counts(r: &CaseResult) -> String {
    r.peers
        .iter()
        .map(|p| {
            let requests: u64 = p.samples.iter().map(|s| s.report.requests).sum();
            format!("{} {} of {}", p.peer, p.summary().resumed, requests)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closing Markdown tables (ready for docs/benchmarks.md).
pub fn markdown(results: &[CaseResult]) -> String {
    let label = |c: TlsCase| match c {
        TlsCase::Handshake => "new TLS connection per request",
        TlsCase::Resumed => "resumed TLS connection per request",
        TlsCase::KeepAlive => "TLS keep-alive (HTTP/1.1)",
        TlsCase::H2 => "HTTP/2 keep-alive",
    };
    let lat = |s: &Summary| match (s.p99_us, s.mean_us) {
        (Some(p99), _) => format!("p99 {}", fmt_latency(Some(p99))),
        (None, Some(m)) => format!("mean {}", fmt_latency(Some(m))),
        _ => "-".into(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Case | Proxy | req/s | latency | proxy CPU | req/s per core | user µs/req | sys µs/req | syscalls/req | errors |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for p in &r.peers {
            let s = p.summary();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(r.case),
                p.peer,
                fmt_rate(s.rps),
                lat(&s),
                fmt_percent(s.cpu),
                fmt_rate(s.per_core),
                fmt_us(s.user_us_per_request),
                fmt_us(s.sys_us_per_request),
                fmt_per_request(s.syscalls_per_request),
                s.errors
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| Case | Portico/nginx req/s | per core | Portico/HAProxy req/s | per core |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for r in results {
        let Some(portico) = r.summary_of("portico") else {
            continue;
        };
        let cell = |peer: &str| {
            let other = r.summary_of(peer).unwrap_or_default();
            format!(
                "{} | {}",
                fmt_ratio(ratio(portico.rps, other.rps)),
                fmt_ratio(ratio(portico.per_core, other.per_core))
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            label(r.case),
            cell("nginx"),
            cell("haproxy")
        );
    }
    for r in results.iter().filter(|r| r.case == TlsCase::Resumed) {
        let _ = writeln!(out, "\nHandshakes resumed: {}.", resumed_counts(r));
    }
    out
}

fn to_json(results: &[CaseResult]) -> serde_json::Value {
    serde_json::json!({ "cases": results.iter().map(|r| serde_json::json!({
        "case": r.case.name(), "title": r.title,
        "peers": r.peers.iter().map(|p| {
            let s = p.summary();
            serde_json::json!({
                "peer": p.peer, "median_rps": s.rps, "median_rps_per_core": s.per_core,
                "median_p50_us": s.p50_us, "median_p99_us": s.p99_us, "median_mean_us": s.mean_us,
                "median_cpu": s.cpu, "errors": s.errors, "resumed": s.resumed,
                "median_user_us_per_request": s.user_us_per_request,
                "median_sys_us_per_request": s.sys_us_per_request,
                "syscalls_per_request": s.syscalls_per_request,
                "syscall_sample": match &p.syscalls {
                    Ok(x) => x.to_json(),
                    Err(why) => serde_json::json!({ "not_counted": why }),
                },
                "runs": p.samples.iter().map(|x| serde_json::json!({
                    "rps": x.report.rps, "requests": x.report.requests, "errors": x.report.errors,
                    "p50_us": x.report.p50_us, "p99_us": x.report.p99_us, "mean_us": x.report.mean_us,
                    "cpu": x.cpu, "wall_s": x.wall_s, "negotiated": x.report.negotiated,
                    "user_s": x.user_s, "sys_s": x.sys_s,
                    "user_us_per_request": x.user_us_per_request(),
                    "sys_us_per_request": x.sys_us_per_request(),
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })).collect::<Vec<_>>() })
}

/// Runs the whole TLS benchmark and prints the report.
pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.dir)?;
    let tools = Tools {
        wrk: which("wrk"),
        h2load: which("h2load"),
    };
    let mut cases = Vec::new();
    for &c in &opts.cases {
        match (c, &tools.wrk, &tools.h2load) {
            (TlsCase::KeepAlive, None, _) => println!("{}", skip_line("TLS keep-alive", "wrk")),
            (TlsCase::H2, _, None) => {
                println!("{}", skip_line("HTTP/2 keep-alive", "nghttp2-client"))
            }
            _ => cases.push(c),
        }
    }
    println!(
        "TLS benchmark: proxy on CPU {}, the load generator and the origin on CPU {}; {} round(s) of {} s per proxy and case, {} s warm-up; files in {}",
        opts.placement.proxy_cpus.as_deref().unwrap_or("any"),
        opts.placement.load_cpus.as_deref().unwrap_or("any"),
        opts.rounds,
        opts.duration.as_secs(),
        opts.warmup.as_secs(),
        opts.dir.display()
    );
    let certs = peers::make_certs(&opts.dir)?;
    println!(
        "certificate: {} (ECDSA P-256, for {}, signed by the throwaway CA {}), the same file for every proxy",
        certs.cert.display(),
        peers::HOST,
        certs.ca.display()
    );
    println!(
        "session resumption: every proxy has a session cache and tickets on (configs below); in the handshake case the client never offers a session (each connection a full handshake), in the resumed case each client thread offers the session of its last connection (TLS 1.3: a ticket) and the report counts the handshakes resumed; wrk and h2load keep their connections open"
    );
    let origin_kind = if which("nginx").is_some() {
        OriginKind::Nginx
    } else {
        OriginKind::PorticoOrigin
    };
    let origin = start_origin(origin_kind, &opts.dir, &opts.placement)?;
    println!(
        "\n-- {} at {} (plain HTTP) --\n{}",
        origin.name, origin.addr, origin.config
    );
    let mut proxies = Vec::new();
    for name in &opts.peers {
        let package = match name.as_str() {
            "nginx" => Some("nginx-light"),
            "haproxy" => Some("haproxy"),
            _ => None,
        };
        if let Some(pkg) = package.filter(|_| which(name).is_none()) {
            println!("{}", skip_line(name, pkg));
            continue;
        }
        let p = peers::start(
            name,
            &opts.dir,
            &opts.placement,
            origin.addr,
            opts.portico_threads,
            &certs,
        )
        .with_context(|| format!("starting {name}"))?;
        println!("\n-- {} at {} (TLS) --\n{}", p.name, p.addr, p.config);
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
    for &case in &cases {
        results.push(run_case(&tools, opts, case, &mut proxies, tool.as_ref())?);
    }
    println!("\n== TLS summary (medians; proxy on one pinned core) ==\n");
    print!("{}", markdown(&results));
    let json = opts.dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&to_json(&results))?)?;
    println!("\nEvery run: {}", json.display());
    println!("Total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The default directory for a run.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("portico-bench-tls-{}", std::process::id()))
}

/// `dir` made absolute (nginx reads relative paths against its prefix).
pub fn absolute(dir: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64, cpu: f64, p99: Option<f64>, mean: Option<f64>) -> Sample {
        Sample {
            report: LoadReport {
                requests: rps as u64,
                seconds: 1.0,
                rps,
                p50_us: p99.map(|p| p / 2.0),
                p99_us: p99,
                mean_us: mean,
                errors: 0,
                negotiated: String::new(),
                resumed: 0,
            },
            cpu,
            wall_s: 1.0,
            user_s: cpu * 0.25,
            sys_s: cpu * 0.75,
        }
    }

    #[test]
    fn ratios_per_core_and_markdown() {
        let r = CaseResult {
            case: TlsCase::Handshake,
            title: "t".into(),
            peers: vec![
                PeerResult {
                    peer: "portico".into(),
                    syscalls: Err("not counted".into()),
                    samples: vec![sample(3000.0, 1.0, Some(900.0), None)],
                },
                PeerResult {
                    peer: "nginx".into(),
                    syscalls: Err("not counted".into()),
                    samples: vec![sample(6000.0, 1.0, Some(300.0), None)],
                },
                PeerResult {
                    peer: "haproxy".into(),
                    syscalls: Err("not counted".into()),
                    samples: vec![sample(2000.0, 0.5, Some(300.0), None)],
                },
            ],
        };
        let t = case_table(&r);
        assert!(
            t.contains("portico/nginx: req/s 0.50×, per core 0.50×, p99 3.00×"),
            "{t}"
        );
        assert!(
            t.contains("portico/haproxy: req/s 1.50×, per core 0.75×"),
            "{t}"
        );
        let md = markdown(&[r]);
        assert!(
            md.contains("| new TLS connection per request | portico | 3,000 | p99 900 µs |"),
            "{md}"
        );
        assert!(
            md.contains("| new TLS connection per request | 0.50× | 0.50× | 1.50× | 0.75× |"),
            "{md}"
        );
        for c in TlsCase::ALL {
            assert_eq!(TlsCase::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn the_resumed_case_counts_resumed_handshakes() {
        let mut s = sample(3000.0, 1.0, Some(900.0), None);
        s.report.resumed = 2990;
        let r = CaseResult {
            case: TlsCase::Resumed,
            title: "t".into(),
            peers: vec![PeerResult {
                peer: "portico".into(),
                syscalls: Err("not counted".into()),
                samples: vec![s],
            }],
        };
        let t = case_table(&r);
        assert!(t.contains("portico 2990 of "), "{t}");
        let md = markdown(&[r]);
        assert!(
            md.contains("| resumed TLS connection per request | portico |"),
            "{md}"
        );
        assert!(md.contains("Handshakes resumed: portico 2990 of "), "{md}");
    }

    #[test]
    fn h2_rows_show_the_mean() {
        let r = CaseResult {
            case: TlsCase::H2,
            title: "t".into(),
            peers: vec![PeerResult {
                peer: "portico".into(),
                syscalls: Err("not counted".into()),
                samples: vec![sample(10.0, 1.0, None, Some(1500.0))],
            }],
        };
        assert!(markdown(&[r]).contains("| HTTP/2 keep-alive | portico | 10 | mean 1.50 ms |"));
    }
}
