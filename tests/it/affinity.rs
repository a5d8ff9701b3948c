//! Session affinity (`pools[].load_balancing.session_affinity`): the cookie set on a response
//! names the origin that answered, later requests bearing it go there, and the pin breaks
//! (and the cookie is replaced) when that origin is ejected or no longer in the pool. On the
//! hedged path (GET, the default) and on Pingora's proxy loop (hedging off) alike.

use http::Method;
use portico_origin::{Fault, OriginHandle};
use portico_tests::*;
use std::time::Duration;

const STICKY: &str = r#""load_balancing": {"session_affinity": {"cookie": "stick"}}"#;
const NO_HEDGING: &str =
    r#""failover": {"hedging": {"enabled": false}, "ejection": {"consecutive_failures": 1}}"#;
const HEDGING: &str = r#""failover": {"ejection": {"consecutive_failures": 1}}"#;

/// A node with one sticky pool `p` of origins `a`, `b`, `c` (equal priority and weight), the
/// origins, and the node's latencies known.
async fn sticky_pool(failover: &str) -> (TestNode, Vec<OriginHandle>) {
    let mut origins = Vec::new();
    let mut entries = Vec::new();
    for name in ["a", "b", "c"] {
        let o = origin(name).await;
        entries.push(origin_json(name, o.addr(), ""));
        origins.push(o);
    }
    let node = TestNode::start(&one_pool(&entries, &format!("{STICKY}, {failover}"))).await;
    node.wait_latencies("p", &["a", "b", "c"]).await;
    (node, origins)
}

async fn get(node: &TestNode, cookie: Option<&str>) -> Resp {
    let url = format!("{}/", node.url);
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    node.http
        .request(Method::GET, &url, &headers, bytes::Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET /: {e}"))
}

/// The origin a `Set-Cookie: stick=NAME; ...` names.
fn pinned_to(r: &Resp) -> Option<String> {
    let v = r.header("set-cookie")?;
    let (pair, attributes) = v.split_once(';')?;
    assert_eq!(attributes, " Path=/; HttpOnly; SameSite=Lax", "{v}");
    pair.strip_prefix("stick=").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stays_on_the_origin_that_answered_it_first() {
    for failover in [HEDGING, NO_HEDGING] {
        let (node, _origins) = sticky_pool(failover).await;
        let first = get(&node, None).await;
        assert_eq!(first.status, 200);
        let origin = pinned_to(&first).expect("the first answer pins the client");
        assert_eq!(
            origin,
            first.served_by(),
            "the cookie names the origin that answered"
        );
        let cookie = format!("other=1; stick={origin}");
        for _ in 0..30 {
            let r = get(&node, Some(&cookie)).await;
            assert_eq!(r.served_by(), origin, "{failover}");
            assert_eq!(
                r.header("set-cookie"),
                None,
                "an unchanged pin is not set again"
            );
        }
        // A pin to each origin holds, whatever selection alone would draw.
        for name in ["a", "b", "c"] {
            for _ in 0..5 {
                let r = get(&node, Some(&format!("stick={name}"))).await;
                assert_eq!(r.served_by(), name);
            }
        }
        // Without the cookie, requests spread as selection draws them (no hidden stickiness).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..60 {
            let r = get(&node, None).await;
            assert_eq!(pinned_to(&r).as_deref(), Some(r.served_by()));
            seen.insert(r.served_by().to_string());
        }
        assert!(
            seen.len() > 1,
            "60 cookie-less requests all went to {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pin_breaks_and_is_replaced_when_its_origin_is_ejected() {
    for failover in [HEDGING, NO_HEDGING] {
        let (node, origins) = sticky_pool(failover).await;
        let a = &origins[0];
        assert_eq!(get(&node, Some("stick=a")).await.served_by(), "a");
        // `a` answers 503: the retry goes to another origin, the failure ejects `a`, and the
        // response pins the client to the origin that answered.
        a.set_fault(Fault::Status(503));
        let r = get(&node, Some("stick=a")).await;
        assert_eq!(r.status, 200, "{failover}");
        assert_ne!(r.served_by(), "a");
        assert_eq!(pinned_to(&r).as_deref(), Some(r.served_by()));
        eventually("a is ejected", Duration::from_secs(10), || async {
            node.origin_status("p", "a").await["ejected"] == true
        })
        .await;
        // While `a` is out, its pinned clients are chosen anew, without a failed attempt.
        let before = a.stats().requests;
        for _ in 0..10 {
            let r = get(&node, Some("stick=a")).await;
            assert_ne!(r.served_by(), "a");
            assert_eq!(pinned_to(&r).as_deref(), Some(r.served_by()));
        }
        assert_eq!(
            a.stats().requests,
            before,
            "no request went to the ejected origin"
        );
        a.set_fault(Fault::None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_naming_no_origin_of_the_pool_is_replaced() {
    let (node, _origins) = sticky_pool(HEDGING).await;
    for stale in ["stick=gone", "stick=", "stick=127.0.0.1:1"] {
        let r = get(&node, Some(stale)).await;
        assert_eq!(r.status, 200);
        assert_eq!(pinned_to(&r).as_deref(), Some(r.served_by()), "{stale}");
    }
    // A pool without affinity sets no cookie and ignores one.
    let o = origin("x").await;
    let plain = TestNode::start(&one_pool(&[origin_json("x", o.addr(), "")], "")).await;
    let r = get(&plain, Some("stick=a")).await;
    assert_eq!(r.served_by(), "x");
    assert_eq!(r.header("set-cookie"), None);
}
