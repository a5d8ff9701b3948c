//! Looking at a running proxy from outside: Portico's log ("config … applied" lines) and
//! `/metrics` (origins healthy), one-shot and keep-alive HTTP requests, HAProxy's check
//! results from its stats socket, and CPU and memory from `/proc`.

use crate::throughput::procinfo;
use anyhow::{Context, Result, bail};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Reads a growing log file from where it last stopped.
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Versions seen applied (`config V applied`), in order.
    pub applied: Vec<String>,
}

impl LogTail {
    /// Starts at the beginning of `path`.
    pub fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
            applied: Vec::new(),
        }
    }

    /// Reads what was appended since the last call and counts its lines.
    pub fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let Some(end) = self.partial.rfind('\n') else {
            return;
        };
        let complete: String = self.partial.drain(..=end).collect();
        for line in complete.lines() {
            self.line(line);
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(rest) = line.split_once("config ").map(|(_, r)| r)
            && let Some((version, _)) = rest.split_once(" applied")
            && !version.contains(' ')
        {
            self.applied.push(version.to_string());
        }
    }

    /// Polls every millisecond until `version` has been applied; how long it took from `t0`.
    pub fn wait_applied(
        &mut self,
        version: &str,
        t0: Instant,
        timeout: Duration,
    ) -> Option<Duration> {
        loop {
            self.poll();
            if self.applied.iter().any(|v| v == version) {
                return Some(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// CPU seconds (user + system) of `pid` and its children.
pub fn cpu_s(pid: u32) -> f64 {
    procinfo::cpu_time(pid).as_secs_f64()
}

/// Resident memory of `pid` and its children, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    procinfo::rss_kib(pid) as f64 / 1024.0
}

/// Seconds every thread of `pid` and its children ran or waited to run (`schedstat`: time
/// on a CPU plus time on a run queue): what they wanted of the CPUs, whatever the machine's
/// other load gave them.
pub fn demand_s(pid: u32) -> f64 {
    let mut ns: u64 = 0;
    for p in procinfo::tree(pid) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in dir.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                ns += parse_schedstat(&text);
            }
        }
    }
    ns as f64 / 1e9
}

/// Run plus run-queue time, ns, of a `schedstat` line.
pub fn parse_schedstat(text: &str) -> u64 {
    text.split_whitespace()
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// A one-shot `GET path` with `Host: host` over a new connection: status and body.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_string()))
}

/// Polls `GET /` on `addr` every 5 ms until it answers 200; the time since `t0`.
pub fn wait_serving(
    addr: SocketAddr,
    host: &str,
    t0: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if let Ok((200, _)) = get(addr, host, "/") {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `GET path` every 2 ms until the body holds `want`; the time since `t0`.
pub fn wait_body(
    addr: SocketAddr,
    path: &str,
    want: &str,
    t0: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if let Ok((200, body)) = get(addr, "bench", path)
            && body.trim() == want
        {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `n` sequential `GET /` over one keep-alive connection: each latency, ms (a failed
/// request reconnects and is not counted).
pub fn sequential_gets(addr: SocketAddr, host: &str, n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    let mut conn: Option<TcpStream> = None;
    let mut failures = 0;
    while out.len() < n {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.set_nodelay(true)?;
                conn.insert(s)
            }
        };
        let t = Instant::now();
        match one_keepalive(s, host) {
            Ok(200) => out.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => {
                conn = None;
                failures += 1;
                if failures > n / 10 + 3 {
                    bail!("{failures} failed requests to {addr}");
                }
            }
        }
    }
    Ok(out)
}

/// One request on a keep-alive connection; reads the head and a `Content-Length` or chunked
/// body.
fn one_keepalive(s: &mut TcpStream, host: &str) -> Result<u16> {
    write!(s, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &buf[head_end..];
        let done = match (length, chunked) {
            (Some(n), _) => body.len() >= n,
            (None, true) => body.ends_with(b"0\r\n\r\n"),
            (None, false) => true,
        };
        if done {
            return Ok(status);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Origins Portico's `/metrics` at `admin` reports healthy (`portico_origin_healthy` 1).
pub fn portico_healthy(admin: SocketAddr) -> Option<usize> {
    let (status, body) = get(admin, "admin", "/metrics").ok()?;
    (status == 200).then(|| count_healthy(&body))
}

/// The `portico_origin_healthy{…} 1` samples of Prometheus text.
pub fn count_healthy(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("portico_origin_healthy{") && l.ends_with("} 1"))
        .count()
}

/// Servers whose last check passed, and all servers, from HAProxy's `show stat`.
pub fn haproxy_checked(socket: &Path) -> Option<(usize, usize)> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    parse_show_stat(&text)
}

/// Counts servers with `check_status` L7OK/L6OK/L4OK among all servers of a `show stat` CSV.
pub fn parse_show_stat(text: &str) -> Option<(usize, usize)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let sv = header.iter().position(|h| *h == "svname")?;
    let status = header.iter().position(|h| *h == "check_status")?;
    let (mut ok, mut all) = (0, 0);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let Some(name) = f.get(sv) else { continue };
        if name.is_empty() || *name == "FRONTEND" || *name == "BACKEND" {
            continue;
        }
        all += 1;
        if f.get(status).is_some_and(|s| s.ends_with("OK")) {
            ok += 1;
        }
    }
    Some((ok, all))
}

/// Percentile by nearest rank of unsorted values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    crate::failover::analyze::percentile(&v, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_applied_lines_and_healthy_origins() {
        let dir = std::env::temp_dir().join(format!("scale-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.log");
        std::fs::write(
            &path,
            "[2026 INFO portico::live_pool] pool p0: origin o1 is healthy (0 of the last 1 probes failed)\n\
             [2026 INFO portico::reload] config 0123abcd applied (reload from file): 1 pool\n[part",
        )
        .unwrap();
        let mut t = LogTail::new(&path);
        t.poll();
        assert_eq!(t.applied, vec!["0123abcd".to_string()]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "ial] config 4567ef applied (reload from store): 1 pool").unwrap();
        t.poll();
        assert_eq!(t.applied.len(), 2);
        let m = "# TYPE portico_origin_healthy gauge\nportico_origin_healthy{origin=\"o0\",pool=\"p0\"} 1\nportico_origin_healthy{origin=\"o1\",pool=\"p0\"} 0\nportico_origin_healthy{origin=\"o2\",pool=\"p0\"} 1\n";
        assert_eq!(count_healthy(m), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn schedstat_is_run_plus_wait() {
        assert_eq!(parse_schedstat("181749152 473382669 565\n"), 655_131_821);
        assert_eq!(parse_schedstat(""), 0);
        assert!(demand_s(std::process::id()) > 0.0);
    }

    #[test]
    fn reads_haproxy_check_status() {
        let csv = "# pxname,svname,qcur,check_status,weight\nfe,FRONTEND,0,,\np0,o0,0,L7OK,50\np0,o1,0,INI,50\np0,o2,0,L4CON,50\np0,BACKEND,0,,\n";
        assert_eq!(parse_show_stat(csv), Some((1, 3)));
        assert_eq!(parse_show_stat(""), None);
    }
}
