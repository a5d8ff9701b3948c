//! The admin listener: metrics families and labels, `/status`, `/healthz`.

use portico_core::config::Overrides;
use portico_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_describe_the_node() {
    let a = origin("a").await;
    let b = origin("b").await;
    let config = one_pool(
        &[
            origin_json("a", a.addr(), r#", "region": "eu-west", "weight": 10"#),
            origin_json("b", b.addr(), r#", "priority": 2"#),
        ],
        FAST_PROBES,
    );
    let overrides = Overrides {
        region: Some("us-east".into()),
        ..Overrides::default()
    };
    let node = TestNode::start_with(&config, &overrides).await;
    node.wait_latencies("p", &["a", "b"]).await;
    for _ in 0..5 {
        assert_eq!(node.get("/").await.served_by(), "a");
    }

    // Pingora runs the logging hook (where requests are counted) after the response went out,
    // so the last request may show up a moment after the client has its answer.
    let labels = [
        ("route", "r"),
        ("pool", "p"),
        ("origin", "a"),
        ("code", "200"),
    ];
    eventually(
        "five requests counted",
        std::time::Duration::from_secs(5),
        || async {
            node.metrics().await.sum("portico_requests_total", &labels) == 5.0
                && node.metrics().await.sum(
                    "portico_request_duration_seconds_count",
                    &[("route", "r"), ("pool", "p")],
                ) == 5.0
        },
    )
    .await;
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_requests_total",
            &[
                ("route", "r"),
                ("pool", "p"),
                ("origin", "a"),
                ("code", "200")
            ]
        ),
        5.0
    );
    assert_eq!(
        m.sum(
            "portico_request_duration_seconds_count",
            &[("route", "r"), ("pool", "p")]
        ),
        5.0
    );
    assert!(m.has(
        "portico_request_duration_seconds_bucket",
        &[("le", "0.005")]
    ));
    assert_eq!(
        m.sum("portico_origin_healthy", &[("pool", "p"), ("origin", "a")]),
        1.0
    );
    assert_eq!(
        m.sum("portico_origin_healthy", &[("pool", "p"), ("origin", "b")]),
        1.0
    );
    let latency = m.sum(
        "portico_origin_latency_seconds",
        &[("pool", "p"), ("origin", "a")],
    );
    assert!(latency > 0.0 && latency < 1.0, "latency {latency}");
    assert!(
        m.sum(
            "portico_probes_total",
            &[("pool", "p"), ("origin", "b"), ("result", "success")]
        ) >= 1.0
    );
    assert!(m.has(
        "portico_probes_total",
        &[("origin", "b"), ("result", "failure")]
    ));
    assert_eq!(
        m.sum(
            "portico_node_info",
            &[("region", "us-east"), ("build", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let s = node.status().await;
    assert_eq!(s["region"], "us-east");
    assert_eq!(s["config_version"].as_str().map(str::len), Some(16));
    let version = s["config_version"].as_str().unwrap_or_default();
    assert_eq!(
        m.sum("portico_node_info", &[("version", version)]),
        1.0,
        "portico_node_info carries the running config version"
    );
    assert_eq!(s["config_source"], "inline");
    let oa = node.origin_status("p", "a").await;
    assert_eq!(oa["address"], a.addr().to_string());
    assert_eq!(
        (oa["priority"].as_u64(), oa["weight"].as_u64()),
        (Some(1), Some(10))
    );
    assert_eq!(
        (oa["enabled"].as_bool(), oa["healthy"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(oa["region"], "eu-west");
    assert_eq!(oa["last_probe"], "success");
    assert!(oa["latency_ms"].as_f64().is_some_and(|l| l > 0.0));
    assert_eq!(oa["preferred"], true);
    assert_eq!(node.origin_status("p", "b").await["preferred"], false);

    // A probe failing shows up in health, metrics and status.
    b.set_fault(portico_origin::Fault::Status(503));
    node.wait_health("p", "b", false).await;
    let m = node.metrics().await;
    assert_eq!(m.sum("portico_origin_healthy", &[("origin", "b")]), 0.0);
    assert!(
        m.sum(
            "portico_probes_total",
            &[("origin", "b"), ("result", "failure")]
        ) >= 2.0
    );
    assert_eq!(node.origin_status("p", "b").await["last_probe"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_then_503_while_draining() {
    let o = origin("o").await;
    let config = one_pool(&[origin_json("o", o.addr(), "")], "").replacen(
        '{',
        r#"{"node": {"drain_ms": 3000}, "#,
        1,
    );
    let node = TestNode::start(&config).await;
    let healthz = format!("{}/healthz", node.admin);
    let r = node.http.get(&healthz).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    node.node.request_stop();
    eventually("/healthz says draining", Duration::from_secs(3), || async {
        node.http.get(&healthz).await.status == 503
    })
    .await;
    // Still serving while draining, and telling clients to go elsewhere.
    let r = node.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(node.metrics().await.sum("portico_draining", &[]), 1.0);
}
