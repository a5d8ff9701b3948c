//! The soak's open-loop client: GETs and POSTs at a fixed rate, each with an id in its path
//! (`/g/ID`, `/p/ID`) so the origins' logs can be matched to what the client saw.

use crate::procs::header_text;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200, `X-Served-By` set, the body is that origin's name (and for a POST the origin saw
    /// the whole body).
    Good,
    /// Any other status.
    Status(u16),
    /// A transport error (reset, closed before the answer) or a body that did not check out.
    Broken,
    /// No whole answer within the client timeout.
    Timeout,
}

/// One request the client sent.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Its id (also in its path).
    pub id: u64,
    /// POST (else GET).
    pub post: bool,
    /// When it was sent, ms since the epoch.
    pub at_epoch_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Requests per second.
    pub rate: u32,
    /// Share of POSTs, 0–1.
    pub post_share: f64,
    /// A request without a whole answer after this long is a timeout.
    pub client_timeout: Duration,
    /// Seed of the GET/POST mix and body sizes.
    pub seed: u64,
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        // Below any keep-alive timeout the node may have, so the client never reuses a
        // connection the node is closing (that race would lose requests on the client's side).
        .pool_idle_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Sends requests to `target` at `spec.rate` until `stop` is set (open loop: a slow answer
/// never delays the next request); returns every request once all have ended.
pub async fn run(target: SocketAddr, spec: LoadSpec, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let client = client();
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let period = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut id: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        tokio::time::sleep_until((start + period * (id as u32)).into()).await;
        let post = rng.f64() < spec.post_share;
        let body_len = if post { rng.usize(16..4096) } else { 0 };
        let (client, out) = (client.clone(), out.clone());
        let timeout = spec.client_timeout;
        tasks.spawn(async move {
            let at_epoch_ms = super::origin::epoch_ms();
            let outcome =
                match tokio::time::timeout(timeout, one(&client, target, id, post, body_len)).await
                {
                    Ok(o) => o,
                    Err(_) => Outcome::Timeout,
                };
            out.lock().unwrap_or_else(|e| e.into_inner()).push(Sent {
                id,
                post,
                at_epoch_ms,
                outcome,
            });
        });
        // Reap finished tasks as we go, so the set stays small over a long run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut v = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    v.sort_by_key(|s| s.id);
    v
}

async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: SocketAddr,
    id: u64,
    post: bool,
    body_len: usize,
) -> Outcome {
    let (method, path) = if post {
        (http::Method::POST, format!("/p/{id}"))
    } else {
        (http::Method::GET, format!("/g/{id}"))
    };
    let body = Bytes::from(vec![b'x'; body_len]);
    let Ok(req) = http::Request::builder()
        .method(method)
        .uri(format!("http://{target}{path}"))
        .header("host", "soak.test")
        .body(Full::new(body))
    else {
        return Outcome::Broken;
    };
    let Ok(resp) = client.request(req).await else {
        return Outcome::Broken;
    };
    let status = resp.status().as_u16();
    let served_by = header_text(resp.headers(), "x-served-by");
    let seen_len =
        header_text(resp.headers(), "x-body-length").and_then(|v| v.parse::<usize>().ok());
    let Ok(bytes) = resp.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Outcome::Broken;
    };
    if status != 200 {
        return Outcome::Status(status);
    }
    match served_by {
        Some(name) if bytes == format!("{name}\n").as_bytes() && seen_len == Some(body_len) => {
            Outcome::Good
        }
        _ => Outcome::Broken,
    }
}
