//! The open-loop client: `GET /` at a fixed rate on a fixed schedule (a slow answer never
//! delays the next request), spread round-robin over the nodes, alternating between a shared
//! keep-alive connection pool and a new connection per request (`Connection: close`).

use super::ms;
use crate::failover::analyze::percentile;
use crate::procs::header_text;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One client request.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// Send time, ms since the case's epoch.
    pub at_ms: f64,
    /// Which node (index into the targets).
    pub target: usize,
    /// True: on a new connection closed after the answer; false: on a kept-alive one.
    pub fresh: bool,
    /// Until the whole body was read (or the client gave up), ms.
    pub latency_ms: f64,
    /// HTTP status; 0 when there was none (transport error or timeout).
    pub status: u16,
    /// `x-served-by`.
    pub served_by: Option<String>,
    /// What failed, for a request without a complete answer.
    pub error: Option<String>,
}

/// What the load saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    /// Requests sent.
    pub requests: usize,
    /// Of which on new connections.
    pub fresh_connections: usize,
    /// Answered 200 with a complete body.
    pub ok: usize,
    /// Everything else: non-200 answers plus transport errors and timeouts.
    pub errors: usize,
    /// Non-200 answers by status.
    pub non_200: BTreeMap<u16, usize>,
    /// Requests without an answer, by error.
    pub transport_errors: BTreeMap<String, usize>,
    /// Latency of the 200s, ms.
    pub p50_ms: f64,
    /// Latency of the 200s, ms.
    pub p99_ms: f64,
    /// Latency of the 200s, ms.
    pub max_ms: f64,
}

/// Summarizes the requests.
pub fn summarize(requests: &[Sent]) -> LoadSummary {
    let mut s = LoadSummary {
        requests: requests.len(),
        fresh_connections: requests.iter().filter(|r| r.fresh).count(),
        ..LoadSummary::default()
    };
    let mut latencies = Vec::new();
    for r in requests {
        match (r.status, &r.error) {
            (200, None) => {
                s.ok += 1;
                latencies.push(r.latency_ms);
            }
            (0, e) => {
                let key = e.clone().unwrap_or_else(|| "unknown".into());
                *s.transport_errors.entry(key).or_default() += 1;
            }
            (code, _) => *s.non_200.entry(code).or_default() += 1,
        }
    }
    s.errors = s.requests - s.ok;
    latencies.sort_by(f64::total_cmp);
    s.p50_ms = percentile(&latencies, 0.5);
    s.p99_ms = percentile(&latencies, 0.99);
    s.max_ms = latencies.last().copied().unwrap_or(0.0);
    s
}

fn client(keep_alive: bool) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(if keep_alive { 256 } else { 0 })
        .build(connector)
}

/// The error and its sources, one line.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = if e.is_connect() {
        "connect".to_string()
    } else {
        "request".to_string()
    };
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Sends `rate` requests per second for `duration` from `start`: request `i` goes to
/// `targets[i % n]`, on a new connection when `(i / n)` is odd; each gives up after
/// `timeout`. Times are relative to `epoch`.
pub async fn open_loop(
    targets: Vec<SocketAddr>,
    rate: u32,
    duration: Duration,
    timeout: Duration,
    start: Instant,
    epoch: Instant,
) -> Vec<Sent> {
    open_loop_until(
        targets,
        rate,
        duration,
        timeout,
        start,
        epoch,
        &AtomicBool::new(false),
    )
    .await
}

/// [`open_loop`] that also stops sending once `stop` is set (the requests already sent are
/// still awaited and returned).
pub async fn open_loop_until(
    targets: Vec<SocketAddr>,
    rate: u32,
    duration: Duration,
    timeout: Duration,
    start: Instant,
    epoch: Instant,
    stop: &AtomicBool,
) -> Vec<Sent> {
    let (kept, fresh) = (client(true), client(false));
    let uris: Vec<http::Uri> = targets
        .iter()
        .filter_map(|t| format!("http://{t}/").parse().ok())
        .collect();
    let n = uris.len().max(1);
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let out = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let target = i as usize % n;
        let is_fresh = (i as usize / n) % 2 == 1;
        let client = if is_fresh {
            fresh.clone()
        } else {
            kept.clone()
        };
        let Some(uri) = uris.get(target).cloned() else {
            break;
        };
        let out = out.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let mut req = http::Request::get(uri);
            if is_fresh {
                req = req.header(http::header::CONNECTION, "close");
            }
            let answer = match req.body(Empty::<Bytes>::new()) {
                Ok(req) => tokio::time::timeout(timeout, async {
                    let resp = client.request(req).await.map_err(|e| describe(&e))?;
                    let status = resp.status().as_u16();
                    let served_by = header_text(resp.headers(), "x-served-by");
                    resp.into_body()
                        .collect()
                        .await
                        .map_err(|e| format!("body: {e}"))?;
                    Ok::<_, String>((status, served_by))
                })
                .await
                .unwrap_or_else(|_| Err(format!("timeout ({} ms)", timeout.as_millis()))),
                Err(e) => Err(format!("request: {e}")),
            };
            let (status, served_by, error) = match answer {
                Ok((status, served_by)) => (status, served_by, None),
                Err(e) => (0, None, Some(e)),
            };
            let r = Sent {
                at_ms: ms(sent.saturating_duration_since(epoch)),
                target,
                fresh: is_fresh,
                latency_ms: ms(sent.elapsed()),
                status,
                served_by,
                error,
            };
            out.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut v = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(status: u16, error: Option<&str>, latency_ms: f64) -> Sent {
        Sent {
            at_ms: 0.0,
            target: 0,
            fresh: false,
            latency_ms,
            status,
            served_by: None,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn non_200s_and_transport_errors_are_both_errors() {
        let s = summarize(&[
            sent(200, None, 1.0),
            sent(200, None, 3.0),
            sent(502, None, 1.0),
            sent(0, Some("connect: refused"), 0.0),
        ]);
        assert_eq!((s.requests, s.ok, s.errors), (4, 2, 2));
        assert_eq!(s.non_200.get(&502), Some(&1));
        assert_eq!(s.transport_errors.get("connect: refused"), Some(&1));
        assert_eq!(s.max_ms, 3.0);
    }
}
