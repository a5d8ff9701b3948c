//! HTTP/2 and gRPC to origins (`pools[].protocol`): an h2c origin (prior knowledge) is
//! reached over HTTP/2 by requests and probes, `auto` negotiates by ALPN; gRPC calls of a
//! real tonic client pass through with their status and trailers (unary, server and client
//! streaming), a stream is not buffered, the client's deadline reaches the origin, Portico's
//! own timeout is a gRPC DEADLINE_EXCEEDED, calls are never hedged and are retried only when
//! they never reached an origin. The origin is `portico-origin --http2` and its gRPC service
//! `portico.origin.Echo`; the clients are tonic's (messages derived with prost: no protoc) and
//! hyper's HTTP/2 client where the frames themselves are checked.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use portico_origin::grpc::{self, EchoReply, EchoRequest};
use portico_origin::{Fault, OriginConfig, OriginHandle, OriginTls};
use portico_tests::tls::{Leaf, TestCa, TlsNode, certificate_json};
use portico_tests::*;
use prost::Message;
use std::net::SocketAddr;
use std::time::Duration;

/// A `portico-origin` that speaks HTTP/2 beside HTTP/1.1 and serves the gRPC service.
async fn h2_origin(name: &str) -> OriginHandle {
    let mut c = OriginConfig::new(name, "127.0.0.1:0".parse().expect("addr"));
    c.http2 = true;
    origin_with(c).await
}

/// A node with a TLS listener (for h2 clients) and one `protocol: "h2"` pool `p` of `origins`,
/// with extra pool fields, behind a catch-all route.
async fn node_for(origins: &[&OriginHandle], pool_extra: &str, ca: &TestCa) -> TlsNode {
    node_with_routes(origins, pool_extra, r#"[{"name": "r", "pool": "p"}]"#, ca).await
}

/// [`node_for`] with its own `routes`.
async fn node_with_routes(
    origins: &[&OriginHandle],
    pool_extra: &str,
    routes: &str,
    ca: &TestCa,
) -> TlsNode {
    let leaf: Leaf = ca.leaf("grpc-node", &["grpc.test"]);
    let origins: Vec<String> = origins
        .iter()
        .map(|o| origin_json(o.name(), o.addr(), ""))
        .collect();
    let config = format!(
        r#"{{"pools": [{{"name": "p", "protocol": "h2", "origins": [{}], {pool_extra}}}],
            "routes": {routes},
            "certificates": [{}]}}"#,
        origins.join(", "),
        certificate_json("main", &["grpc.test"], &leaf)
    );
    TlsNode::start(&config).await
}

/// An HTTP/2 connection over TLS to the node (ALPN `h2` only), for any request body type.
async fn h2_sender<B>(node: &TlsNode, ca: &TestCa) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use openssl::ssl::{SslConnector, SslMethod};
    let mut b = SslConnector::builder(SslMethod::tls()).expect("connector");
    b.set_ca_file(&ca.ca_file).expect("CA");
    b.set_alpn_protos(b"\x02h2").expect("ALPN");
    let ssl = b
        .build()
        .configure()
        .expect("configure")
        .into_ssl("grpc.test")
        .expect("ssl");
    let tcp = tokio::net::TcpStream::connect(node.tls)
        .await
        .expect("connect");
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
    std::pin::Pin::new(&mut tls)
        .connect()
        .await
        .expect("handshake");
    assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// tonic's client over the hyper HTTP/2 connection to the node.
#[derive(Clone)]
struct H2Service(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for H2Service {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// A tonic client of `portico.origin.Echo` through the node's TLS listener.
struct Client(tonic::client::Grpc<H2Service>);

type Codec = tonic_prost::ProstCodec<EchoRequest, EchoReply>;

impl Client {
    async fn new(node: &TlsNode, ca: &TestCa) -> Client {
        let send = h2_sender::<tonic::body::Body>(node, ca).await;
        let origin: http::Uri = format!("https://grpc.test:{}", node.port())
            .parse()
            .expect("uri");
        Client(tonic::client::Grpc::with_origin(H2Service(send), origin))
    }

    async fn unary(
        &mut self,
        req: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        self.0.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static(grpc::UNARY);
        self.0.unary(req, path, Codec::default()).await
    }

    async fn server_stream(
        &mut self,
        req: EchoRequest,
    ) -> Result<tonic::Streaming<EchoReply>, tonic::Status> {
        self.0.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static(grpc::SERVER_STREAM);
        let resp = self
            .0
            .server_streaming(tonic::Request::new(req), path, Codec::default())
            .await?;
        Ok(resp.into_inner())
    }

    async fn client_stream(&mut self, reqs: Vec<EchoRequest>) -> Result<EchoReply, tonic::Status> {
        self.0.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static(grpc::CLIENT_STREAM);
        let stream = futures_util::stream::iter(reqs);
        let resp = self
            .0
            .client_streaming(tonic::Request::new(stream), path, Codec::default())
            .await?;
        Ok(resp.into_inner())
    }
}

/// An echo of `text`.
fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..Default::default()
    }
}

