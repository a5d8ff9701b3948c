//! The attacks, over raw loopback sockets: each returns what the proxy did, as one table cell.

use super::peers::Target;
use crate::throughput::procinfo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The host every attack names.
const HOST: &str = "hostile.test";

/// Requests the origins have received so far (not counting probes), from their `/stats`.
pub async fn origin_requests(inst: &Target) -> u64 {
    let mut total = 0;
    for c in &inst.controls {
        if let Ok((200, body)) = crate::soak::http_call(*c, "GET", "/stats", &[], "").await {
            let json = body.trim().trim_start_matches(|ch: char| ch != '{');
            total += serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v["requests"].as_u64())
                .unwrap_or(0);
        }
    }
    total
}

/// The status code of the first answer on `s` within `timeout` (`None`: closed or reset
/// without one, or nothing in time), and whether the peer closed the connection.
async fn first_status(s: &mut TcpStream, timeout: Duration) -> (Option<u16>, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
        }
    }
    (status_of(&got), got)
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// Waits until the peer closes `s` or `cap` passes; the time it took and the first status
/// code it sent, if any.
async fn until_closed(s: &mut TcpStream, cap: Duration) -> (Option<Duration>, Option<u16>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = cap.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (None, status_of(&got));
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(start.elapsed()), status_of(&got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (None, status_of(&got)),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn code(c: Option<u16>) -> String {
    c.map_or("no answer".into(), |c| c.to_string())
}

/// Slowloris: a request line and one header byte every `every`; when the proxy closes.
pub async fn slowloris(addr: SocketAddr, every: Duration, cap: Duration) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let start = Instant::now();
    if s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ").as_bytes())
        .await
        .is_err()
    {
        return "closed at once".into();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < cap {
        let until = Instant::now() + every;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    let answer =
                        status_of(&got).map_or(String::new(), |c| format!(", answered {c}"));
                    return format!("closed after {}{answer}", secs(start.elapsed()));
                }
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        if s.write_all(b"a").await.is_err() {
            return format!("closed after {}", secs(start.elapsed()));
        }
    }
    format!("still open after {}", secs(cap))
}

/// An answered request, then silence: when the proxy closes the idle connection.
pub async fn idle_keepalive(addr: SocketAddr, cap: Duration) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let req = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return "closed at once".into();
    }
    let (status, _) = first_status(&mut s, Duration::from_secs(10)).await;
    if status != Some(200) {
        return format!("first request answered {}", code(status));
    }
    // The rest of the answer is read by until_closed, which only looks for the close.
    match until_closed(&mut s, cap).await {
        (Some(d), _) => format!("closed after {}", secs(d)),
        (None, _) => format!("still open after {}", secs(cap)),
    }
}

/// `n` connections each sending an unterminated head of `size` bytes; the proxy's RSS before
/// and while they are held, and how many it had closed.
pub async fn big_heads(inst: &Target, n: usize, size: usize) -> String {
    let pid = inst.pid;
    let before = procinfo::rss_kib(pid);
    let head = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: ");
    let filler = vec![b'a'; 64 * 1024];
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (addr, head, filler) = (inst.addr, head.clone(), filler.clone());
        tasks.spawn(async move {
            let mut s = TcpStream::connect(addr).await.ok()?;
            let send = async {
                s.write_all(head.as_bytes()).await?;
                let mut sent = 0;
                while sent < size {
                    let k = filler.len().min(size - sent);
                    s.write_all(&filler[..k]).await?;
                    sent += k;
                }
                Ok::<_, std::io::Error>(())
            };
            // A proxy that stops reading leaves the rest in the socket buffers.
            let _ = tokio::time::timeout(Duration::from_secs(20), send).await;
            Some(s)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(s)) = r {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = procinfo::rss_kib(pid);
    // Which connections the proxy has answered or closed by now.
    let mut open = 0;
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for s in &mut held {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        let closed = loop {
            match tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
                Err(_) => break false,
            }
        };
        if let Some(c) = status_of(&got) {
            *answers.entry(c.to_string()).or_default() += 1;
        }
        if !closed {
            open += 1;
        }
    }
    drop(held);
    let answered: Vec<String> = answers.iter().map(|(c, k)| format!("{k}× {c}")).collect();
    format!(
        "{:.0} → {:.0} MiB ({open} of {n} still open{})",
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        if answered.is_empty() {
            String::new()
        } else {
            format!("; answered {}", answered.join(", "))
        }
    )
}

/// Sends `bytes` (writing and reading at once: a proxy may answer and close before reading
/// it all); the first status code, and whether an origin received a request meanwhile.
pub async fn one_shot(inst: &Target, bytes: Vec<u8>) -> (Option<u16>, bool, Vec<u8>) {
    let before = origin_requests(inst).await;
    let Ok(s) = TcpStream::connect(inst.addr).await else {
        return (None, false, Vec::new());
    };
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&bytes).await;
        // Keep the write half open until the read is done.
        tokio::time::sleep(Duration::from_secs(12)).await;
        drop(w);
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    writer.abort();
    // Give a forwarded request time to reach the origin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = origin_requests(inst).await > before;
    (status_of(&got), forwarded, got)
}

