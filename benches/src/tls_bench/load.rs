//! The TLS load generators: a new-connection-per-request client (full handshakes, or
//! resumed ones offering the session of the thread's last connection) run as a pinned child
//! process, and h2load for HTTP/2 keep-alive.

use crate::procs::pinned;
use anyhow::{Context, Result, bail};
use openssl::ssl::{SslConnector, SslMethod, SslSessionCacheMode, SslStream, SslVerifyMode};
use portico_openssl_ext::{ClientSession, ResumingClient};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What one load run measured, whatever the tool.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Requests answered 200.
    pub requests: u64,
    /// Length of the run, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs (not reported by h2load).
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs (not reported by h2load).
    pub p99_us: Option<f64>,
    /// Mean latency, µs.
    pub mean_us: Option<f64>,
    /// Failed requests (connection, TLS or HTTP errors, non-200 answers).
    pub errors: u64,
    /// What was negotiated, e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384, h2`.
    pub negotiated: String,
    /// Handshakes that resumed a session (0 unless the client offers them).
    pub resumed: u64,
}

/// The handshake client's settings.
#[derive(Debug, Clone)]
pub struct HandshakeClient {
    /// The TLS listener.
    pub addr: SocketAddr,
    /// SNI to send.
    pub sni: String,
    /// Concurrent connections (one thread each).
    pub connections: usize,
    /// Length of the run.
    pub duration: Duration,
    /// Whether each connection offers the session of the thread's last one (resumed
    /// handshakes after each thread's first), rather than none (full handshakes).
    pub resume: bool,
}

impl HandshakeClient {
    /// This program run as the client, pinned to `cpus` (`--handshake-client` mode).
    pub fn command(&self, cpus: Option<&str>) -> Result<Command> {
        let me = std::env::current_exe().context("the benchmark's own path")?;
        let mut cmd = pinned(cpus, &me);
        cmd.arg("--handshake-client")
            .arg(self.addr.to_string())
            .arg("--sni")
            .arg(&self.sni)
            .arg("--connections")
            .arg(self.connections.to_string())
            .arg("--duration")
            .arg(self.duration.as_secs().max(1).to_string());
        if self.resume {
            cmd.arg("--resume");
        }
        Ok(cmd)
    }

    /// Runs the load in this process: every thread opens a TCP connection, does a TLS
    /// handshake (full: no session is ever offered; or, with `resume`, offering the session of
    /// its last connection, ticket or ID), sends one `GET / HTTP/1.1` with `Connection: close`
    /// and reads the answer to the end.
    pub fn run(&self) -> Result<LoadReport> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // The server's signature over the handshake is still checked (TLS 1.3 always does);
        // the chain is not, as with wrk and h2load.
        b.set_verify(SslVerifyMode::NONE);
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        b.set_alpn_protos(b"\x08http/1.1")?;
        let connector = ResumingClient::new(b.build());
        let deadline = Instant::now() + self.duration;
        let start = Instant::now();
        let results: Vec<Thread> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.connections.max(1))
                .map(|_| s.spawn(|| self.thread(&connector, deadline)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        let mut lat: Vec<u32> = results
            .iter()
            .flat_map(|t| t.latencies_us.iter().copied())
            .collect();
        lat.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            (!lat.is_empty()).then(|| f64::from(lat[((lat.len() - 1) as f64 * p).round() as usize]))
        };
        let requests = lat.len() as u64;
        Ok(LoadReport {
            requests,
            seconds,
            rps: requests as f64 / seconds,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            mean_us: (!lat.is_empty())
                .then(|| lat.iter().map(|&l| f64::from(l)).sum::<f64>() / lat.len() as f64),
            errors: results.iter().map(|t| t.errors).sum(),
            negotiated: results
                .iter()
                .find_map(|t| t.negotiated.clone())
                .unwrap_or_default(),
            resumed: results.iter().map(|t| t.resumed).sum(),
        })
    }

    fn thread(&self, connector: &ResumingClient, deadline: Instant) -> Thread {
        let mut t = Thread::default();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.sni
        );
        while Instant::now() < deadline {
            let t0 = Instant::now();
            match self.one(connector, &request, &mut t) {
                Ok(()) => t
                    .latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                Err(_) => {
                    t.errors += 1;
                    // A refused or reset connection would otherwise spin.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        t
    }

    fn one(&self, connector: &ResumingClient, request: &str, t: &mut Thread) -> Result<()> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let offered = if self.resume {
            t.session.as_ref()
        } else {
            None
        };
        let ssl = connector.ssl(&self.sni, false, offered)?;
        let mut tls = SslStream::new(ssl, tcp)?;
        tls.connect()
            .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
        if tls.ssl().session_reused() {
            t.resumed += 1;
        }
        if t.negotiated.is_none() {
            t.negotiated = Some(format!(
                "{} {}",
                tls.ssl().version_str(),
                tls.ssl().current_cipher().map_or("?", |c| c.name())
            ));
        }
        tls.write_all(request.as_bytes())?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        loop {
            match tls.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A peer that closes without close_notify after a whole answer is fine.
                Err(_) if complete(&buf) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if !buf.starts_with(b"HTTP/1.1 200") || !complete(&buf) {
            bail!("not a whole 200 answer");
        }
        if self.resume {
            // close_notify first: OpenSSL marks a session dropped without it not resumable.
            let _ = tls.shutdown();
            t.session = connector.session(tls.ssl()).or(t.session.take());
        }
        Ok(())
    }
}

#[derive(Default)]
struct Thread {
    /// The session to offer next (resuming clients).
    session: Option<ClientSession>,
    latencies_us: Vec<u32>,
    errors: u64,
    resumed: u64,
    negotiated: Option<String>,
}

/// Whether `buf` holds a whole response head and the body its `Content-Length` announces.
pub fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => buf.len() >= end + 4 + n,
        None => true,
    }
}

