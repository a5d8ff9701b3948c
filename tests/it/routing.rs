//! Routing by Host then path, and the 404 for requests no route claims.

use portico_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_specific_host_then_path_wins() {
    let names = ["exact", "health", "v1", "wild", "any"];
    let mut origins = Vec::new();
    for n in names {
        origins.push(origin(n).await);
    }
    let pools: Vec<String> = names
        .iter()
        .zip(&origins)
        .map(|(n, o)| {
            format!(
                r#"{{"name": "{n}", "origins": [{}]}}"#,
                origin_json(n, o.addr(), "")
            )
        })
        .collect();
    let config = format!(
        r#"{{"pools": [{}], "routes": [
            {{"name": "exact", "hosts": ["api.example.com"], "paths": ["/*"], "pool": "exact"}},
            {{"name": "health", "hosts": ["api.example.com"], "paths": ["/health"], "pool": "health"}},
            {{"name": "v1", "hosts": ["api.example.com"], "paths": ["/v1/*"], "pool": "v1"}},
            {{"name": "wild", "hosts": ["*.example.com"], "paths": ["/*"], "pool": "wild"}},
            {{"name": "any", "hosts": ["*"], "paths": ["/*"], "pool": "any"}}
        ]}}"#,
        pools.join(", ")
    );
    let node = TestNode::start(&config).await;
    let cases = [
        ("api.example.com", "/health", "health"),
        ("API.Example.com:8080", "/health", "health"),
        ("api.example.com", "/health/x", "exact"),
        ("api.example.com", "/v1/users", "v1"),
        ("api.example.com", "/v2", "exact"),
        ("www.example.com", "/v1/users", "wild"),
        ("example.com", "/", "any"),
        ("other.test", "/anything", "any"),
    ];
    for (host, path, want) in cases {
        let r = node
            .http
            .get_host(&format!("{}{path}", node.url), host)
            .await;
        assert_eq!(
            (r.status, r.served_by()),
            (200, want),
            "Host {host} path {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_a_short_404_not_a_hang_or_5xx() {
    let o = origin("o").await;
    let config = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "api", "hosts": ["api.example.com"], "paths": ["/api/*"], "pool": "p"}}]}}"#,
        origin_json("o", o.addr(), "")
    );
    let node = TestNode::start(&config).await;
    for (host, path) in [
        ("other.test", "/api/x"),
        ("api.example.com", "/web"),
        ("api.example.com", "/api"),
    ] {
        let r = node
            .http
            .get_host(&format!("{}{path}", node.url), host)
            .await;
        assert_eq!(r.status, 404, "Host {host} path {path}");
        assert!(
            r.text().starts_with("404 Not Found: no route for host"),
            "{}",
            r.text()
        );
        assert!(r.text().len() < 300);
        assert_eq!(r.header("x-portico-region"), Some("local"));
        assert!(r.header("x-request-id").is_some());
    }
    assert_eq!(o.stats().requests, 0);
    let ok = node
        .http
        .get_host(&format!("{}/api/x", node.url), "api.example.com")
        .await;
    assert_eq!((ok.status, ok.served_by()), (200, "o"));
    // Counted in the logging hook, after the response went out.
    eventually("three 404s counted", Duration::from_secs(5), || async {
        node.metrics()
            .await
            .sum("portico_requests_total", &[("code", "404"), ("route", "")])
            >= 3.0
    })
    .await;
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_requests_total", &[("code", "404"), ("route", "")]),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn among_ten_thousand_wildcard_routes_each_host_finds_its_own() {
    let names = ["w0", "w1", "w2", "any"];
    let mut origins = Vec::new();
    for n in names {
        origins.push(origin(n).await);
    }
    let pools: Vec<String> = names
        .iter()
        .zip(&origins)
        .map(|(n, o)| {
            format!(
                r#"{{"name": "{n}", "origins": [{}]}}"#,
                origin_json(n, o.addr(), "")
            )
        })
        .collect();
    let mut routes: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"name": "r{i}", "hosts": ["*.s{i}.example.com"], "pool": "w{}"}}"#,
                i % 3
            )
        })
        .collect();
    routes.push(r#"{"name": "any", "hosts": ["*"], "pool": "any"}"#.to_string());
    let config = format!(
        r#"{{"pools": [{}], "routes": [{}]}}"#,
        pools.join(", "),
        routes.join(", ")
    );
    let node = TestNode::start(&config).await;
    for (host, want) in [
        ("www.s0.example.com", "w0"),
        ("a.b.S4.Example.com:8080", "w1"),
        ("www.s9998.example.com.", "w2"),
        ("www.s9999.example.com", "w0"),
        ("s9999.example.com", "any"),
        ("www.s10000.example.com", "any"),
    ] {
        let r = node.http.get_host(&format!("{}/x", node.url), host).await;
        assert_eq!((r.status, r.served_by()), (200, want), "Host {host}");
    }
}
