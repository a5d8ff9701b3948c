//! `bench-throughput`: Portico against nginx and HAProxy as reverse proxies, one pinned core each;
//! Portico with its access log on against Portico with it off.

use anyhow::{Result, bail};
use clap::Parser;
use portico_bench::throughput::peers::{OriginKind, PeerKind, Placement};
use portico_bench::throughput::syscalls::Choice;
use portico_bench::throughput::{CaseKind, Options, run};
use std::path::PathBuf;
use std::time::Duration;

/// Measures requests per second and latency of Portico, nginx and HAProxy in front of the
/// same origin, each with one worker pinned to one CPU while wrk and the origin share the
/// other CPU. Rounds alternate between the proxies; the report shows medians and ratios,
/// including what Portico's access log costs (portico+accesslog / portico).
#[derive(Parser, Debug)]
#[command(name = "bench-throughput")]
struct Args {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Measured runs per proxy and case (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of unmeasured warm-up per proxy and case.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Cases, comma-separated: small, large, conns, newconn.
    #[arg(
        long,
        default_value = "small,large,conns,newconn",
        value_delimiter = ','
    )]
    cases: Vec<String>,
    /// Proxies, comma-separated: portico, portico+accesslog (node.access_log to a file in
    /// --dir), nginx, nginx+accesslog (access_log to a file, buffer=64k; not in the default),
    /// haproxy, pingora-minimal. `--peers portico,portico+accesslog` alone measures what the
    /// access log costs.
    #[arg(
        long,
        default_value = "portico,portico+accesslog,nginx,haproxy,pingora-minimal",
        value_delimiter = ','
    )]
    peers: Vec<String>,
    /// Connections for the small-response and new-connection cases.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections for the 1 MiB case.
    #[arg(long, default_value_t = 16)]
    large_connections: usize,
    /// Connections for the many-connections case.
    #[arg(long, default_value_t = 5000)]
    many_connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    wrk_threads: usize,
    /// CPUs of the proxy under test (taskset -c list); "none" to not pin.
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// CPUs of wrk and the origin; "none" to not pin.
    #[arg(long, default_value = "1")]
    load_cpus: String,
    /// Origin: auto (nginx when installed), nginx or portico-origin.
    #[arg(long, default_value = "auto")]
    origin: String,
    /// Portico's node.threads.
    #[arg(long, default_value_t = 1)]
    portico_threads: usize,
    /// The minimal Pingora proxy, run as `BIN LISTEN ORIGIN` for peer `pingora-minimal`: the
    /// floor Portico's own work sits on (default: this workspace's `pingora-minimal` binary).
    #[arg(long, value_name = "BIN")]
    pingora_minimal: Option<PathBuf>,
    /// Another `portico` binary (e.g. main before a change), measured as peer `portico-before`
    /// with the same config in the same rounds as this workspace's portico; the summary prints
    /// portico/portico-before.
    #[arg(long, value_name = "BIN")]
    portico_before: Option<PathBuf>,
    /// Seconds of the extra run per proxy and case that counts system calls per request (perf
    /// stat on raw_syscalls:sys_enter, with the tasks woken, page faults and context switches
    /// beside them; else strace -c -f, calls only); it comes after the measured rounds and its
    /// req/s are not reported, since counting slows the proxy. 0: no counting.
    #[arg(long, default_value_t = 3)]
    syscall_sample: u64,
    /// What counts the system calls: auto (perf when it works here, else strace), perf or
    /// strace.
    #[arg(long, default_value = "auto")]
    syscall_counter: String,
    /// Directory for configs, logs and results.json (default: a new one under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn cpus(s: String) -> Option<String> {
    (s != "none").then_some(s)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut cases = Vec::new();
    for c in &args.cases {
        match CaseKind::from_name(c) {
            Some(k) => cases.push(k),
            None => bail!("unknown case {c:?} (small, large, conns, newconn)"),
        }
    }
    let mut peers = Vec::new();
    for p in &args.peers {
        match PeerKind::from_name(p) {
            Some(k) => peers.push(k),
            None => bail!("unknown peer {p:?} ({})", PeerKind::names()),
        }
    }
    if args.pingora_minimal.is_some() && !peers.contains(&PeerKind::PingoraMinimal) {
        peers.push(PeerKind::PingoraMinimal);
    }
    if args.portico_before.is_some() && !peers.contains(&PeerKind::PorticoBefore) {
        peers.push(PeerKind::PorticoBefore);
    }
    let origin = match args.origin.as_str() {
        "auto" => None,
        "nginx" => Some(OriginKind::Nginx),
        "portico-origin" => Some(OriginKind::PorticoOrigin),
        o => bail!("unknown origin {o:?} (auto, nginx, portico-origin)"),
    };
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("portico-bench-throughput-{}", std::process::id()))
    });
    // Absolute: nginx reads relative paths in its config against its prefix (`-p`), not ours.
    let dir = std::path::absolute(&dir)?;
    let opts = Options {
        duration: Duration::from_secs(args.duration.max(1)),
        rounds: args.rounds.max(1),
        warmup: Duration::from_secs(args.warmup),
        cases,
        peers,
        connections: args.connections,
        large_connections: args.large_connections,
        many_connections: args.many_connections,
        wrk_threads: args.wrk_threads.max(1),
        placement: Placement {
            proxy_cpus: cpus(args.proxy_cpus),
            load_cpus: cpus(args.load_cpus),
        },
        origin,
        portico_threads: args.portico_threads.max(1),
        pingora_minimal: args.pingora_minimal.or_else(|| {
            let built = portico_bench::procs::workspace_bin("pingora-minimal");
            built.is_file().then_some(built)
        }),
        portico_before: args.portico_before,
        syscall_sample: Duration::from_secs(args.syscall_sample),
        syscall_counter: match Choice::from_name(&args.syscall_counter) {
            Some(c) => c,
            None => bail!(
                "unknown syscall counter {:?} (auto, perf, strace)",
                args.syscall_counter
            ),
        },
        dir,
    };
    run(&opts)
}
