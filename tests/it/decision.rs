//! The decision trace: `X-Portico-Debug: 1` from loopback gets `X-Portico-Decision`.

use http::Method;
use portico_origin::Fault;
use portico_tests::*;

#[tokio::test]
async fn a_debug_request_learns_why_it_went_where_it_went() {
    let a = origin("a").await;
    let b = origin("b").await;
    let config = one_pool(
        &[
            origin_json("a", a.addr(), r#", "weight": 7"#),
            origin_json("b", b.addr(), r#", "priority": 2"#),
        ],
        FAST_PROBES,
    );
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a", "b"]).await;
    let debug = [("x-portico-debug", "1")];
    let url = format!("{}/", node.url);

    let r = node
        .http
        .request(Method::GET, &url, &debug, bytes::Bytes::new())
        .await
        .expect("GET");
    let trace = r.header("x-portico-decision").expect("a trace").to_string();
    assert!(
        trace.starts_with("route=r; pool=p; candidates=[a p1 w7 healthy "),
        "{trace}"
    );
    assert!(trace.contains("b p2 w50 healthy "), "{trace}");
    assert!(trace.contains("band=[a]"), "{trace}");
    assert!(
        trace.ends_with("attempts=[a: 200]; answered-by=a"),
        "{trace}"
    );

    // A failing first choice shows in the attempts.
    a.set_fault(Fault::Status(503));
    let r = node
        .http
        .request(Method::GET, &url, &debug, bytes::Bytes::new())
        .await
        .expect("GET");
    assert_eq!(r.served_by(), "b");
    let trace = r.header("x-portico-decision").expect("a trace");
    assert!(
        trace.ends_with("attempts=[a: status_503 (retried), b: 200]; answered-by=b"),
        "{trace}"
    );

    // Nothing without the header.
    assert!(node.get("/").await.header("x-portico-decision").is_none());
}