/// The handshake client's report as one line (what the child prints).
pub fn to_line(r: &LoadReport) -> String {
    serde_json::json!({
        "requests": r.requests, "seconds": r.seconds, "rps": r.rps,
        "p50_us": r.p50_us, "p99_us": r.p99_us, "mean_us": r.mean_us,
        "errors": r.errors, "negotiated": r.negotiated, "resumed": r.resumed,
    })
    .to_string()
}

/// Reads what [`to_line`] printed.
pub fn from_line(line: &str) -> Result<LoadReport> {
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("unexpected handshake client output: {line}"))?;
    let f = |k: &str| v[k].as_f64();
    Ok(LoadReport {
        requests: v["requests"].as_u64().unwrap_or(0),
        seconds: f("seconds").unwrap_or(0.0),
        rps: f("rps").unwrap_or(0.0),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        mean_us: f("mean_us"),
        errors: v["errors"].as_u64().unwrap_or(0),
        negotiated: v["negotiated"].as_str().unwrap_or("").to_string(),
        resumed: v["resumed"].as_u64().unwrap_or(0),
    })
}

/// Waits for a spawned handshake client and reads its report.
pub fn finish_client(child: std::process::Child) -> Result<LoadReport> {
    let out = child
        .wait_with_output()
        .context("waiting for the handshake client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the handshake client failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    from_line(stdout.lines().last().unwrap_or(""))
}

/// One h2load run: `clients` connections with `streams` concurrent streams each.
#[derive(Debug, Clone)]
pub struct H2loadRun<'a> {
    /// `https://…` URL.
    pub url: &'a str,
    /// Connections (`-c`).
    pub clients: usize,
    /// Concurrent streams per connection (`-m`).
    pub streams: usize,
    /// Length (`-D`).
    pub duration: Duration,
}

impl H2loadRun<'_> {
    /// h2load's arguments: one thread, ALPN h2.
    pub fn args(&self) -> Vec<String> {
        vec![
            "-t1".into(),
            format!("-c{}", self.clients),
            format!("-m{}", self.streams),
            format!("-D{}", self.duration.as_secs().max(1)),
            self.url.to_string(),
        ]
    }

    /// The command, pinned to `cpus`.
    pub fn command(&self, h2load: &Path, cpus: Option<&str>) -> Command {
        let mut cmd = pinned(cpus, h2load);
        cmd.args(self.args());
        cmd
    }
}

/// An h2load duration (`812us`, `1.02ms`, `2.50s`) in µs.
fn h2_duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(
        v * match unit {
            "us" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            _ => return None,
        },
    )
}

