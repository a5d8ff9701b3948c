//! Stopping a node: the requests in flight when the stop comes finish before it exits.

use portico_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_before_the_node_stops() {
    let a = origin("a").await;
    let node = TestNode::start(&one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES)).await;
    let url = format!("{}/", node.url);
    let mut requests = Vec::new();
    for _ in 0..20 {
        let (http, url) = (Http::no_keepalive(), url.clone());
        requests.push(tokio::spawn(async move {
            http.request(
                http::Method::GET,
                &url,
                &[("x-origin-delay-ms", "400")],
                bytes::Bytes::new(),
            )
            .await
        }));
    }
    let state = node.node.state().clone();
    eventually("20 requests in flight", Duration::from_secs(10), || async {
        state.in_flight() == 20
    })
    .await;
    node.node.request_stop();
    for r in requests {
        let r = r.await.expect("task").expect("answered, not cut");
        assert_eq!(r.status, 200);
        assert_eq!(r.served_by(), "a");
    }
    eventually("nothing in flight", Duration::from_secs(10), || async {
        state.in_flight() == 0
    })
    .await;
}
