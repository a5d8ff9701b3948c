//! Health probes as an origin sees them: method, path, headers, cadence, expected statuses.

use portico_core::config::Overrides;
use portico_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_carry_method_path_headers_and_keep_their_cadence() {
    let o = origin("o").await;
    let config = one_pool(
        &[origin_json("o", o.addr(), "")],
        r#""health_probe": {"path": "/probe-here?x=1", "method": "GET", "interval_ms": 100, "timeout_ms": 80}"#,
    );
    let overrides = Overrides {
        region: Some("eu-test".into()),
        ..Overrides::default()
    };
    let _node = TestNode::start_with(&config, &overrides).await;
    eventually("six probes", Duration::from_secs(10), || async {
        o.stats().probes >= 6
    })
    .await;
    let probes: Vec<_> = o.log().into_iter().filter(|r| r.probe).collect();
    assert!(probes.len() >= 6);
    for p in &probes {
        assert_eq!(p.method, "GET");
        assert_eq!(p.path, "/probe-here?x=1");
        assert_eq!(header(p, "user-agent"), Some("portico-health-probe"));
        assert_eq!(header(p, "x-portico-health-probe"), Some("1"));
        assert_eq!(header(p, "x-portico-region"), Some("eu-test"));
        assert_eq!(header(p, "host"), Some(o.addr().to_string().as_str()));
    }
    // Probes are scheduled from the start of each pass, so they never come faster than the
    // interval (a little slack for when the connection is made).
    for pair in probes.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(70),
            "probes {gap:?} apart with a 100 ms interval"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_probe_is_head_slash_and_host_header_follows_the_origin() {
    let o = origin("o").await;
    let config = one_pool(
        &[origin_json(
            "o",
            o.addr(),
            r#", "host_header": "api.internal""#,
        )],
        FAST_PROBES,
    );
    let _node = TestNode::start(&config).await;
    eventually("a probe", Duration::from_secs(5), || async {
        o.stats().probes >= 1
    })
    .await;
    let p = o
        .log()
        .into_iter()
        .find(|r| r.probe)
        .expect("a probe record");
    assert_eq!((p.method.as_str(), p.path.as_str()), ("HEAD", "/"));
    assert_eq!(header(&p, "host"), Some("api.internal"));
    assert_eq!(header(&p, "x-portico-region"), Some("local"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_status_accepts_codes_and_ranges() {
    let a = origin("a").await;
    let b = origin("b").await;
    let c = origin("c").await;
    let pool = |name: &str, origin: String, probe: &str| {
        format!(
            r#"{{"name": "{name}", "origins": [{origin}],
                "health_probe": {{"interval_ms": 100, "timeout_ms": 80, {probe}}}}}"#
        )
    };
    let config = format!(
        r#"{{"pools": [{}, {}, {}],
            "routes": [{{"name": "r", "pool": "range"}}]}}"#,
        pool(
            "range",
            origin_json("a", a.addr(), ""),
            r#""path": "/status/204", "expected_status": ["200-299"]"#
        ),
        pool(
            "exact",
            origin_json("b", b.addr(), ""),
            r#""path": "/status/204", "expected_status": [200]"#
        ),
        pool(
            "mixed",
            origin_json("c", c.addr(), ""),
            r#""path": "/status/302", "expected_status": [200, "301-302"]"#
        ),
    );
    let node = TestNode::start(&config).await;
    eventually("four probes each", Duration::from_secs(10), || async {
        a.stats().probes >= 4 && b.stats().probes >= 4 && c.stats().probes >= 4
    })
    .await;
    node.wait_health("exact", "b", false).await;
    assert_eq!(node.origin_status("range", "a").await["healthy"], true);
    assert_eq!(node.origin_status("mixed", "c").await["healthy"], true);
    assert_eq!(
        node.origin_status("range", "a").await["last_probe"],
        "success"
    );
    assert_eq!(
        node.origin_status("exact", "b").await["last_probe"],
        "failure"
    );
}
