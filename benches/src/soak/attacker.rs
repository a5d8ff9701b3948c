//! The slow-client attacker beside the soak's load: connections that trickle a request head
//! one byte at a time, and idle keep-alive connections, each replaced when the node closes it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the attacker behaves.
#[derive(Debug, Clone, Copy)]
pub struct AttackSpec {
    /// Connections trickling a head.
    pub trickle: usize,
    /// Idle keep-alive connections (one request answered, then silence).
    pub idle: usize,
    /// Time between two bytes of a trickled head.
    pub byte_every: Duration,
}

/// What the node did to the attacker's connections.
#[derive(Debug, Clone, Default)]
pub struct AttackTally {
    /// Trickling connections opened.
    pub trickle_opened: u64,
    /// Lifetimes of the trickling connections the node closed, seconds.
    pub trickle_closed_s: Vec<f64>,
    /// Idle connections opened (and answered once).
    pub idle_opened: u64,
    /// Time from the answer to the node closing, seconds, of the idle connections it closed.
    pub idle_closed_s: Vec<f64>,
    /// Connections that could not be opened (refused or no answer to the first request).
    pub failed_opens: u64,
}

/// Runs the attacker against `target` until `stop`; connections still open at the end are left
/// out of the closed lists.
pub async fn run(target: SocketAddr, spec: AttackSpec, stop: Arc<AtomicBool>) -> AttackTally {
    let tally = Arc::new(Mutex::new(AttackTally::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..spec.trickle {
        let (t, s) = (tally.clone(), stop.clone());
        tasks.spawn(async move {
            // Spread the first bytes over one period.
            tokio::time::sleep(
                spec.byte_every
                    .mul_f64(i as f64 / spec.trickle.max(1) as f64),
            )
            .await;
            while !s.load(Ordering::Relaxed) {
                trickle_once(target, spec.byte_every, &t, &s).await;
            }
        });
    }
    for _ in 0..spec.idle {
        let (t, s) = (tally.clone(), stop.clone());
        tasks.spawn(async move {
            while !s.load(Ordering::Relaxed) {
                idle_once(target, &t, &s).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    lock(&tally).clone()
}

fn lock(t: &Mutex<AttackTally>) -> std::sync::MutexGuard<'_, AttackTally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for the node to close `s` (EOF, reset, or any answer followed by a close), checking
/// `stop` every 200 ms; `true` when the node closed it.
async fn closed_by_node(s: &mut TcpStream, stop: &AtomicBool) -> bool {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

async fn trickle_once(
    target: SocketAddr,
    every: Duration,
    tally: &Mutex<AttackTally>,
    stop: &AtomicBool,
) {
    let Ok(mut s) = TcpStream::connect(target).await else {
        lock(tally).failed_opens += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    };
    lock(tally).trickle_opened += 1;
    let opened = Instant::now();
    if s.write_all(b"GET /slow HTTP/1.1\r\nHost: soak.test\r\nX-Slow: ")
        .await
        .is_err()
    {
        lock(tally)
            .trickle_closed_s
            .push(opened.elapsed().as_secs_f64());
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        // Sleep one period while watching for a close.
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.min(Duration::from_millis(200)), s.read(&mut buf)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    lock(tally)
                        .trickle_closed_s
                        .push(opened.elapsed().as_secs_f64());
                    return;
                }
                Ok(Ok(_)) | Err(_) => {}
            }
        }
        if s.write_all(b"a").await.is_err() {
            lock(tally)
                .trickle_closed_s
                .push(opened.elapsed().as_secs_f64());
            return;
        }
    }
}

async fn idle_once(target: SocketAddr, tally: &Mutex<AttackTally>, stop: &AtomicBool) {
    let Ok(mut s) = TcpStream::connect(target).await else {
        lock(tally).failed_opens += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    };
    let req = b"GET /idle HTTP/1.1\r\nHost: soak.test\r\n\r\n";
    let answered = async {
        s.write_all(req).await.ok()?;
        // Read until the end of the response head and its body (Content-Length).
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return Some(());
                }
            }
        }
    };
    let ok = tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .ok()
        .flatten()
        .is_some();
    if !ok {
        lock(tally).failed_opens += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    }
    lock(tally).idle_opened += 1;
    let since = Instant::now();
    if closed_by_node(&mut s, stop).await {
        lock(tally)
            .idle_closed_s
            .push(since.elapsed().as_secs_f64());
    }
}
