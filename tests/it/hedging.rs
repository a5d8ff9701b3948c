//! Hedged requests: a hanging origin is hidden well inside the response timeout, POSTs are
//! never hedged, hedges stay within their budget, and the losing attempt is cancelled.

use http::Method;
use portico_origin::{Fault, OriginHandle};
use portico_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Probes slow enough that live traffic, not probes, meets every fault in these tests.
const SLOW_PROBES: &str = r#""health_probe": {"interval_ms": 60000, "timeout_ms": 1000}"#;

/// `portico_hedges_total{pool="p",result}` now.
async fn hedges(node: &TestNode, result: &str) -> f64 {
    node.metrics()
        .await
        .sum("portico_hedges_total", &[("pool", "p"), ("result", result)])
}

/// Waits until `portico_hedges_total{result}` satisfies `ok` (requests are counted once
/// their response has gone out, so a scrape right after a response may be a moment early).
async fn wait_hedges(node: &TestNode, result: &str, ok: impl Fn(f64) -> bool) {
    eventually(
        &format!("portico_hedges_total{{result={result:?}}} as expected"),
        Duration::from_secs(10),
        || async { ok(hedges(node, result).await) },
    )
    .await;
}

/// Sends `n` GETs one after the other, checks each was a 200 from `origin`, and returns the
/// slowest answer's time.
async fn sequential_gets_served_by(node: &TestNode, n: usize, origin: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let sent = Instant::now();
        let r = node.http.get(&format!("{}/", node.url)).await;
        slowest = slowest.max(sent.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.served_by(), origin);
    }
    slowest
}

/// Client requests the origin answered (probes left out).
fn requests(o: &OriginHandle) -> usize {
    o.log().iter().filter(|r| !r.probe).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_origin_is_hidden_by_hedges_well_inside_the_response_timeout() {
    const RESPONSE_MS: u64 = 5000;
    let (node, a, b) = origin_pair(&format!(
        r#"{SLOW_PROBES}, "timeouts": {{"response_ms": {RESPONSE_MS}}}"#
    ))
    .await;
    // Warm the pool's latency window so the delay is adaptive, not the cold fallback.
    for _ in 0..60 {
        assert_eq!(node.http.get(&format!("{}/", node.url)).await.status, 200);
    }
    a.set_fault(Fault::Hang);
    let slowest = sequential_gets_served_by(&node, 40, "b").await;
    // Relative to the response timeout, not a wall-clock bound: without hedging, every
    // request that met the hang would have waited all of it.
    assert!(
        slowest < Duration::from_millis(RESPONSE_MS / 2),
        "slowest answer took {slowest:?}"
    );
    wait_hedges(&node, "won", |n| n >= 1.0).await;
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_retries_total", &[("reason", "response_timeout")]),
        0.0
    );
    // A lost race is not a failure: the hanging origin is not ejected by it.
    assert_eq!(node.origin_status("p", "a").await["ejected"], false);
    assert!(requests(&b) >= 40);
    a.set_fault(Fault::None);
}

