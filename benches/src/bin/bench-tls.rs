//! `bench-tls`: Portico, nginx and HAProxy terminating TLS with the same ECDSA P-256
//! certificate: full handshakes, resumed handshakes, HTTP/1.1 keep-alive over TLS and HTTP/2
//! keep-alive.

use anyhow::{Result, bail};
use clap::Parser;
use portico_bench::throughput::peers::Placement;
use portico_bench::throughput::syscalls::Choice;
use portico_bench::tls_bench::load::{HandshakeClient, to_line};
use portico_bench::tls_bench::{Options, TlsCase, absolute, default_dir, run};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Measures TLS termination: each proxy with one worker pinned to one CPU, the load generator
/// and the plain-HTTP origin on the other; rounds alternate between the proxies and the report
/// shows medians and Portico's ratios to nginx and HAProxy.
#[derive(Parser, Debug)]
#[command(name = "bench-tls")]
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
    /// Cases, comma-separated: handshake, resumed, keepalive, h2.
    #[arg(
        long,
        default_value = "handshake,resumed,keepalive,h2",
        value_delimiter = ','
    )]
    cases: Vec<String>,
    /// Proxies, comma-separated: portico, nginx, haproxy.
    #[arg(long, default_value = "portico,nginx,haproxy", value_delimiter = ',')]
    peers: Vec<String>,
    /// Concurrent connections of the handshake client.
    #[arg(long, default_value_t = 32)]
    handshake_connections: usize,
    /// wrk connections for HTTP/1.1 keep-alive over TLS.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// h2load connections.
    #[arg(long, default_value_t = 16)]
    h2_clients: usize,
    /// h2load concurrent streams per connection.
    #[arg(long, default_value_t = 16)]
    h2_streams: usize,
    /// CPUs of the proxy under test (taskset -c list); "none" to not pin.
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// CPUs of the load generator and the origin; "none" to not pin.
    #[arg(long, default_value = "1")]
    load_cpus: String,
    /// Portico's node.threads.
    #[arg(long, default_value_t = 1)]
    portico_threads: usize,
    /// Seconds of the extra run per proxy and case that counts system calls per request (perf
    /// stat on raw_syscalls:sys_enter, else strace -c -f); it comes after the measured rounds
    /// and its req/s are not reported, since counting slows the proxy. 0: no counting.
    #[arg(long, default_value_t = 3)]
    syscall_sample: u64,
    /// What counts the system calls: auto (perf when it works here, else strace), perf or
    /// strace.
    #[arg(long, default_value = "auto")]
    syscall_counter: String,
    /// Directory for certificates, configs, logs and results.json (default: a new one under
    /// the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: run as the handshake client against ADDR and print its report.
    #[arg(long, value_name = "ADDR", hide = true)]
    handshake_client: Option<SocketAddr>,
    /// Internal: the handshake client's SNI.
    #[arg(long, hide = true, default_value = "bench.local")]
    sni: String,
    /// Internal: the handshake client offers each connection the session of its last.
    #[arg(long, hide = true)]
    resume: bool,
}

fn cpus(s: String) -> Option<String> {
    (s != "none").then_some(s)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.handshake_client {
        let client = HandshakeClient {
            addr,
            sni: args.sni,
            connections: args.handshake_connections,
            duration: Duration::from_secs_f64(args.duration as f64),
            resume: args.resume,
        };
        println!("{}", to_line(&client.run()?));
        return Ok(());
    }
    let mut cases = Vec::new();
    for c in &args.cases {
        match TlsCase::from_name(c) {
            Some(k) => cases.push(k),
            None => bail!("unknown case {c:?} (handshake, resumed, keepalive, h2)"),
        }
    }
    for p in &args.peers {
        if !portico_bench::tls_bench::peers::PEERS.contains(&p.as_str()) {
            bail!("unknown peer {p:?} (portico, nginx, haproxy)");
        }
    }
    let opts = Options {
        duration: Duration::from_secs(args.duration.max(1)),
        rounds: args.rounds.max(1),
        warmup: Duration::from_secs(args.warmup),
        cases,
        peers: args.peers,
        handshake_connections: args.handshake_connections.max(1),
        connections: args.connections.max(1),
        h2_clients: args.h2_clients.max(1),
        h2_streams: args.h2_streams.max(1),
        placement: Placement {
            proxy_cpus: cpus(args.proxy_cpus),
            load_cpus: cpus(args.load_cpus),
        },
        portico_threads: args.portico_threads.max(1),
        syscall_sample: Duration::from_secs(args.syscall_sample),
        syscall_counter: match Choice::from_name(&args.syscall_counter) {
            Some(c) => c,
            None => bail!(
                "unknown syscall counter {:?} (auto, perf, strace)",
                args.syscall_counter
            ),
        },
        dir: absolute(&args.dir.unwrap_or_else(default_dir))?,
    };
    run(&opts)
}