/// Waits up to 20 s for the next message of a stream (a stalled stream fails the test).
async fn next(
    stream: &mut tonic::Streaming<EchoReply>,
) -> Result<Option<EchoReply>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("the stream moves on")
}

/// The gRPC calls of `method` an origin received.
fn calls(o: &OriginHandle, method: &str) -> Vec<portico_origin::RequestRecord> {
    o.log().into_iter().filter(|r| r.path == method).collect()
}

/// A gRPC message frame: uncompressed flag, big-endian length, payload.
fn grpc_frame(message: &impl Message) -> Bytes {
    let payload = message.encode_to_vec();
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

/// A gRPC request by hand for `path` carrying one message.
fn raw_request(node: &TlsNode, path: &str, m: &EchoRequest) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://grpc.test:{}{path}", node.port()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_frame(m)))
        .expect("request")
}

/// Reads the whole response body: (data, trailers).
async fn read_all(body: Incoming) -> (Vec<u8>, http::HeaderMap) {
    let collected = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("the response ends")
        .expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (collected.to_bytes().to_vec(), trailers)
}

fn text(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().expect("text").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_pool_reaches_its_origin_and_probes_it_over_http2() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("h2-pool");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;

    // An HTTP/1.1 client through the plain listener is still served by the h2 pool.
    let resp = node.node.get("/plain").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, "o\n".as_bytes());

    // Probes reach the origin over HTTP/2 too.
    eventually("a probe", Duration::from_secs(10), || {
        let origin = origin.clone();
        async move { origin.log().iter().any(|r| r.probe) }
    })
    .await;
    let all = origin.log();
    assert!(
        all.iter().all(|r| r.version == http::Version::HTTP_2),
        "{all:?}"
    );
    assert!(
        all.iter().any(|r| r.path == "/plain" && !r.probe),
        "{all:?}"
    );
    node.node.wait_health("p", "o", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_negotiates_h2_with_a_tls_origin_that_offers_it_and_http1_with_one_that_does_not() {
    let ca = TestCa::new("auto-origins");
    let tls_origin = |name: &str, host: &str, http2: bool| {
        let leaf = ca.leaf(name, &[host]);
        let mut c = OriginConfig::new(name, "127.0.0.1:0".parse().expect("addr"));
        c.tls = Some(OriginTls {
            cert_file: leaf.cert_file.clone(),
            key_file: leaf.key_file.clone(),
        });
        c.http2 = http2;
        origin_with(c)
    };
    let h2 = tls_origin("h2", "h2.origin.test", true).await;
    // Without --http2 the origin answers no ALPN: HTTP/1.1 only.
    let h1 = tls_origin("h1", "h1.origin.test", false).await;
    let pool = |name: &str, addr: SocketAddr, sni: &str| {
        format!(
            r#"{{"name": "{name}", "protocol": "auto", "ca_file": "{}", {FAST_PROBES},
                "origins": [{}]}}"#,
            ca.ca_file.display(),
            origin_json(name, addr, &format!(r#", "tls": true, "sni": "{sni}""#))
        )
    };
    let config = format!(
        r#"{{"pools": [{}, {}],
            "routes": [{{"name": "h2", "hosts": ["h2.test"], "pool": "h2"}},
                       {{"name": "h1", "hosts": ["h1.test"], "pool": "h1"}}]}}"#,
        pool("h2", h2.addr(), "h2.origin.test"),
        pool("h1", h1.addr(), "h1.origin.test"),
    );
    let node = TestNode::start(&config).await;

    for (host, origin, version) in [
        ("h2.test", &h2, http::Version::HTTP_2),
        ("h1.test", &h1, http::Version::HTTP_11),
    ] {
        let resp = node
            .http
            .get_host(&format!("{}/over-tls", node.url), host)
            .await;
        assert_eq!(resp.status, 200, "{host}");
        let seen = calls(origin, "/over-tls");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].version, version, "{host}");
    }
    // And both are probed in their own protocol, and healthy.
    for (origin, version) in [(&h2, http::Version::HTTP_2), (&h1, http::Version::HTTP_11)] {
        eventually("a probe", Duration::from_secs(10), || async {
            origin.log().iter().any(|r| r.probe)
        })
        .await;
        let probes: Vec<_> = origin.log().into_iter().filter(|r| r.probe).collect();
        assert!(probes.iter().all(|r| r.version == version), "{probes:?}");
    }
    node.wait_health("h2", "h2", true).await;
    node.wait_health("h1", "h1", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_unary_call_gets_its_reply_or_its_status_through_portico() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-unary");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;
    let mut client = Client::new(&node, &ca).await;

    let reply = client
        .unary(tonic::Request::new(echo("hello")))
        .await
        .expect("the call succeeds");
    assert_eq!(
        reply.metadata().get("x-served-by").map(|v| v.to_str().ok()),
        Some(Some("o"))
    );
    let reply = reply.into_inner();
    assert_eq!(
        (reply.text.as_str(), reply.served_by.as_str()),
        ("hello", "o")
    );
    // The call reached the origin over HTTP/2 with the `TE: trailers` gRPC requires.
    let seen = calls(&origin, grpc::UNARY);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, http::Version::HTTP_2);
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|(k, v)| k == "te" && v == "trailers"),
        "{:?}",
        seen[0].headers
    );

    // A failing call: tonic reads the origin's status and message, passed on untouched.
    let status = client
        .unary(tonic::Request::new(EchoRequest {
            text: "no such echo".into(),
            status: tonic::Code::NotFound as i32,
            ..Default::default()
        }))
        .await
        .expect_err("the call fails");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trailers_after_the_messages_reach_the_client_intact() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-trailers");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;
    let mut h2 = h2_sender::<Full<Bytes>>(&node, &ca).await;

    // Unary, succeeding: one message, then grpc-status 0 in the trailers.
    h2.ready().await.expect("ready");
    let resp = h2
        .send_request(raw_request(&node, grpc::UNARY, &echo("hi")))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        text(resp.headers(), "content-type").as_deref(),
        Some("application/grpc")
    );
    let (data, trailers) = read_all(resp.into_body()).await;
    let expected = EchoReply {
        text: "hi".into(),
        served_by: "o".into(),
        ..Default::default()
    };
    assert_eq!(data, grpc_frame(&expected).to_vec());
    assert_eq!(text(&trailers, "grpc-status").as_deref(), Some("0"));

    // Two messages, then a failure: its status and message in the trailers, as sent.
    h2.ready().await.expect("ready");
    let resp = h2
        .send_request(raw_request(
            &node,
            grpc::SERVER_STREAM,
            &EchoRequest {
                text: "then it failed".into(),
                status: tonic::Code::FailedPrecondition as i32,
                count: 2,
                ..Default::default()
            },
        ))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let (data, trailers) = read_all(resp.into_body()).await;
    let message = |seq| EchoReply {
        text: "then it failed".into(),
        served_by: "o".into(),
        seq,
        ..Default::default()
    };
    assert_eq!(
        data,
        [grpc_frame(&message(0)), grpc_frame(&message(1))].concat()
    );
    assert_eq!(text(&trailers, "grpc-status").as_deref(), Some("9"));
    // As tonic's server percent-encoded it.
    assert_eq!(
        text(&trailers, "grpc-message").as_deref(),
        Some("then%20it%20failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_client_streaming_calls_pass_whole() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-streams");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;
    let mut client = Client::new(&node, &ca).await;

    let mut stream = client
        .server_stream(EchoRequest {
            text: "tick".into(),
            count: 3,
            delay_ms: 20,
            ..Default::default()
        })
        .await
        .expect("the call starts");
    let mut seqs = Vec::new();
    while let Some(m) = next(&mut stream).await.expect("no error") {
        assert_eq!(m.text, "tick");
        seqs.push(m.seq);
    }
    assert_eq!(seqs, [0, 1, 2]);

    let reply = client
        .client_stream(
            ["a", "b", "c", "d"]
                .iter()
                .zip(1..)
                .map(|(t, n)| EchoRequest {
                    text: t.to_string(),
                    number: n,
                    ..Default::default()
                })
                .collect(),
        )
        .await
        .expect("the call succeeds");
    assert_eq!(
        (reply.text.as_str(), reply.seq, reply.sum),
        ("a b c d", 4, 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_grpc_response_is_not_buffered() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-stream");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;
    let mut client = Client::new(&node, &ca).await;
    // The origin sends its first message at once and the second ten minutes later: the
    // first reaches the client while the response is still under way, so nothing between
    // the origin and this client waited for its end.
    let mut stream = client
        .server_stream(EchoRequest {
            text: "first".into(),
            count: 2,
            delay_ms: 600_000,
            ..Default::default()
        })
        .await
        .expect("the call starts");
    let first = next(&mut stream)
        .await
        .expect("no error")
        .expect("a message");
    assert_eq!((first.text.as_str(), first.seq), ("first", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_deadline_reaches_the_origin() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-deadline");
    let node = node_for(&[&origin], FAST_PROBES, &ca).await;
    let mut client = Client::new(&node, &ca).await;

    // tonic sends the deadline as `grpc-timeout`; the origin saw it as sent.
    let mut req = tonic::Request::new(echo("in time"));
    req.set_timeout(Duration::from_secs(30));
    let reply = client.unary(req).await.expect("the call succeeds");
    let seen = reply
        .metadata()
        .get(grpc::TIMEOUT_SEEN)
        .map(|v| v.to_str().expect("text").to_string());
    let reply = reply.into_inner();
    assert_eq!(seen.as_deref(), Some(reply.grpc_timeout.as_str()));
    assert_eq!(
        grpc::parse_timeout(&reply.grpc_timeout),
        Some(Duration::from_secs(30))
    );

    // Work longer than the deadline (and shorter than the pool's 30 s response timeout for
    // Portico's part): the origin keeps the deadline it was given and says so.
    let mut req = tonic::Request::new(EchoRequest {
        text: "too slow".into(),
        delay_ms: 600_000,
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(500));
    let status = client.unary(req).await.expect_err("the deadline passes");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().ends_with("exceeded at origin o"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portico_timing_out_on_the_origin_is_a_grpc_deadline_exceeded() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-timeout");
    let node = node_for(
        &[&origin],
        &format!(r#"{FAST_PROBES}, "timeouts": {{"response_ms": 300}}"#),
        &ca,
    )
    .await;
    let slow = EchoRequest {
        text: "slow".into(),
        delay_ms: 600_000,
        count: 2,
        ..Default::default()
    };

    // A tonic client reads a status, not an opaque HTTP error.
    let mut client = Client::new(&node, &ca).await;
    let status = client
        .unary(tonic::Request::new(slow.clone()))
        .await
        .expect_err("Portico gives up");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().starts_with("504 Gateway Timeout") && status.message().contains("\"p\""),
        "{status:?}"
    );

    // On the wire: a trailers-only answer, HTTP 200 with the status in its head and no body.
    let mut h2 = h2_sender::<Full<Bytes>>(&node, &ca).await;
    h2.ready().await.expect("ready");
    let resp = h2
        .send_request(raw_request(&node, grpc::UNARY, &slow))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        text(resp.headers(), "content-type").as_deref(),
        Some("application/grpc")
    );
    assert_eq!(text(resp.headers(), "grpc-status").as_deref(), Some("4"));
    let (data, trailers) = read_all(resp.into_body()).await;
    assert!(
        data.is_empty() && trailers.is_empty(),
        "{data:?} {trailers:?}"
    );

    // A stream that goes silent after its first message ends with the same status, in
    // trailers after that message.
    let mut stream = client.server_stream(slow).await.expect("the call starts");
    let first = next(&mut stream)
        .await
        .expect("no error")
        .expect("a message");
    assert_eq!(first.seq, 0);
    let status = next(&mut stream).await.expect_err("Portico gives up");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // Counted as what they stand for: 504s.
    let m = node.node.metrics().await;
    assert!(
        m.sum("portico_requests_total", &[("pool", "p"), ("code", "504")]) >= 2.0,
        "{}",
        m.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_route_is_a_grpc_unimplemented() {
    let origin = h2_origin("o").await;
    let ca = TestCa::new("grpc-no-route");
    let routes =
        r#"[{"name": "r", "hosts": ["grpc.test"], "paths": ["/other.Svc/*"], "pool": "p"}]"#;
    let node = node_with_routes(&[&origin], FAST_PROBES, routes, &ca).await;
    let mut client = Client::new(&node, &ca).await;
    let status = client
        .unary(tonic::Request::new(echo("lost")))
        .await
        .expect_err("no route");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("404 Not Found: no route for host \"grpc.test"),
        "{status:?}"
    );
    assert!(calls(&origin, grpc::UNARY).is_empty());
}

/// Long probe intervals and no ejection: only live requests tell the node about a fault.
const NO_PROBE_NEWS: &str = r#""health_probe": {"interval_ms": 60000, "timeout_ms": 1000},
    "failover": {"ejection": {"enabled": false}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_is_never_hedged() {
    let (a, b) = (h2_origin("a").await, h2_origin("b").await);
    let ca = TestCa::new("grpc-hedging");
    let node = node_for(
        &[&a, &b],
        r#""health_probe": {"interval_ms": 60000, "timeout_ms": 1000},
           "failover": {"hedging": {"enabled": true, "delay_ms": 20, "max_percent": 100}}"#,
        &ca,
    )
    .await;
    node.node.wait_latencies("p", &["a", "b"]).await;
    let hedged = || async {
        let m = node.node.metrics().await;
        m.sum("portico_hedges_total", &[("pool", "p"), ("result", "won")])
            + m.sum("portico_hedges_total", &[("pool", "p"), ("result", "lost")])
    };

    // The pool hedges: a slow GET gets a second attempt.
    let resp = node
        .node
        .http
        .request(
            http::Method::GET,
            &format!("{}/slow", node.node.url),
            &[("x-origin-delay-ms", "1000")],
            "",
        )
        .await
        .expect("GET");
    assert_eq!(resp.status, 200);
    eventually("the GET hedged", Duration::from_secs(10), || async {
        hedged().await >= 1.0
    })
    .await;
    let before = hedged().await;

    // A gRPC call as slow is sent once.
    let mut client = Client::new(&node, &ca).await;
    let reply = client
        .unary(tonic::Request::new(EchoRequest {
            text: "once".into(),
            delay_ms: 1000,
            ..Default::default()
        }))
        .await
        .expect("the call succeeds");
    assert_eq!(reply.into_inner().text, "once");
    let sent = calls(&a, grpc::UNARY).len() + calls(&b, grpc::UNARY).len();
    assert_eq!(sent, 1, "the call reached one origin once");
    assert_eq!(hedged().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_refused_by_an_origin_is_sent_to_another() {
    let (a, b) = (h2_origin("a").await, h2_origin("b").await);
    let ca = TestCa::new("grpc-refused");
    let node = node_for(&[&a, &b], NO_PROBE_NEWS, &ca).await;
    node.node.wait_latencies("p", &["a", "b"]).await;
    a.set_fault(Fault::Refuse);
    let mut client = Client::new(&node, &ca).await;
    for i in 0..20 {
        let reply = client
            .unary(tonic::Request::new(echo(&format!("call-{i}"))))
            .await
            .expect("the call succeeds");
        assert_eq!(reply.into_inner().served_by, "b");
    }
    assert_eq!(calls(&b, grpc::UNARY).len(), 20);
    let m = node.node.metrics().await;
    assert!(
        m.sum("portico_retries_total", &[("reason", "connect_refused")]) >= 1.0,
        "a was selected at least once in 20 calls and refused:\n{}",
        m.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_that_reached_its_origin_is_not_resent() {
    let (a, b) = (h2_origin("a").await, h2_origin("b").await);
    let ca = TestCa::new("grpc-no-resend");
    let node = node_for(&[&a, &b], NO_PROBE_NEWS, &ca).await;
    node.node.wait_latencies("p", &["a", "b"]).await;
    let mut client = Client::new(&node, &ca).await;
    let call = tokio::spawn(async move {
        client
            .unary(tonic::Request::new(EchoRequest {
                text: "lost".into(),
                delay_ms: 600_000,
                ..Default::default()
            }))
            .await
    });
    // The origin that got the call drops its connections while working on it.
    let (got, other) = poll("the call at an origin", Duration::from_secs(10), || {
        let (a, b) = (a.clone(), b.clone());
        async move {
            match (calls(&a, grpc::UNARY).len(), calls(&b, grpc::UNARY).len()) {
                (1, 0) => Some((a, b)),
                (0, 1) => Some((b, a)),
                _ => None,
            }
        }
    })
    .await;
    got.set_fault(Fault::Refuse);
    let status = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call ends")
        .expect("task")
        .expect_err("the call fails");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().starts_with("502 Bad Gateway"),
        "{status:?}"
    );
    assert!(calls(&other, grpc::UNARY).is_empty(), "not resent");
    assert_eq!(calls(&got, grpc::UNARY).len(), 1);
}
