//! HTTP/2 and gRPC to origins (`pools[].protocol`): an h2c origin (prior knowledge) is
//! reached over HTTP/2 by requests and probes; a gRPC call from an h2 client passes through
//! with its `grpc-status` trailer (success and failure) and a streamed response is not
//! buffered; HTTP/1.1 clients are still served by an h2 pool. The origin is a hyper HTTP/2
//! server in this file that frames gRPC messages by hand (5-byte prefix), so it records
//! exactly which HTTP version each request arrived with; the clients are hyper's HTTP/2
//! client and tonic's gRPC client (messages derived with prost: no protoc).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use portico_tests::tls::{Leaf, TestCa, TlsNode, certificate_json};
use portico_tests::*;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the origin saw: per request, its path, HTTP version and whether it was a probe.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, http::Version, bool)>>);

impl Seen {
    fn all(&self) -> Vec<(String, http::Version, bool)> {
        self.0.lock().expect("seen").clone()
    }
}

/// A gRPC message frame: uncompressed flag, big-endian length, payload.
fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The origin's frames, sent as the origin produces them.
type Frames =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
type OriginBody = StreamBody<Frames>;

/// The streaming gate: the origin sends the first message of `/stream.Svc/Two`, then waits
/// on this before the second.
type Gate = Arc<tokio::sync::Notify>;

/// An HTTP/2-only (h2c, prior knowledge) origin on a free port.
async fn h2c_origin(seen: Arc<Seen>, gate: Gate) -> SocketAddr {
    h2_origin(seen, gate, None).await
}

/// An HTTP/2-only origin on a free port: over TLS with `leaf`, choosing ALPN `h2` (and
/// refusing a handshake that does not offer it), else cleartext prior knowledge.
async fn h2_origin(seen: Arc<Seen>, gate: Gate, leaf: Option<&Leaf>) -> SocketAddr {
    let acceptor = leaf.map(|leaf| {
        use openssl::ssl::{AlpnError, SslAcceptor, SslFiletype, SslMethod, select_next_proto};
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        b.set_certificate_chain_file(&leaf.cert_file).expect("cert");
        b.set_private_key_file(&leaf.key_file, SslFiletype::PEM)
            .expect("key");
        b.set_alpn_select_callback(|_, offered| {
            select_next_proto(b"\x02h2", offered).ok_or(AlpnError::ALERT_FATAL)
        });
        Arc::new(b.build())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (seen, gate, acceptor) = (seen.clone(), gate.clone(), acceptor.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| handle(req, seen.clone(), gate.clone()));
                let server =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
                let Some(acceptor) = acceptor else {
                    let _ = server
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                    return;
                };
                let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                    return;
                };
                let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, tcp) else {
                    return;
                };
                if std::pin::Pin::new(&mut tls).accept().await.is_ok() {
                    let _ = server
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    addr
}

async fn handle(
    req: http::Request<Incoming>,
    seen: Arc<Seen>,
    gate: Gate,
) -> Result<http::Response<OriginBody>, Infallible> {
    let path = req.uri().path().to_string();
    let probe = req.headers().contains_key("x-portico-health-probe");
    seen.0
        .lock()
        .expect("seen")
        .push((path.clone(), req.version(), probe));
    // A strict gRPC server: without `TE: trailers` the call fails (a proxy that drops it
    // might drop the status trailer too).
    let te_trailers = req.headers().get("te").is_some_and(|v| v == "trailers");
    let fail = req.headers().contains_key("x-fail") || !te_trailers;
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(4);
    let grpc = path.starts_with("/echo.Echo/");
    let body = req.into_body();
    tokio::spawn(async move {
        if !grpc {
            let _ = tx.send(Frame::data(Bytes::from("h2 origin\n"))).await;
            return;
        }
        // Echo the request's message back (unary), or two messages around the gate.
        let request = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let payload = request.get(5..).unwrap_or_default().to_vec();
        let _ = tx.send(Frame::data(grpc_frame(&payload))).await;
        if path == "/echo.Echo/Two" {
            gate.notified().await;
            let _ = tx.send(Frame::data(grpc_frame(b"second"))).await;
        }
        let mut trailers = http::HeaderMap::new();
        if fail {
            let (status, message) = if te_trailers {
                ("5", "no such echo")
            } else {
                ("3", "te: trailers missing")
            };
            trailers.insert("grpc-status", status.parse().expect("value"));
            trailers.insert("grpc-message", message.parse().expect("value"));
        } else {
            trailers.insert("grpc-status", "0".parse().expect("value"));
        }
        let _ = tx.send(Frame::trailers(trailers)).await;
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|f| (Ok(f), rx)) },
        );
    let mut resp = http::Response::new(StreamBody::new(Box::pin(stream) as Frames));
    if grpc {
        resp.headers_mut()
            .insert("content-type", "application/grpc".parse().expect("value"));
    }
    Ok(resp)
}

