//! What an HTTP/1.1 client reads of a response, byte for byte: a bodiless answer (HEAD, 204,
//! 304) from an HTTP/1.1 or an HTTP/2 origin leaves the connection in step for the next
//! request, and a body the origin breaks off arrives visibly incomplete (a chunked body
//! without its last chunk, a `Content-Length` body short), the connection closed, never as a
//! complete-looking response. Each through Pingora's proxy loop and through the hedging path.

use portico_origin::OriginConfig;
use portico_tests::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Probes every minute: only the first one (that the node waits for) reaches the origins.
const SLOW_PROBES: &str = r#""health_probe": {"interval_ms": 60000, "timeout_ms": 1000}"#;

/// The two pools, each with a route for the host `NAME.test`, and their hedging: `hedged`
/// goes through the hedging path, `plain` through Pingora's proxy loop.
const POOLS: [(&str, bool); 2] = [("hedged", true), ("plain", false)];

/// A config with the [`POOLS`], each holding `origin` (an origin entry) and speaking
/// `protocol`.
fn config(origin: &str, protocol: &str) -> String {
    let pools: Vec<String> = POOLS
        .iter()
        .map(|(name, hedged)| {
            format!(
                r#"{{"name": "{name}", "protocol": "{protocol}", "origins": [{origin}], {SLOW_PROBES},
                    "failover": {{"hedging": {{"enabled": {hedged}}}}}}}"#
            )
        })
        .collect();
    let routes: Vec<String> = POOLS
        .iter()
        .map(|(name, _)| {
            format!(r#"{{"name": "{name}", "hosts": ["{name}.test"], "pool": "{name}"}}"#)
        })
        .collect();
    format!(
        r#"{{"pools": [{}], "routes": [{}]}}"#,
        pools.join(", "),
        routes.join(", ")
    )
}

/// A connection to the node's plain listener.
async fn connect(node: &TestNode) -> TcpStream {
    TcpStream::connect(node.url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads one response head from `conn` (up to the blank line), lower-cased.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut byte))
            .await
            .expect("a response head")
            .expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_answers_of_an_h2_origin_keep_an_http1_connection_in_step() {
    let mut c = OriginConfig::new("o", "127.0.0.1:0".parse().expect("addr"));
    c.http2 = true;
    let o = origin_with(c).await;
    for protocol in ["h2", "http/1.1"] {
        let node = TestNode::start(&config(&origin_json("o", o.addr(), ""), protocol)).await;
        for (pool, _) in POOLS {
            node.wait_latencies(pool, &["o"]).await;
            let host = format!("{pool}.test");
            let mut conn = connect(&node).await;
            for (method, path, status) in [
                ("HEAD", "/", "200"),
                ("GET", "/status/204", "204"),
                ("GET", "/status/304", "304"),
                ("HEAD", "/status/404", "404"),
            ] {
                conn.write_all(
                    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
                )
                .await
                .expect("write");
                let what = format!("{method} {path} to {host} over {protocol}");
                let head = read_head(&mut conn).await;
                assert!(
                    head.starts_with(&format!("http/1.1 {status} ")),
                    "{what}: {head}"
                );
                assert!(!head.contains("transfer-encoding"), "{what}: {head}");
            }
            // The next answer starts right after the last head: no body bytes came between.
            conn.write_all(format!("GET /last HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let head = read_head(&mut conn).await;
            assert!(
                head.starts_with("http/1.1 200 "),
                "{host} over {protocol}: {head}"
            );
            assert!(
                head.contains("content-length: 2\r\n"),
                "{host} over {protocol}: {head}"
            );
            let mut body = [0u8; 2];
            conn.read_exact(&mut body).await.expect("body");
            assert_eq!(&body, b"o\n");
        }
    }
}

/// An HTTP/1.1 origin that answers probes, and breaks off every other response after its
/// first five body bytes: `/chunked` has a chunked body, anything else a `Content-Length` of
/// 100. It closes the connection after each response.
async fn breaking_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let answer: &[u8] = if text.contains("x-portico-health-probe") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else if text.starts_with("get /chunked ") {
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello"
                };
                let _ = conn.write_all(answer).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_origin_breaks_off_reaches_an_http1_client_visibly_incomplete() {
    let origin = breaking_origin().await;
    let node = TestNode::start(&config(&origin_json("o", origin, ""), "http/1.1")).await;
    for (pool, _) in POOLS {
        node.wait_latencies(pool, &["o"]).await;
        let host = format!("{pool}.test");

        // Chunked: the piece that came, then the connection closes without the last chunk.
        let mut conn = connect(&node).await;
        conn.write_all(format!("GET /chunked HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let head = read_head(&mut conn).await;
        assert!(head.starts_with("http/1.1 200 "), "{host}: {head}");
        assert!(
            head.contains("transfer-encoding: chunked"),
            "{host}: {head}"
        );
        let rest = until_closed(&mut conn, Duration::from_secs(20))
            .await
            .expect("the connection closes");
        let rest = String::from_utf8_lossy(&rest).into_owned();
        assert!(rest.starts_with("5\r\nhello\r\n"), "{host}: {rest:?}");
        assert!(
            !rest.contains("\r\n0\r\n"),
            "{host}: a last chunk after a cut: {rest:?}"
        );
        assert_eq!(rest, "5\r\nhello\r\n", "{host}: nothing after the piece");

        // Content-Length: five bytes of the hundred, then the connection closes.
        let mut conn = connect(&node).await;
        conn.write_all(format!("GET /length HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let head = read_head(&mut conn).await;
        assert!(head.starts_with("http/1.1 200 "), "{host}: {head}");
        assert!(head.contains("content-length: 100\r\n"), "{host}: {head}");
        let rest = until_closed(&mut conn, Duration::from_secs(20))
            .await
            .expect("the connection closes");
        assert_eq!(String::from_utf8_lossy(&rest), "hello", "{host}");
    }
}