/// One header of `size` bytes.
pub async fn huge_header(inst: &Target, size: usize) -> String {
    let mut req = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: ").into_bytes();
    req.extend(std::iter::repeat_n(b'a', size));
    req.extend_from_slice(b"\r\n\r\n");
    let (c, fwd, _) = one_shot(inst, req).await;
    format!("{}{}", code(c), if fwd { ", forwarded" } else { "" })
}

/// A request line of `size` bytes.
pub async fn long_request_line(inst: &Target, size: usize) -> String {
    let path: String = std::iter::once('/')
        .chain(std::iter::repeat_n('a', size.saturating_sub(16)))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let (c, fwd, _) = one_shot(inst, req.into_bytes()).await;
    format!("{}{}", code(c), if fwd { ", forwarded" } else { "" })
}

/// `Content-Length` and `Transfer-Encoding: chunked` on one request.
pub async fn cl_te(inst: &Target) -> String {
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"
    );
    let (c, fwd, _) = one_shot(inst, req.into_bytes()).await;
    format!(
        "{}, {}",
        code(c),
        if fwd { "forwarded" } else { "not forwarded" }
    )
}

/// Two GETs in one write (the second asks to close): how many answers come back.
pub async fn pipelined(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let req = format!(
        "GET /1 HTTP/1.1\r\nHost: {HOST}\r\n\r\nGET /2 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return "closed at once".into();
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    // Bodies are origin names ending in a newline, so every status line starts a line.
    let answers: Vec<u16> = text
        .split('\n')
        .filter_map(|l| l.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok())
        .collect();
    match answers.len() {
        2 => "both answered".into(),
        n => format!(
            "{n} of 2 answered{}",
            answers.first().map_or(String::new(), |c| format!(" ({c})"))
        ),
    }
}

/// `idle` connections that send nothing, then a normal request on a new one: how long until it
/// is answered (retrying every 250 ms when refused or closed, up to `cap`).
pub async fn many_idle_then_request(addr: SocketAddr, idle: usize, cap: Duration) -> String {
    let mut held = Vec::new();
    for _ in 0..idle {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            held.push(s);
        }
    }
    let opened = held.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut tries = 0;
    let result = loop {
        tries += 1;
        let attempt = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(
                format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .ok()?;
            first_status(&mut s, cap).await.0
        };
        let left = cap.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, attempt).await {
            Ok(Some(200)) => break format!("answered after {}", secs(start.elapsed())),
            Ok(Some(c)) => break format!("answered {c} after {}", secs(start.elapsed())),
            Ok(None) if start.elapsed() < cap => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => break format!("not answered within {}", secs(cap)),
        }
    };
    drop(held);
    format!("{result} ({opened} idle connected, {tries} tries)")
}

/// `n` POSTs announcing a 100-byte body that send 10 bytes and stall: their answers (code and
/// time), then whether an origin was taken out — Portico's `/status`, and for every proxy
/// whether both origins still get requests.
pub async fn stalled_posts(inst: &Target, n: usize, cap: Duration) -> String {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let addr = inst.addr;
        tasks.spawn(async move {
            let mut s = TcpStream::connect(addr).await.ok()?;
            let req = format!(
                "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n0123456789"
            );
            s.write_all(req.as_bytes()).await.ok()?;
            let start = Instant::now();
            let (c, _) = first_status(&mut s, cap).await;
            Some((c, start.elapsed()))
        });
    }
    let mut answers: Vec<(Option<u16>, Duration)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(a)) = r {
            answers.push(a);
        }
    }
    let mut codes: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    for (c, d) in &answers {
        let word = match c {
            Some(c) => c.to_string(),
            None if *d < cap => "closed without an answer".to_string(),
            None => format!("no answer within {}", secs(cap)),
        };
        let e = codes.entry(word).or_default();
        e.0 += 1;
        e.1 = e.1.max(d.as_secs_f64());
    }
    let answers_text: Vec<String> = codes
        .iter()
        .map(|(c, (k, t))| format!("{k}× {c} (by {t:.1} s)"))
        .collect();
    // Who serves now.
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..40 {
        let req = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
        if let Ok(mut s) = TcpStream::connect(inst.addr).await {
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut got = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
                let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                if let Some(by) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-served-by:"))
                    .map(|v| v.trim().to_string())
                {
                    *served.entry(by).or_default() += 1;
                }
            }
        }
    }
    let ejected_status = match inst.admin {
        Some(a) => match crate::soak::http_call(a, "GET", "/status", &[], "").await {
            Ok((200, body)) => {
                Some(body.contains("\"ejected\":true") || body.contains("\"ejected\": true"))
            }
            _ => None,
        },
        None => None,
    };
    let both = served.len() >= 2;
    let eject = match (ejected_status, both) {
        (Some(true), _) => "origin ejected".to_string(),
        (_, false) => format!(
            "origin taken out (next 40 GETs: {})",
            served
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "no origin ejected".to_string(),
    };
    format!("{}; {eject}", answers_text.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            status_of(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            Some(431)
        );
        assert_eq!(status_of(b"HTTP/1.0 400 Bad\r\n"), Some(400));
        assert_eq!(status_of(b""), None);
        assert_eq!(status_of(b"garbage"), None);
    }
}
