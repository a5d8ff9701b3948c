//! The fuzz loop: a node (the `portico` binary) and a recording origin on free loopback ports,
//! batches of mutated connections, and after every batch the checks: the process is alive,
//! a health request is answered, the origin saw nothing the rules refuse.

use super::cases::{Case, find_ids, generate};
use super::oracle;
use crate::procs::{Proc, free_port, wait_port};
use portico_origin::{OriginConfig, OriginHandle};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to fuzz.
    pub duration: Duration,
    /// Seed of the case generator (printed, to replay a run).
    pub seed: u64,
    /// The `portico` binary.
    pub portico: PathBuf,
    /// Where the node's config and log go.
    pub dir: PathBuf,
    /// Connections per batch (the checks run after each).
    pub batch: usize,
    /// How long the health request after a batch may take before the node counts as hung.
    pub health_deadline: Duration,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Connections (cases) sent.
    pub cases: u64,
    /// Requests written (before mutation damaged any).
    pub requests: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Heads the rules accept.
    pub accepted_heads: u64,
    /// Cases whose stream hit a head the rules refuse, by refusal.
    pub refused: BTreeMap<String, u64>,
    /// Cases stopped by a chunked body the rules refuse.
    pub bad_bodies: u64,
    /// Heads accepted only after Pingora's percent-encoding of an illegal target.
    pub autocorrected: u64,
    /// First status line of each reply, by code (`none`: no answer before the close).
    pub answers: BTreeMap<String, u64>,
    /// Times the node process died.
    pub crashes: u64,
    /// `panicked at` lines in the node's log.
    pub panics: u64,
    /// Health requests not answered within the deadline.
    pub hangs: u64,
    /// Requests the origin saw that the rules refuse (or that were inside a body).
    pub forwarded_refused: u64,
    /// Requests the origin saw, from fuzz cases.
    pub forwarded: u64,
    /// Origin requests with no recognisable id (a mutation damaged it).
    pub unidentified: u64,
    /// The first few forwarded-refused cases, escaped.
    pub examples: Vec<String>,
    /// Time fuzzed.
    pub elapsed: Duration,
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn clean(&self) -> bool {
        self.crashes == 0 && self.panics == 0 && self.hangs == 0 && self.forwarded_refused == 0
    }

    /// The summary printed at the end.
    pub fn print(&self, options: &Options) {
        println!(
            "fuzz: {:.0} s, seed {}, {} cases ({} requests, {} KiB), {:.0} cases/s",
            self.elapsed.as_secs_f64(),
            options.seed,
            self.cases,
            self.requests,
            self.bytes / 1024,
            self.cases as f64 / self.elapsed.as_secs_f64().max(0.001)
        );
        println!(
            "  rules: {} heads accepted; cases stopped by a refused head: {}; by a refused chunked body: {}",
            self.accepted_heads,
            self.refused.values().sum::<u64>(),
            self.bad_bodies
        );
        for (why, n) in &self.refused {
            println!("    {n:>7}  {why}");
        }
        println!(
            "  heads refused as sent but accepted once Pingora percent-encoded the target: {}",
            self.autocorrected
        );
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("  first answers: {}", answers.join(", "));
        println!(
            "  origin saw {} fuzz requests ({} with a damaged id)",
            self.forwarded, self.unidentified
        );
        println!(
            "  crashes: {}, panics: {}, hangs: {}, forwarded-refused: {}",
            self.crashes, self.panics, self.hangs, self.forwarded_refused
        );
        for e in &self.examples {
            println!("  forwarded although refused: {e}");
        }
        println!("  {}", if self.clean() { "PASS" } else { "FAIL" });
    }
}

struct NodeProc {
    proc: Proc,
    listen: SocketAddr,
    log_seen: usize,
}

fn start_node(options: &Options, origin: SocketAddr, generation: u32) -> anyhow::Result<NodeProc> {
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let config = format!(
        r#"{{"node": {{"region": "fuzz", "listen": "{listen}", "admin_listen": "{admin}", "threads": 1}},
  "pools": [{{"name": "p", "health_probe": {{"interval_ms": 1000, "timeout_ms": 500}},
             "origins": [{{"name": "o", "address": "{origin}"}}]}}],
  "routes": [{{"name": "r", "pool": "p"}}]}}"#
    );
    let path = options.dir.join("fuzz.json");
    std::fs::write(&path, &config)?;
    if generation == 0 {
        println!("node config ({}):\n{config}", path.display());
    }
    let mut cmd = std::process::Command::new(&options.portico);
    cmd.arg("--config").arg(&path).env("RUST_LOG", "warn");
    let proc = Proc::spawn(&format!("portico-{generation}"), cmd, &options.dir)?;
    wait_port(listen, Duration::from_secs(20))?;
    wait_port(admin, Duration::from_secs(20))?;
    Ok(NodeProc {
        proc,
        listen,
        log_seen: 0,
    })
}

/// Sends one case and returns the first status code answered (or `none`).
async fn send(addr: SocketAddr, case: &Case) -> String {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
    else {
        return "connect failed".to_string();
    };
    for w in &case.writes {
        if s.write_all(w).await.is_err() {
            break;
        }
        let _ = s.flush().await;
        tokio::task::yield_now().await;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let read = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(800)),
            s.read(&mut buf),
        )
        .await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                reply.extend_from_slice(&buf[..n]);
                if reply.len() > 1 << 20 {
                    break;
                }
            }
            _ => break,
        }
    }
    match reply.get(9..12) {
        Some(code) if reply.starts_with(b"HTTP/1.") => String::from_utf8_lossy(code).into_owned(),
        _ => "none".to_string(),
    }
}

