//! WebSockets through the proxy: the upgrade gets 101 from the origin, messages echo both ways
//! over plain HTTP and the TLS listener, and an upgraded connection idle for longer than the
//! pool's `response_ms` keeps working and counts as neither an error nor a timeout.

use futures_util::{SinkExt, StreamExt};
use portico_tests::tls::{TestCa, TlsNode, certificate_json};
use portico_tests::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The pools' response timeout: an upgraded connection must outlive it.
const RESPONSE_MS: u64 = 300;

fn config(origin: &portico_origin::OriginHandle, certificates: &str) -> String {
    format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}],
                         "timeouts": {{"connect_ms": 1000, "response_ms": {RESPONSE_MS}}}}}],
            "routes": [{{"name": "r", "pool": "p"}}]{certificates}}}"#,
        origin_json("ws-origin", origin.addr(), "")
    )
}

/// The WebSocket handshake on `stream` for `url`: the client and the 101 response.
async fn handshake<S>(
    url: &str,
    stream: S,
) -> (
    WebSocketStream<S>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let req = url.into_client_request().expect("a WebSocket request");
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .expect("the handshake finishes")
    .expect("the proxy answers the upgrade with 101")
}

/// Sends `msg` and expects it back; the echo is the next data message.
async fn echo<S>(ws: &mut WebSocketStream<S>, msg: Message)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(msg.clone()).await.expect("send");
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Some(m),
                Some(Ok(_)) => continue,
                other => {
                    eprintln!("the connection ended instead: {other:?}");
                    return None;
                }
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    assert_eq!(
        back,
        Some(msg),
        "the origin's echo comes back through the proxy"
    );
}

/// Lets the connection sit idle for `idle`: the scenario under test, not a synchronisation.
/// Nothing is sent either way meanwhile (the echo origin only answers).
async fn stay_idle(idle: Duration) {
    let until = Instant::now() + idle;
    while Instant::now() < until {
        tokio::time::sleep(until - Instant::now()).await;
    }
}

/// Messages, a long idle and a clean close over one upgraded connection, then the metrics.
async fn exercise<S>(node: &TestNode, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    echo(&mut ws, Message::text("hello through portico")).await;
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(binary)).await;
    // Three response timeouts with nothing on the wire: the tunnel must still be there.
    stay_idle(Duration::from_millis(3 * RESPONSE_MS)).await;
    echo(&mut ws, Message::text("still here after the idle")).await;
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}

    // Logged (and counted) once the tunnel has ended.
    eventually(
        "the upgrade is counted as a 101",
        Duration::from_secs(10),
        || async {
            node.metrics()
                .await
                .sum("portico_requests_total", &[("code", "101")])
                == 1.0
        },
    )
    .await;
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_requests_total", &[]),
        1.0,
        "only the upgrade was answered: {}",
        m.text
    );
    for family in ["portico_retries_total", "portico_retries_denied_total"] {
        assert_eq!(
            m.sum(family, &[]),
            0.0,
            "no timeout or failure was seen: {}",
            m.text
        );
    }
    assert_eq!(m.sum("portico_ejections_total", &[]), 0.0, "{}", m.text);
    assert_eq!(
        m.sum("portico_request_duration_seconds_count", &[]),
        0.0,
        "a tunnel's life is not a request duration: {}",
        m.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_through_the_proxy_and_outlives_the_response_timeout() {
    let origin = origin("ws-origin").await;
    let node = TestNode::start(&config(&origin, "")).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (ws, resp) = handshake(&format!("ws://{addr}/ws"), tcp).await;
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok()),
        Some("ws-origin"),
        "the 101 came from the origin"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    exercise(&node, ws).await;
    assert_eq!(origin.stats().websockets, 1);
    // The origin got the upgrade headers a proxy must not strip.
    let seen = last_request(&origin);
    assert_eq!(header(&seen, "upgrade"), Some("websocket"));
    assert_eq!(header(&seen, "connection"), Some("upgrade"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_the_tls_listener() {
    let ca = TestCa::new("ws");
    let leaf = ca.leaf("ws-leaf", &["ws.example.com"]);
    let origin = origin("ws-origin").await;
    let certs = format!(
        r#", "certificates": [{}]"#,
        certificate_json("main", &["ws.example.com"], &leaf)
    );
    let tls_node = TlsNode::start(&config(&origin, &certs)).await;

    use openssl::ssl::{SslConnector, SslMethod};
    let mut b = SslConnector::builder(SslMethod::tls()).expect("connector");
    b.set_ca_file(&ca.ca_file).expect("CA");
    // WebSockets over HTTP/2 (RFC 8441) are not offered: the client asks for HTTP/1.1.
    b.set_alpn_protos(b"\x08http/1.1").expect("ALPN");
    let ssl = b
        .build()
        .configure()
        .expect("configure")
        .into_ssl("ws.example.com")
        .expect("ssl");
    let tcp = tokio::net::TcpStream::connect(tls_node.tls)
        .await
        .expect("connect");
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
    std::pin::Pin::new(&mut tls)
        .connect()
        .await
        .expect("TLS handshake");
    assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"http/1.1"[..]));
    let (ws, resp) = handshake("wss://ws.example.com/ws", tls).await;
    assert_eq!(resp.status(), 101);
    exercise(&tls_node.node, ws).await;
    let seen = last_request(&origin);
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&seen, "upgrade"), Some("websocket"));
}