/// Reads h2load's report.
pub fn parse_h2load(output: &str) -> Result<LoadReport> {
    let mut seconds = None;
    let mut rps = None;
    let mut ok = None;
    let mut failed = 0;
    let mut non_2xx = 0;
    let mut mean = None;
    let mut protocol = String::new();
    let mut cipher = String::new();
    for line in output.lines().map(str::trim) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["finished", "in", t, r, "req/s,", ..] => {
                seconds = h2_duration_us(t.trim_end_matches(',')).map(|us| us / 1e6);
                rps = r.parse::<f64>().ok();
            }
            [
                "requests:",
                _,
                "total,",
                _,
                "started,",
                _,
                "done,",
                s,
                "succeeded,",
                f,
                "failed,",
                e,
                "errored,",
                t,
                "timeout",
            ] => {
                ok = s.parse::<u64>().ok();
                failed = [f, e, t].iter().filter_map(|x| x.parse::<u64>().ok()).sum();
            }
            [
                "status",
                "codes:",
                _,
                "2xx,",
                c3,
                "3xx,",
                c4,
                "4xx,",
                c5,
                "5xx",
            ] => {
                non_2xx = [c3, c4, c5]
                    .iter()
                    .filter_map(|x| x.parse::<u64>().ok())
                    .sum();
            }
            ["time", "for", "request:", _min, _max, m, ..] => mean = h2_duration_us(m),
            ["Application", "protocol:", p] => protocol = p.to_string(),
            ["TLS", "Protocol:", p] => cipher = format!("{p} {cipher}").trim().to_string(),
            ["Cipher:", c] => cipher = format!("{cipher} {c}").trim().to_string(),
            _ => {}
        }
    }
    let (Some(seconds), Some(rps), Some(ok)) = (seconds, rps, ok) else {
        bail!("unexpected h2load output:\n{output}");
    };
    if protocol != "h2" {
        bail!("h2load did not negotiate h2 (application protocol {protocol:?}):\n{output}");
    }
    Ok(LoadReport {
        requests: ok.saturating_sub(non_2xx),
        seconds,
        rps,
        p50_us: None,
        p99_us: None,
        mean_us: mean,
        errors: failed + non_2xx,
        negotiated: format!("{cipher}, {protocol}"),
        resumed: 0,
    })
}

/// Waits for a spawned h2load and reads its report.
pub fn finish_h2load(child: std::process::Child) -> Result<LoadReport> {
    let out = child.wait_with_output().context("waiting for h2load")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "h2load failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_h2load(&stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 8s of main duration for each client.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2

finished in 8.00s, 41234.50 req/s, 1.61MB/s
requests: 329876 total, 330132 started, 329876 done, 329870 succeeded, 6 failed, 0 errored, 0 timeout
status codes: 329870 2xx, 0 3xx, 4 4xx, 0 5xx
traffic: 12.86MB (13486453) total, 964.26KB (987404) headers (space savings 90.12%), 4.09MB (4288388) data
                     min         max         mean         sd        +/- sd
time for request:      320us     21.01ms      6.19ms      1.20ms    71.44%
time for connect:     4.10ms      6.12ms      5.02ms       620us    62.50%
time to 1st byte:     9.88ms     12.34ms     10.90ms       801us    56.25%
req/s           :    2560.95     2600.21     2577.15       11.20    68.75%
";

    #[test]
    fn reads_h2load() {
        let r = parse_h2load(H2LOAD).unwrap();
        assert_eq!(r.rps, 41234.5);
        assert_eq!(r.seconds, 8.0);
        assert_eq!(r.requests, 329_866);
        assert_eq!(r.errors, 10);
        assert_eq!(r.mean_us, Some(6190.0));
        assert_eq!(r.negotiated, "TLSv1.3 TLS_AES_256_GCM_SHA384, h2");
        assert!(parse_h2load(&H2LOAD.replace("protocol: h2", "protocol: http/1.1")).is_err());
        assert!(parse_h2load("nothing").is_err());
    }

    #[test]
    fn a_response_is_complete_by_its_length() {
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\n"));
        assert!(complete(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"));
    }

    #[test]
    fn the_client_report_round_trips() {
        let r = LoadReport {
            requests: 10,
            seconds: 1.0,
            rps: 10.0,
            p50_us: Some(100.0),
            p99_us: Some(900.0),
            mean_us: Some(150.0),
            errors: 1,
            negotiated: "TLSv1.3 TLS_AES_256_GCM_SHA384".into(),
            resumed: 0,
        };
        assert_eq!(from_line(&to_line(&r)).unwrap(), r);
        let args = H2loadRun {
            url: "https://127.0.0.1:1/",
            clients: 16,
            streams: 16,
            duration: Duration::from_secs(8),
        }
        .args();
        assert_eq!(args, ["-t1", "-c16", "-m16", "-D8", "https://127.0.0.1:1/"]);
    }
}