/// A GET through the node, answered 200 within `deadline`.
async fn healthy(addr: SocketAddr, deadline: Duration) -> bool {
    let check = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            b"GET /health-after-batch HTTP/1.1\r\nHost: fuzz.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .ok()?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.ok()?;
        Some(reply.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(deadline, check).await, Ok(Some(true)))
}

/// `panicked at` lines in `log` past byte `from`; returns them and the new offset.
fn new_panics(log: &Path, from: usize) -> (Vec<String>, usize) {
    let text = std::fs::read(log).unwrap_or_default();
    let start = from.min(text.len());
    let lines = String::from_utf8_lossy(&text[start..])
        .lines()
        .filter(|l| l.contains("panicked at"))
        .map(str::to_string)
        .collect();
    (lines, text.len())
}

fn escape(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(400)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > 400 {
        format!("{shown}... ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// Checks what the origin saw since the last check against what the rules allow.
fn check_origin(
    origin: &OriginHandle,
    allowed: &HashMap<String, (bool, u64)>,
    streams: &HashMap<u64, Vec<u8>>,
    report: &mut Report,
) {
    let log = origin.log();
    origin.clear_log();
    for rec in log.into_iter().filter(|r| !r.probe) {
        if rec.path == "/health-after-batch" {
            continue;
        }
        report.forwarded += 1;
        let mut ids = find_ids(rec.path.as_bytes());
        if let Some((_, v)) = rec.headers.iter().find(|(k, _)| k == "x-fuzz") {
            ids.extend(find_ids(v.as_bytes()));
        }
        let known: Vec<&(bool, u64)> = ids.iter().filter_map(|i| allowed.get(i)).collect();
        if known.is_empty() {
            report.unidentified += 1;
            continue;
        }
        // Forwarded must be explained by an accepted head.
        if !known.iter().any(|(ok, _)| *ok) {
            report.forwarded_refused += 1;
            if report.examples.len() < 5 {
                let n = known[0].1;
                let stream = streams.get(&n).map(|s| escape(s)).unwrap_or_default();
                report.examples.push(format!(
                    "case {n}: origin saw {} {} — sent: {stream}",
                    rec.method, rec.path
                ));
            }
        }
    }
}

/// Runs the fuzzer.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let mut origin_config = OriginConfig::new("fuzz-origin", "127.0.0.1:0".parse()?);
    origin_config.log_capacity = 1_000_000;
    let origin = portico_origin::start(origin_config).await?;
    let mut generation = 0;
    let mut node = start_node(&options, origin.addr(), generation)?;
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let mut report = Report::default();
    let mut n = 0u64;
    // What the rules allow, per id, over the whole run (a request forwarded late is still
    // judged); the streams of the last two batches, for examples.
    let mut allowed: HashMap<String, (bool, u64)> = HashMap::new();
    let mut streams: HashMap<u64, Vec<u8>> = HashMap::new();
    let start = Instant::now();
    while start.elapsed() < options.duration {
        let cases: Vec<Case> = (0..options.batch)
            .map(|_| {
                n += 1;
                generate(&mut rng, n)
            })
            .collect();
        let oldest = n.saturating_sub(2 * options.batch as u64);
        streams.retain(|&k, _| k > oldest);
        for c in &cases {
            let stream = c.stream();
            let reading = oracle::read(&stream);
            report.accepted_heads += reading.accepted as u64;
            if let Some(r) = reading.refused {
                *report.refused.entry(r.reason().to_string()).or_default() += 1;
            }
            report.bad_bodies += u64::from(reading.bad_body);
            report.autocorrected += reading.autocorrected as u64;
            for id in find_ids(&stream) {
                allowed.entry(id).or_insert((false, c.number));
            }
            for id in reading.allowed {
                allowed.insert(id, (true, c.number));
            }
            report.cases += 1;
            report.requests += c.ids.len() as u64;
            report.bytes += stream.len() as u64;
            streams.insert(c.number, stream);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for c in cases {
            let addr = node.listen;
            tasks.spawn(async move { send(addr, &c).await });
        }
        while let Some(answer) = tasks.join_next().await {
            let code = answer.unwrap_or_else(|_| "task failed".to_string());
            *report.answers.entry(code).or_default() += 1;
        }
        let alive = node.proc.check_alive();
        let is_healthy = alive.is_ok() && healthy(node.listen, options.health_deadline).await;
        check_origin(&origin, &allowed, &streams, &mut report);
        let (panics, seen) = new_panics(&node.proc.log, node.log_seen);
        node.log_seen = seen;
        for p in &panics {
            println!("  panic in the node: {p}");
        }
        report.panics += panics.len() as u64;
        if let Err(e) = alive {
            report.crashes += 1;
            println!("  the node died: {e}");
        } else if !is_healthy {
            report.hangs += 1;
            println!(
                "  the node did not answer a health request within {:?}",
                options.health_deadline
            );
        }
        if !is_healthy {
            generation += 1;
            node.proc.terminate(Duration::from_secs(2));
            node = start_node(&options, origin.addr(), generation)?;
        }
    }
    report.elapsed = start.elapsed();
    node.proc.terminate(Duration::from_secs(5));
    let (panics, _) = new_panics(&node.proc.log, node.log_seen);
    report.panics += panics.len() as u64;
    origin.shutdown().await;
    Ok(report)
}
