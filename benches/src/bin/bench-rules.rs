//! `bench-rules`: what a realistic 10-rule set costs Portico, beside nginx and HAProxy doing the
//! same and Portico without rules in the same rounds; then rate-limit accuracy at 3x the limit
//! against nginx `limit_req` and HAProxy stick tables.

use anyhow::Result;
use clap::Parser;
use portico_bench::throughput::syscalls::Choice;
use portico_bench::throughput::{Options, peers::Placement};
use std::path::PathBuf;
use std::time::Duration;

/// Portico with ten rules (security headers, a network and an admin block that do not match, a
/// regex redirect that does not match, a prefix rewrite, a regex capture sent to the origin, a
/// canary header that does not match, a rate limit not reached, a request header, a
/// Cache-Control) against nginx and HAProxy configured to do the same, and Portico with no
/// rules, in alternating rounds on one pinned core each; then one client at 3x a 100 req/s
/// per-client limit against Portico, nginx `limit_req` and an HAProxy stick table.
#[derive(Parser, Debug)]
#[command(name = "bench-rules")]
struct Args {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Measured runs per proxy (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of unmeasured warm-up per proxy.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds the rate-limited client sends for.
    #[arg(long, default_value_t = 5)]
    accuracy_seconds: u64,
    /// CPUs of the proxy under test (taskset -c list); "none" to not pin.
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// CPUs of wrk and the origin; "none" to not pin.
    #[arg(long, default_value = "1")]
    load_cpus: String,
    /// Directory for configs, logs and results.json (default: a new one under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cpus = |s: String| (s != "none").then_some(s);
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("portico-bench-rules-{}", std::process::id()))
    });
    let opts = Options {
        duration: Duration::from_secs(args.duration.max(1)),
        rounds: args.rounds.max(1),
        warmup: Duration::from_secs(args.warmup),
        cases: Vec::new(),
        peers: Vec::new(),
        connections: args.connections,
        large_connections: 0,
        many_connections: 0,
        wrk_threads: 1,
        placement: Placement {
            proxy_cpus: cpus(args.proxy_cpus),
            load_cpus: cpus(args.load_cpus),
        },
        origin: None,
        portico_threads: 1,
        pingora_minimal: None,
        portico_before: None,
        syscall_sample: Duration::ZERO,
        syscall_counter: Choice::Auto,
        dir: std::path::absolute(&dir)?,
    };
    portico_bench::rules_bench::run(&opts, args.accuracy_seconds.max(1))
}
