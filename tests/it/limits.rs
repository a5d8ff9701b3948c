//! Client limits (`node.limits`, SPEC part 2 "Hostile input"), from raw sockets: the request
//! head's total deadline, idle keep-alive connections, the connection cap, 431/414/413, and a
//! stalled request body answered 408 without blaming the origin.

use portico_origin::OriginHandle;
use portico_tests::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on waits that must end: a failure bound, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(15);

/// A node with `node.limits` = `{limits}` and one origin, with `pool_extra` fields.
async fn node_with(limits: &str, pool_extra: &str) -> (TestNode, OriginHandle) {
    let o = origin("o").await;
    let doc = one_pool(&[origin_json("o", o.addr(), "")], pool_extra);
    let doc = doc.replacen(
        '{',
        &format!(r#"{{"node": {{"limits": {{{limits}}}}}, "#),
        1,
    );
    (TestNode::start(&doc).await, o)
}

fn addr(node: &TestNode) -> String {
    node.url.trim_start_matches("http://").to_string()
}

async fn connect(node: &TestNode) -> TcpStream {
    TcpStream::connect(addr(node)).await.expect("connect")
}

/// Reads until the server closes the connection (end of stream or reset); `None` when it is
/// still open after [`PATIENCE`].
async fn until_closed(s: &mut (impl AsyncReadExt + Unpin)) -> Option<String> {
    let bytes = portico_tests::until_closed(s, PATIENCE).await?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads one response with a `Content-Length` body; the connection stays open.
async fn one_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {out:?}");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// A plain GET on a new connection answers 200.
async fn still_serves(node: &TestNode) {
    let r = raw(
        &addr(node),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn a_head_trickled_one_byte_at_a_time_is_answered_408_and_closed() {
    let (node, o) = node_with(r#""client_header_timeout_ms": 300"#, "").await;
    let s = connect(&node).await;
    let (mut r, mut w) = s.into_split();
    // One byte every 20 ms, never the end of the head: each read restarts a per-read timer,
    // only a total deadline ends it.
    let trickle = tokio::spawn(async move {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for &b in head.iter().chain(std::iter::repeat(&b'a')) {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let got = until_closed(&mut r)
        .await
        .expect("the trickling client is disconnected");
    trickle.abort();
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    assert!(got.contains("Connection: close"), "{got}");
    assert_eq!(o.stats().requests, 0, "nothing was forwarded");
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_client_refused_total",
            &[("reason", "header_timeout")]
        ),
        1.0
    );
    // A connection that never sends a byte is closed too (silently: no request to answer).
    let mut silent = connect(&node).await;
    let got = until_closed(&mut silent)
        .await
        .expect("a silent connection is closed");
    assert_eq!(got, "");
    still_serves(&node).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let (node, o) = node_with(r#""keepalive_timeout_ms": 300"#, "").await;
    let mut s = connect(&node).await;
    // Two requests on the connection: it is kept alive between them ...
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let r = one_response(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    assert_eq!(o.stats().requests, 2);
    // ... then closed once idle.
    let rest = until_closed(&mut s)
        .await
        .expect("the idle keep-alive connection is closed");
    assert_eq!(rest, "");
    still_serves(&node).await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_accept_and_counted() {
    let (node, _o) = node_with(r#""max_connections": 3"#, "").await;
    let open = |n: f64| {
        let node = &node;
        async move { node.metrics().await.sum("portico_client_connections", &[]) == n }
    };
    // The start-up check's connection may still be counted: wait until none is.
    eventually("no client connection open", PATIENCE, || open(0.0)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&node).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let r = one_response(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        held.push(s);
    }
    eventually("3 client connections open", PATIENCE, || open(3.0)).await;
    // The fourth is closed at accept, before any request is read.
    let mut fourth = connect(&node).await;
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let got = until_closed(&mut fourth)
        .await
        .expect("the connection over the cap is closed");
    assert_eq!(got, "", "nothing is answered over the cap");
    let m = node.metrics().await;
    assert!(m.sum("portico_connections_rejected_total", &[]) >= 1.0);
    assert_eq!(m.sum("portico_client_connections", &[]), 3.0);
    // Closing two gives their slots back: a new connection is served.
    held.truncate(1);
    eventually("1 client connection open", PATIENCE, || open(1.0)).await;
    still_serves(&node).await;
}

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431_and_a_body_is_not_part_of_the_head() {
    let (node, o) = node_with(r#""max_header_bytes": 4096"#, "").await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(5000)
    );
    let r = raw(&addr(&node), big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    assert_eq!(o.stats().requests, 0, "nothing was forwarded");
    // An unterminated head over the limit is refused too, without waiting for its end.
    let mut s = connect(&node).await;
    s.write_all(format!("GET / HTTP/1.1\r\nX-Big: {}", "a".repeat(8000)).as_bytes())
        .await
        .unwrap();
    let r = until_closed(&mut s).await.expect("closed");
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // Under the limit it passes, and a body larger than the limit is not counted as head.
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    let r = raw(&addr(&node), fits.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body = "b".repeat(20_000);
    let post = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(&addr(&node), post.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("x-body-length: 20000"),
        "{r}"
    );
}

#[tokio::test]
async fn a_request_line_over_8192_bytes_is_414() {
    let (node, o) = node_with("", "").await;
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let r = raw(&addr(&node), long.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 414 "), "{r}");
    assert_eq!(o.stats().requests, 0, "nothing was forwarded");
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_client_refused_total",
            &[("reason", "request_line_too_long")]
        ),
        1.0
    );
    // 8000 bytes of path: a request line under the limit passes.
    let fits = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(8000)
    );
    let r = raw(&addr(&node), fits.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_by_content_length_and_while_chunked() {
    let (node, o) = node_with(r#""max_body_bytes": 1000"#, "").await;
    // Declared too large: refused before anything is forwarded (no body sent at all).
    let r = raw(
        &addr(&node),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
    assert_eq!(o.stats().requests, 0, "nothing was forwarded");
    // Chunked: refused once the body streamed past the limit.
    let chunk = "c".repeat(600);
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = raw(&addr(&node), chunked.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
    // At the limit, both ways, it passes.
    let body = "d".repeat(1000);
    let post = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{body}"
    );
    let r = raw(&addr(&node), post.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let small = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = raw(&addr(&node), small.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // The refusals are not the origin's: it was never ejected.
    let m = node.metrics().await;
    assert_eq!(m.sum("portico_ejections_total", &[]), 0.0);
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408_and_the_origin_is_not_blamed() {
    // Ejection after 2 consecutive failures: three stalled bodies counted against the origin
    // would eject it.
    let pool = r#""timeouts": {"response_ms": 300},
        "failover": {"ejection": {"consecutive_failures": 2}}"#;
    let (node, o) = node_with("", pool).await;
    for _ in 0..3 {
        let mut s = connect(&node).await;
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        // ... and nothing more: the answer comes, and the connection is closed.
        let r = until_closed(&mut s)
            .await
            .expect("the stalled request ends");
        assert!(r.starts_with("HTTP/1.1 408 "), "{r}");
    }
    let status = node.origin_status("p", "o").await;
    assert_eq!(status["ejected"], false, "{status}");
    let m = node.metrics().await;
    assert_eq!(m.sum("portico_ejections_total", &[]), 0.0);
    assert_eq!(
        m.sum("portico_requests_total", &[("code", "408")]),
        3.0,
        "counted as the client's 408s"
    );
    assert_eq!(m.sum("portico_requests_total", &[("code", "504")]), 0.0);
    assert!(o.stats().requests >= 3, "the heads reached the origin");
    still_serves(&node).await;
}

/// A head Portico read and handed to Pingora's proxy (a POST) is parsed again from exactly
/// the bytes it came in: one of exactly `max_header_bytes` with its body behind it, one
/// written in pieces on a reused connection, and one begun behind a GET in the same write.
/// Each body arrives whole and nothing is answered twice or skipped.
#[tokio::test]
async fn a_head_handed_to_pingora_is_read_again_whole() {
    let (node, o) = node_with(r#""max_header_bytes": 4096"#, "").await;
    let post = |pad: usize, body: &str| {
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nX-Pad: {}\r\n\r\n",
            body.len(),
            "p".repeat(pad)
        );
        (head, body.to_string())
    };
    // Exactly at the limit, the body in the same write.
    let (head, _) = post(0, "hello");
    let (head, body) = post(4096 - head.len(), "hello");
    assert_eq!(head.len(), 4096);
    let mut s = connect(&node).await;
    s.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-body-length: 5"), "{r}");
    // On a connection a GET used first: a POST head in three writes, then its body.
    let mut s = connect(&node).await;
    s.write_all(b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let (head, body) = post(100, "abcdefg");
    let (a, rest) = head.split_at(10);
    let (b, c) = rest.split_at(40);
    for piece in [a, b, c, &body] {
        s.write_all(piece.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
    }
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-body-length: 7"), "{r}");
    // A POST head begun behind a GET in the same write, finished in the next.
    let mut s = connect(&node).await;
    let (head, body) = post(10, "xyz");
    let (a, b) = head.split_at(25);
    s.write_all(format!("GET /h HTTP/1.1\r\nHost: x\r\n\r\n{a}").as_bytes())
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    s.write_all(format!("{b}{body}").as_bytes()).await.unwrap();
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-body-length: 3"), "{r}");
    let paths: Vec<String> = o
        .log()
        .into_iter()
        .filter(|r| !r.probe)
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/echo", "/g", "/echo", "/h", "/echo"]);
}

/// A head begun behind a GET in the same write counts those first bytes against
/// `max_header_bytes` too: finished in a later write past the limit, it is 431 and never
/// forwarded, as the same head sent alone would be.
#[tokio::test]
async fn a_pipelined_head_counts_its_first_bytes_against_max_header_bytes() {
    let (node, o) = node_with(r#""max_header_bytes": 4096"#, "").await;
    let mut s = connect(&node).await;
    let begun = format!(
        "GET /over HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
        "p".repeat(3000)
    );
    s.write_all(format!("GET /a HTTP/1.1\r\nHost: x\r\n\r\n{begun}").as_bytes())
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // 3000 more: a head of over 6000 bytes in all.
    s.write_all(format!("{}\r\n\r\n", "p".repeat(3000)).as_bytes())
        .await
        .unwrap();
    let r = until_closed(&mut s).await.expect("closed");
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    let paths: Vec<String> = o
        .log()
        .into_iter()
        .filter(|r| !r.probe)
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/a"]);
}