/// A node with a TLS listener (for h2 clients) and one `protocol: "h2"` pool of `origin`.
async fn node_for(origin: SocketAddr, ca: &TestCa) -> TlsNode {
    let leaf: Leaf = ca.leaf("grpc-node", &["grpc.test"]);
    let config = format!(
        r#"{{"pools": [{{"name": "p", "protocol": "h2", "origins": [{}], {}}}],
            "routes": [{{"name": "r", "pool": "p"}}],
            "certificates": [{}]}}"#,
        origin_json("o", origin, ""),
        FAST_PROBES,
        certificate_json("main", &["grpc.test"], &leaf)
    );
    TlsNode::start(&config).await
}

/// An HTTP/2 client over TLS to the node (ALPN `h2` only).
async fn h2_client(
    node: &TlsNode,
    ca: &TestCa,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    h2_sender(node, ca).await
}

/// [`h2_client`] for any request body type.
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

/// A gRPC request for `method` carrying one message.
fn grpc_request(
    node: &TlsNode,
    method: &str,
    message: &[u8],
    fail: bool,
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!(
        "https://grpc.test:{}/echo.Echo/{method}",
        node.port()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    if fail {
        b = b.header("x-fail", "1");
    }
    b.body(Full::new(grpc_frame(message))).expect("request")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_pool_reaches_its_origin_and_probes_it_over_http2() {
    let seen = Arc::new(Seen::default());
    let origin = h2c_origin(seen.clone(), Gate::default()).await;
    let ca = TestCa::new("h2-pool");
    let node = node_for(origin, &ca).await;

    // An HTTP/1.1 client through the plain listener is still served by the h2 pool.
    let resp = node.node.get("/plain").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "h2 origin\n".as_bytes());

    // Probes reach the origin over HTTP/2 too (it speaks nothing else).
    eventually("a probe over HTTP/2", Duration::from_secs(10), || {
        let seen = seen.clone();
        async move { seen.all().iter().any(|(_, _, probe)| *probe) }
    })
    .await;
    let all = seen.all();
    assert!(
        all.iter().all(|(_, v, _)| *v == http::Version::HTTP_2),
        "{all:?}"
    );
    assert!(
        all.iter().any(|(p, _, probe)| p == "/plain" && !probe),
        "{all:?}"
    );
    node.node.wait_health("p", "o", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_with_their_status_trailers() {
    let seen = Arc::new(Seen::default());
    let origin = h2c_origin(seen.clone(), Gate::default()).await;
    let ca = TestCa::new("grpc");
    let node = node_for(origin, &ca).await;
    let mut client = h2_client(&node, &ca).await;

    // Unary, succeeding: the message echoed, grpc-status 0 in the trailers.
    client.ready().await.expect("ready");
    let resp = client
        .send_request(grpc_request(&node, "Unary", b"hello", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let (data, trailers) = read_all(resp.into_body()).await;
    assert_eq!(data, grpc_frame(b"hello").to_vec());
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // Failing: HTTP 200 with grpc-status 5 and its message in the trailers, untouched.
    client.ready().await.expect("ready");
    let resp = client
        .send_request(grpc_request(&node, "Unary", b"nope", true))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let (_, trailers) = read_all(resp.into_body()).await;
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    assert_eq!(
        trailers.get("grpc-message").map(|v| v.as_bytes()),
        Some(&b"no such echo"[..])
    );

    let calls: Vec<_> = seen
        .all()
        .into_iter()
        .filter(|(p, _, _)| p.starts_with("/echo."))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|(_, v, _)| *v == http::Version::HTTP_2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_grpc_response_is_not_buffered() {
    let gate = Gate::default();
    let origin = h2c_origin(Arc::new(Seen::default()), gate.clone()).await;
    let ca = TestCa::new("grpc-stream");
    let node = node_for(origin, &ca).await;
    let mut client = h2_client(&node, &ca).await;
    client.ready().await.expect("ready");
    let resp = client
        .send_request(grpc_request(&node, "Two", b"first", false))
        .await
        .expect("response");
    let mut body = resp.into_body();
    // The first message arrives while the origin still holds the second back: nothing
    // between the origin and this client waited for the end of the response.
    let first = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("the first message arrives before the response ends")
        .expect("a frame")
        .expect("data");
    assert_eq!(first.into_data().expect("data"), grpc_frame(b"first"));
    gate.notify_one();
    let (rest, trailers) = read_all(body).await;
    assert_eq!(rest, grpc_frame(b"second").to_vec());
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_negotiates_h2_with_a_tls_origin_that_offers_it_and_http1_with_one_that_does_not() {
    let ca = TestCa::new("auto-origins");
    let seen = Arc::new(Seen::default());
    let h2 = h2_origin(
        seen.clone(),
        Gate::default(),
        Some(&ca.leaf("h2-origin", &["h2.origin.test"])),
    )
    .await;
    // portico-origin over TLS speaks HTTP/1.1 only.
    let mut c = portico_origin::OriginConfig::new("h1", "127.0.0.1:0".parse().expect("addr"));
    let h1_leaf = ca.leaf("h1-origin", &["h1.origin.test"]);
    c.tls = Some(portico_origin::OriginTls {
        cert_file: h1_leaf.cert_file.clone(),
        key_file: h1_leaf.key_file.clone(),
    });
    let h1 = origin_with(c).await;
    let pool = |protocol: &str, name: &str, addr: SocketAddr, sni: &str| {
        format!(
            r#"{{"name": "{name}", "protocol": "{protocol}", "ca_file": "{}", {FAST_PROBES},
                "origins": [{}]}}"#,
            ca.ca_file.display(),
            origin_json(name, addr, &format!(r#", "tls": true, "sni": "{sni}""#))
        )
    };
    let config = format!(
        r#"{{"pools": [{}, {}],
            "routes": [{{"name": "h2", "hosts": ["h2.test"], "pool": "h2"}},
                       {{"name": "h1", "hosts": ["h1.test"], "pool": "h1"}}]}}"#,
        pool("auto", "h2", h2, "h2.origin.test"),
        pool("auto", "h1", h1.addr(), "h1.origin.test"),
    );
    let node = TestNode::start(&config).await;

    let resp = node
        .http
        .get_host(&format!("{}/over-tls", node.url), "h2.test")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "h2 origin\n".as_bytes());
    let over_tls: Vec<_> = seen
        .all()
        .into_iter()
        .filter(|(p, _, _)| p == "/over-tls")
        .collect();
    assert_eq!(over_tls.len(), 1, "{over_tls:?}");
    assert_eq!(over_tls[0].1, http::Version::HTTP_2);

    // The HTTP/1.1-only origin is still served by an `auto` pool: ALPN picked http/1.1.
    let resp = node
        .http
        .get_host(&format!("{}/fallback", node.url), "h1.test")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(h1.log().iter().filter(|r| r.path == "/fallback").count(), 1);
    // And both are probed healthy in their own protocol.
    eventually(
        "a probe of the h2 TLS origin",
        Duration::from_secs(10),
        || {
            let seen = seen.clone();
            async move { seen.all().iter().any(|(_, _, probe)| *probe) }
        },
    )
    .await;
    node.wait_health("h2", "h2", true).await;
    node.wait_health("h1", "h1", true).await;
}

/// The echo message, declared with prost's derive (no `.proto`, no protoc).
#[derive(Clone, PartialEq, prost::Message)]
struct EchoMessage {
    #[prost(string, tag = "1")]
    text: String,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_gets_its_reply_and_its_status_through_portico() {
    let origin = h2c_origin(Arc::new(Seen::default()), Gate::default()).await;
    let ca = TestCa::new("tonic");
    let node = node_for(origin, &ca).await;
    let send = h2_sender::<tonic::body::Body>(&node, &ca).await;
    let origin_uri: http::Uri = format!("https://grpc.test:{}", node.port())
        .parse()
        .expect("uri");
    let mut client = tonic::client::Grpc::with_origin(H2Service(send), origin_uri);
    let path = http::uri::PathAndQuery::from_static("/echo.Echo/Unary");

    client.ready().await.expect("ready");
    let reply: tonic::Response<EchoMessage> = client
        .unary(
            tonic::Request::new(EchoMessage {
                text: "hello".into(),
            }),
            path.clone(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect("the call succeeds");
    assert_eq!(reply.into_inner().text, "hello");

    // A failing call: tonic reads the status from the trailers Portico passed on.
    client.ready().await.expect("ready");
    let mut req = tonic::Request::new(EchoMessage {
        text: "nope".into(),
    });
    req.metadata_mut()
        .insert("x-fail", "1".parse().expect("value"));
    let status = client
        .unary::<_, EchoMessage, _>(req, path, tonic_prost::ProstCodec::default())
        .await
        .expect_err("the call fails");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such echo");
}
