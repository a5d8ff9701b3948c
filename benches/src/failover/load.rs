//! Open-loop load at a fixed rate with a record per request, and a poller of origin counters.

use crate::procs::header_text;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One client request: when it was sent, how it ended, who served it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Send time, ms since the start of the run.
    pub at_ms: f64,
    /// Latency until the whole response was read (or the client gave up), ms.
    pub latency_ms: f64,
    /// HTTP status; 0 for a transport error or a client timeout.
    pub status: u16,
    /// `X-Served-By`, if any.
    pub served_by: Option<String>,
}

/// Requests each origin had received at one moment (from its control `/stats`).
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// ms since the start of the run.
    pub at_ms: f64,
    /// Non-probe requests received so far, per origin (same order as the pool).
    pub requests: Vec<u64>,
}

/// Sends `GET /` to `target` at `rate` per second for `duration`, whatever the answers take
/// (open loop: a slow answer does not delay the next request). Each request gives up after
/// `client_timeout`.
pub async fn open_loop(
    target: SocketAddr,
    rate: u32,
    duration: Duration,
    client_timeout: Duration,
    start: Instant,
) -> Vec<Request> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    let uri: http::Uri = format!("http://{target}/").parse().expect("uri");
    let out = Arc::new(Mutex::new(Vec::with_capacity(
        (rate as f64 * duration.as_secs_f64()) as usize + 16,
    )));
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, uri, out) = (client.clone(), uri.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = tokio::time::timeout(client_timeout, async {
                let resp = client.get(uri).await.map_err(|_| ())?;
                let status = resp.status().as_u16();
                let served_by = header_text(resp.headers(), "x-served-by");
                resp.into_body().collect().await.map_err(|_| ())?;
                Ok::<_, ()>((status, served_by))
            })
            .await;
            let (status, served_by) = match answer {
                Ok(Ok(a)) => a,
                _ => (0, None),
            };
            let r = Request {
                at_ms: ms(sent - start),
                latency_ms: ms(sent.elapsed()),
                status,
                served_by,
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

/// Reads every origin's request counter every `every` until `until`.
pub async fn poll_origins(
    controls: Vec<SocketAddr>,
    every: Duration,
    until: Instant,
    start: Instant,
) -> Vec<Tally> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut out = Vec::new();
    let mut next = Instant::now();
    while Instant::now() < until {
        if let Some(t) = read_tally(&client, &controls, start).await {
            out.push(t);
        }
        next += every;
        tokio::time::sleep_until(next.into()).await;
    }
    out
}

/// Every origin's request counter once, now (an error if one does not answer).
pub async fn tally(controls: &[SocketAddr], start: Instant) -> anyhow::Result<Tally> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    read_tally(&client, controls, start)
        .await
        .ok_or_else(|| anyhow::anyhow!("an origin of {controls:?} did not give its /stats"))
}

async fn read_tally(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    controls: &[SocketAddr],
    start: Instant,
) -> Option<Tally> {
    let at_ms = ms(start.elapsed());
    let mut requests = Vec::with_capacity(controls.len());
    for c in controls {
        requests.push(origin_requests(client, *c).await?);
    }
    Some(Tally { at_ms, requests })
}

async fn origin_requests(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    control: SocketAddr,
) -> Option<u64> {
    let uri: http::Uri = format!("http://{control}/stats").parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(1), client.get(uri))
        .await
        .ok()?
        .ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["requests"].as_u64()
}

/// Switches an origin's fault through its control listener.
pub async fn set_fault(control: SocketAddr, fault: &str) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::put(format!("http://{control}/fault"))
        .body(http_body_util::Full::new(Bytes::from(fault.to_string())))?;
    let resp = client.request(req).await?;
    anyhow::ensure!(
        resp.status() == 200,
        "fault {fault} refused by {control}: {}",
        resp.status()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