/// Hedging at any rate: in a quiet pool (no warm-up, one request at a time) the hedge
/// budget's floor pays for the hedges until the hanging origin leaves the band, so no request
/// waits for the response timeout. (Without the floor, 10 % of a handful of requests is no
/// hedge at all, and a request that met the hang waited all of `response_ms`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_in_a_quiet_pool_costs_a_hedge_delay_not_a_timeout() {
    const RESPONSE_MS: u64 = 3000;
    let (node, a, b) = origin_pair(&format!(
        r#"{SLOW_PROBES}, "timeouts": {{"response_ms": {RESPONSE_MS}}}"#
    ))
    .await;
    a.set_fault(Fault::Hang);
    let slowest = sequential_gets_served_by(&node, 40, "b").await;
    assert!(
        slowest < Duration::from_millis(RESPONSE_MS / 2),
        "slowest answer took {slowest:?}"
    );
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_retries_total", &[("reason", "response_timeout")]),
        0.0,
        "no request waited for the response timeout"
    );
    wait_hedges(&node, "won", |n| n >= 1.0).await;
    assert_eq!(hedges(&node, "denied").await, 0.0);
    assert!(requests(&b) >= 40);
    a.set_fault(Fault::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_hedged() {
    let (node, a, b) = origin_pair(&format!(
        r#"{SLOW_PROBES}, "failover": {{"hedging": {{"delay_ms": 5, "max_percent": 100}}}}"#
    ))
    .await;
    a.set_fault(Fault::Slow {
        delay: Duration::from_millis(100),
        percent: 100,
    });
    b.set_fault(Fault::Slow {
        delay: Duration::from_millis(100),
        percent: 100,
    });
    for i in 0..10 {
        let r = node
            .http
            .request(
                Method::POST,
                &format!("{}/post-{i}", node.url),
                &[],
                bytes::Bytes::from_static(b"body"),
            )
            .await
            .expect("POST answered");
        assert_eq!(r.status, 200);
    }
    let posts = |o: &OriginHandle| o.log().iter().filter(|r| r.method == "POST").count();
    assert_eq!(
        posts(&a) + posts(&b),
        10,
        "every POST reached exactly one origin"
    );
    let m = node.metrics().await;
    for result in ["won", "lost", "denied"] {
        assert_eq!(
            m.sum("portico_hedges_total", &[("pool", "p"), ("result", result)]),
            0.0,
            "{result}"
        );
    }
    // A GET in the same pool is hedged (the test could not pass by hedging nothing): both
    // origins see it.
    let r = node.http.get(&format!("{}/get", node.url)).await;
    assert_eq!(r.status, 200);
    let gets = |o: &OriginHandle| o.log().iter().filter(|r| r.path == "/get").count();
    assert_eq!((gets(&a), gets(&b)), (1, 1));
    eventually("the hedge counted", Duration::from_secs(10), || async {
        hedges(&node, "won").await + hedges(&node, "lost").await == 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hedges_stay_within_their_budget_when_the_whole_pool_slows_down() {
    let (node, a, b) = origin_pair(&format!(
        r#"{SLOW_PROBES}, "failover": {{"hedging": {{"delay_ms": 5, "max_percent": 10}}}}"#
    ))
    .await;
    for o in [&a, &b] {
        o.set_fault(Fault::Slow {
            delay: Duration::from_millis(50),
            percent: 100,
        });
    }
    let before = requests(&a) + requests(&b);
    const N: usize = 100;
    let mut tasks = Vec::new();
    for w in 0..10 {
        let url = format!("{}/w{w}", node.url);
        tasks.push(tokio::spawn(async move {
            let http = Http::new();
            for _ in 0..N / 10 {
                assert_eq!(http.get(&url).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // Every request was slow enough to be due a hedge; 10 % of them may have one, plus the
    // budget's floor (one a second over the 10 s budget window).
    // The denials are what held them back (not a lack of slow requests).
    let floor = portico_core::hedge::MIN_HEDGES_PER_SECOND as usize * 10;
    wait_hedges(&node, "denied", |n| n >= (N / 2) as f64).await;
    let sent = hedges(&node, "won").await + hedges(&node, "lost").await;
    assert!(
        sent <= (N / 10 + floor) as f64,
        "{sent} hedges for {N} requests"
    );
    let origin_requests = requests(&a) + requests(&b) - before;
    assert!(
        origin_requests <= N + N / 10 + floor,
        "{origin_requests} origin requests for {N} client requests"
    );
}

/// An origin that answers probes but never answers a client request, and counts the client
/// requests whose connection Portico closed while it waited.
async fn black_hole() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, c) = (seen.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if text.contains("x-portico-health-probe") {
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                s.fetch_add(1, Ordering::SeqCst);
                // Never answer; notice when the proxy gives up on this request.
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            c.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, seen, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_losing_attempt_is_cancelled_at_its_origin() {
    let (hole, seen, closed) = black_hole().await;
    let b = origin("b").await;
    // The black hole is the only first choice (priority 1); b is the hedge target.
    let config = one_pool(
        &[
            origin_json("a", hole, ""),
            origin_json("b", b.addr(), r#", "priority": 2"#),
        ],
        r#""health_probe": {"interval_ms": 60000, "timeout_ms": 1000},
           "timeouts": {"response_ms": 60000},
           "failover": {"hedging": {"delay_ms": 20, "max_percent": 100}}"#,
    );
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a", "b"]).await;
    for _ in 0..3 {
        let r = node.http.get(&format!("{}/", node.url)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.served_by(), "b");
    }
    // The black hole got the first attempts and saw each one's connection closed, long
    // before the 60 s response timeout could have closed it.
    eventually(
        "the losing attempts' connections closed",
        Duration::from_secs(10),
        || async {
            seen.load(Ordering::SeqCst) >= 1
                && closed.load(Ordering::SeqCst) == seen.load(Ordering::SeqCst)
        },
    )
    .await;
    wait_hedges(&node, "won", |n| n >= 1.0).await;
}

/// Reads one response head from `conn` (up to the blank line) and returns it.
async fn read_head(conn: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_request_through_the_hedging_path_has_no_body_and_keeps_the_connection() {
    let (node, _a, _b) = origin_pair(SLOW_PROBES).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-request-id"), "{head}");
    // The next response on the same connection starts right after the HEAD's head: no body
    // bytes were sent for it.
    conn.write_all(b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
