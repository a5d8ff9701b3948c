//! Client limits on the TLS listener (SPEC part 3, "TLS and HTTP/2, complete"):
//! `client_header_timeout_ms` bounds the TLS handshake and the first request head, from raw
//! sockets and a hand-driven TLS client.
//!
//! Before the handshake moved inside the client limits (`tls_accept.rs`), Pingora's listener
//! held a connection that never finished its handshake for a fixed 60 s, so these tests,
//! which wait at most [`PATIENCE`] with a 300 ms deadline configured, failed then.

use portico_tests::tls::{TestCa, TlsNode, certificate_json};
use portico_tests::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on waits that must end: a failure bound, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(15);

/// A TLS node for `site.test` with `node.limits` = `{limits}`, and its CA.
async fn tls_node(limits: &str) -> (TlsNode, TestCa, portico_origin::OriginHandle) {
    let ca = TestCa::new("limits");
    let leaf = ca.leaf("site", &["site.test"]);
    let o = origin("o").await;
    let doc = format!(
        r#"{{"node": {{"limits": {{{limits}}}}},
            "pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "r", "pool": "p"}}],
            "certificates": [{}]}}"#,
        origin_json("o", o.addr(), ""),
        certificate_json("site", &["site.test"], &leaf)
    );
    (TlsNode::start(&doc).await, ca, o)
}

/// Reads until the server closes the connection (end of stream or reset); `None` when it is
/// still open after [`PATIENCE`].
async fn until_closed(s: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A TLS client connection to `site.test` offering `alpn` (wire format).
async fn tls_connect(
    addr: SocketAddr,
    ca: &TestCa,
    alpn: &[u8],
) -> tokio_openssl::SslStream<TcpStream> {
    use openssl::ssl::{SslConnector, SslMethod};
    let mut b = SslConnector::builder(SslMethod::tls()).expect("connector");
    b.set_ca_file(&ca.ca_file).expect("CA");
    b.set_alpn_protos(alpn).expect("ALPN");
    let ssl = b
        .build()
        .configure()
        .expect("configure")
        .into_ssl("site.test")
        .expect("ssl");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
    std::pin::Pin::new(&mut tls)
        .connect()
        .await
        .expect("handshake");
    tls
}

/// A GET over a fresh TLS connection (HTTP/1.1): the node still serves.
async fn still_serves(node: &TlsNode, ca: &TestCa) {
    let mut tls = tls_connect(node.tls, ca, b"\x08http/1.1").await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = until_closed(&mut tls).await.expect("answered and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_not_done_within_client_header_timeout_is_closed() {
    let (node, ca, _o) = tls_node(r#""client_header_timeout_ms": 300"#).await;
    // Silent connections, and ones that stop inside their ClientHello: a TLS handshake
    // record header announcing 512 bytes, then a few of them.
    let mut silent = Vec::new();
    let mut partial = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(node.tls).await.expect("connect"));
        let mut s = TcpStream::connect(node.tls).await.expect("connect");
        s.write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .expect("write");
        partial.push(s);
    }
    let mut held = 0;
    for s in silent.iter_mut().chain(partial.iter_mut()) {
        match until_closed(s).await {
            Some(bytes) => assert!(
                bytes.iter().all(|&b| b != b'H'),
                "no HTTP answer to a connection without TLS: {bytes:?}"
            ),
            None => held += 1,
        }
    }
    assert_eq!(
        held, 0,
        "connections still open past the handshake deadline"
    );
    still_serves(&node, &ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_head_over_tls_counts_from_accept_and_is_answered_408() {
    let (node, ca, _o) = tls_node(r#""client_header_timeout_ms": 300"#).await;
    let mut tls = tls_connect(node.tls, &ca, b"\x08http/1.1").await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n")
        .await
        .expect("write");
    let answer = until_closed(&mut tls).await.expect("closed in time");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // One that sends nothing after its handshake is closed without a word.
    let mut quiet = tls_connect(node.tls, &ca, b"\x08http/1.1").await;
    let answer = until_closed(&mut quiet).await.expect("closed in time");
    assert!(answer.is_empty(), "{answer:?}");
    still_serves(&node, &ca).await;
}
