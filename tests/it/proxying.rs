//! What a request looks like on the way through: headers, bodies, concurrency, errors.

use bytes::Bytes;
use http::Method;
use portico_origin::{Fault, fnv1a, pattern_byte};
use portico_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_reach_the_origin_and_ids_come_back() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;

    let r = node
        .http
        .request(
            Method::GET,
            &format!("{}/a?b=c", node.url),
            &[
                ("host", "shop.example.com"),
                ("x-forwarded-for", "203.0.113.9"),
                ("via", "1.0 corp-proxy"),
                ("x-request-id", "req-123"),
            ],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("req-123"));
    assert_eq!(r.header("x-portico-region"), Some("local"));
    let seen = last_request(&o);
    assert_eq!(seen.path, "/a?b=c");
    assert_eq!(header(&seen, "host"), Some("shop.example.com"));
    assert_eq!(
        header(&seen, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(
        header(&seen, "via"),
        Some("1.0 corp-proxy, 1.1 portico-local")
    );
    assert_eq!(header(&seen, "x-portico-region"), Some("local"));
    assert_eq!(header(&seen, "x-request-id"), Some("req-123"));

    let r = node.get("/").await;
    let id = r.header("x-request-id").expect("generated id").to_string();
    assert_eq!(id.len(), 32);
    let seen = last_request(&o);
    assert_eq!(header(&seen, "x-request-id"), Some(id.as_str()));
    assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "via"), Some("1.1 portico-local"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_of_the_origin_replaces_the_clients() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(
        &[origin_json(
            "o",
            o.addr(),
            r#", "host_header": "backend.internal""#,
        )],
        "",
    ))
    .await;
    let r = node
        .http
        .get_host(&format!("{}/", node.url), "www.example.com")
        .await;
    assert_eq!(r.status, 200);
    let seen = last_request(&o);
    assert_eq!(header(&seen, "host"), Some("backend.internal"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("www.example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_already_passed_this_node_is_a_loop() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;
    let r = node
        .http
        .request(
            Method::GET,
            &format!("{}/", node.url),
            &[("via", "1.1 cdn, 1.1 portico-local")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 508);
    assert!(r.text().contains("portico-local"), "{}", r.text());
    assert_eq!(o.stats().requests, 0);
    // Another region's node in Via is not a loop.
    let r = node
        .http
        .request(
            Method::GET,
            &format!("{}/", node.url),
            &[("via", "1.1 portico-eu-west")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_intact_both_ways() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;

    let upload: Vec<u8> = (0..5 * 1024 * 1024u64)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let r = node
        .http
        .request(
            Method::POST,
            &format!("{}/echo", node.url),
            &[],
            upload.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body-length"), Some("5242880"));
    assert_eq!(
        r.header("x-body-fnv"),
        Some(format!("{:016x}", fnv1a(&upload)).as_str())
    );

    for query in ["", "?chunked=1"] {
        let r = node.get(&format!("/bytes/20971520{query}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 20 * 1024 * 1024, "{query}");
        let bad = r
            .body
            .iter()
            .enumerate()
            .position(|(i, &b)| b != pattern_byte(i as u64));
        assert_eq!(bad, None, "first corrupt byte {query}");
    }

    // Bodies leave as the origin encoded them: a client that accepts compression gets the
    // origin's identity body, not one Portico compressed.
    let r = node
        .http
        .request(
            Method::GET,
            &format!("{}/bytes/65536", node.url),
            &[("accept-encoding", "gzip, br, zstd")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body.len(), 65536);
    let bad = r
        .body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern_byte(i as u64));
    assert_eq!(bad, None, "first corrupt byte with accept-encoding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_get_no_error() {
    let a = origin("a").await;
    let b = origin("b").await;
    let node = TestNode::start(&one_pool(
        &[
            origin_json("a", a.addr(), ""),
            origin_json("b", b.addr(), ""),
        ],
        "",
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let http = Http::new();
        let url = format!("{}/", node.url);
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..25 {
                match http.request(Method::GET, &url, &[], Bytes::new()).await {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status)),
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // Requests are counted in the logging hook, after the response went out: the last few
    // may show up a moment after their clients have the answer.
    eventually(
        "all 1,600 requests counted",
        Duration::from_secs(5),
        || async {
            node.metrics()
                .await
                .sum("portico_requests_total", &[("code", "200")])
                >= 64.0 * 25.0
        },
    )
    .await;
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_requests_total", &[("code", "200")]),
        64.0 * 25.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_left_to_try_is_a_502_and_a_response_timeout_a_504() {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(
        &[origin_json("o", o.addr(), "")],
        r#""timeouts": {"connect_ms": 500, "response_ms": 300}"#,
    ))
    .await;
    o.set_fault(Fault::Refuse);
    let r = node.get("/").await;
    assert_eq!(r.status, 502);
    assert!(r.text().starts_with("502 Bad Gateway"), "{}", r.text());
    assert!(r.header("x-request-id").is_some());

    o.set_fault(Fault::Hang);
    eventually("origin accepts again", Duration::from_secs(5), || async {
        std::net::TcpStream::connect(o.addr()).is_ok()
    })
    .await;
    let r = node.get("/").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().starts_with("504 Gateway Timeout"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_kept_only_from_trusted_proxies() {
    let o = origin("o").await;
    let spoofed = [
        ("host", "shop.example.com"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("x-portico-region", "mars"),
        ("x-portico-health-probe", "1"),
    ];
    // Anyone: replaced by Portico's own values; the probe marker never passes.
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;
    let r = node
        .http
        .request(
            Method::GET,
            &format!("{}/", node.url),
            &spoofed,
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let seen = last_request(&o);
    assert_eq!(header(&seen, "x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&seen, "x-portico-region"), Some("local"));
    assert_eq!(header(&seen, "x-portico-health-probe"), None);
    // A trusted proxy (this test's loopback address): its forwarding headers are kept.
    let trusting = one_pool(&[origin_json("o", o.addr(), "")], "").replacen(
        '{',
        r#"{"node": {"trusted_proxies": ["127.0.0.0/8"]},"#,
        1,
    );
    let node = TestNode::start(&trusting).await;
    node.http
        .request(
            Method::GET,
            &format!("{}/", node.url),
            &spoofed,
            Bytes::new(),
        )
        .await
        .unwrap();
    let seen = last_request(&o);
    assert_eq!(header(&seen, "x-forwarded-host"), Some("evil.example"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&seen, "x-portico-region"), Some("mars"));
    assert_eq!(header(&seen, "x-portico-health-probe"), None);
}
