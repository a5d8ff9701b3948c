//! Request head rules: Host required on HTTP/1.1, absolute-form targets, HTTP/1.0 forwarded
//! with a Host, hop-by-hop headers kept on their hop.

use portico_tests::*;

/// A node whose only route serves `shop.example.com`.
async fn shop() -> (TestNode, portico_origin::OriginHandle) {
    let o = origin("o").await;
    let config = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "shop", "hosts": ["shop.example.com"], "pool": "p"}}]}}"#,
        origin_json("o", o.addr(), "")
    );
    (TestNode::start(&config).await, o)
}

#[tokio::test]
async fn http_1_1_without_host_is_a_400_and_never_forwarded() {
    let (node, o) = shop().await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let r = raw(&addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("needs a Host header"), "{r}");
    assert_eq!(o.stats().requests, 0);
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_by_its_authority_and_sent_in_origin_form() {
    let (node, o) = shop().await;
    let addr = node.url.trim_start_matches("http://").to_string();
    // Without a Host header: the authority routes it, and becomes the Host sent on.
    let r = raw(
        &addr,
        b"GET http://shop.example.com/cart?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = last_request(&o);
    assert_eq!(seen.path, "/cart?x=1");
    assert_eq!(header(&seen, "host"), Some("shop.example.com"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("shop.example.com"));
    // A Host header that names another host is ambiguous: refused before routing
    // (Pingora's own check), never forwarded.
    let before = o.stats().requests;
    let r = raw(
        &addr,
        b"GET http://shop.example.com/ HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(o.stats().requests, before);
}

#[tokio::test]
async fn http_1_0_without_host_is_forwarded_with_one() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let r = raw(&addr, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.") && r.contains(" 200 "), "{r}");
    let seen = last_request(&o);
    assert_eq!(header(&seen, "host"), Some(o.addr().to_string().as_str()));
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_origin() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let r = raw(
        &addr,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
          Trailer: Expires\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = last_request(&o);
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(
            header(&seen, gone),
            None,
            "{gone} was forwarded: {:?}",
            seen.headers
        );
    }
    assert_eq!(header(&seen, "x-kept"), Some("yes"));
}
