//! Live configuration: reloads under load drop nothing and take effect at once, invalid or
//! restart-only changes change nothing, origin state survives, new origins wait for a probe,
//! and the admin write API checks its token and `If-Match`.

use http::Method;
use portico::state::ReloadSource;
use portico_origin::Fault;
use portico_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Two origins; `first` has priority 1, the other priority 2.
fn two(a: &str, b: &str, first: &str, extra: &str) -> String {
    let (pa, pb) = if first == "a" { (1, 2) } else { (2, 1) };
    one_pool(
        &[
            format!(r#"{{"name": "a", "address": "{a}", "priority": {pa}}}"#),
            format!(r#"{{"name": "b", "address": "{b}", "priority": {pb}}}"#),
        ],
        &format!("{FAST_PROBES}{extra}"),
    )
}

/// Open-loop GETs (a new request every 2 ms, on a keep-alive and a new-connection client)
/// until stopped; counts answers and failures.
struct Background {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    fn start(url: &str) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f, url) = (stop.clone(), ok.clone(), failed.clone(), url.to_string());
        let task = tokio::spawn(async move {
            let clients = [Http::new(), Http::no_keepalive()];
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            let mut inflight = tokio::task::JoinSet::new();
            let mut n = 0usize;
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let (client, url, o, f) =
                    (clients[n % 2].clone(), url.clone(), o.clone(), f.clone());
                n += 1;
                inflight.spawn(async move {
                    match client
                        .request(Method::GET, &url, &[], bytes::Bytes::new())
                        .await
                    {
                        Ok(r) if r.status == 200 => {
                            o.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            f.lock()
                                .unwrap()
                                .push(format!("status {}: {}", r.status, r.text()))
                        }
                        Err(e) => f.lock().unwrap().push(e),
                    }
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        });
        Background {
            stop,
            ok,
            failed,
            task,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_drop_nothing_and_each_takes_effect_at_once() {
    let a = origin("a").await;
    let b = origin("b").await;
    // Hedging off: on a loaded machine a GET slower than the pool's p95 is hedged to the
    // other origin, which may answer first — right for a client, but not the config's
    // preference this test checks after each reload.
    let no_hedge = r#", "failover": {"hedging": {"enabled": false}}"#;
    let configs = [
        two(&a.addr().to_string(), &b.addr().to_string(), "a", no_hedge),
        two(&a.addr().to_string(), &b.addr().to_string(), "b", no_hedge),
    ];
    let node = TestNode::start(&configs[0]).await;
    node.wait_latencies("p", &["a", "b"]).await;
    let load = Background::start(&format!("{}/", node.url));
    let fresh = Http::no_keepalive();
    for i in 1..=100 {
        let applied = node
            .node
            .apply(&configs[i % 2], ReloadSource::Admin)
            .await
            .unwrap_or_else(|e| panic!("reload {i}: {e}"));
        assert!(applied.changed);
        let want = if i % 2 == 0 { "a" } else { "b" };
        // Requests that start after the reload returned follow the new config, on a kept-alive
        // connection and on a new one.
        assert_eq!(
            node.get("/").await.served_by(),
            want,
            "reload {i}, keep-alive"
        );
        let r = fresh.get(&format!("{}/", node.url)).await;
        assert_eq!(r.served_by(), want, "reload {i}, new connection");
        // Let the background load cross this config before the next reload.
        let seen = load.ok.load(Ordering::Relaxed);
        eventually("background answers", Duration::from_secs(10), || async {
            load.ok.load(Ordering::Relaxed) >= seen + 4
        })
        .await;
    }
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok >= 400, "the load ran ({ok} answers)");
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_config_reloads_total",
            &[("source", "admin"), ("result", "applied")]
        ),
        100.0
    );
    assert!(m.sum("portico_config_last_reload_success_timestamp_seconds", &[]) > 1.6e9);
}

#[tokio::test]
async fn an_invalid_reload_changes_nothing_and_shows_every_error_by_path() {
    let a = origin("a").await;
    let b = origin("b").await;
    let good = two(&a.addr().to_string(), &b.addr().to_string(), "a", "");
    let node = TestNode::start(&good).await;
    let before = node.status().await["config_version"].clone();
    let bad = good
        .replace(&b.addr().to_string(), "not-an-address")
        .replace(r#""name": "r""#, r#""name": "r", "colour": "red""#);
    let errors = node
        .node
        .apply(&bad, ReloadSource::File)
        .await
        .expect_err("invalid");
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"pools[0].origins[1].address"), "{paths:?}");
    assert!(paths.contains(&"routes[0].colour"), "{paths:?}");
    let s = node.status().await;
    assert_eq!(s["config_version"], before, "the running config stays");
    assert_eq!(s["last_reload"]["result"], "rejected");
    assert_eq!(s["last_reload"]["source"], "file");
    let listed: Vec<&str> = s["last_reload"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(listed, paths);
    assert_eq!(node.get("/").await.served_by(), "a");
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_config_reloads_total",
            &[("source", "file"), ("result", "rejected")]
        ),
        1.0
    );
}

#[tokio::test]
async fn restart_only_fields_are_rejected_at_their_path() {
    let a = origin("a").await;
    let config = one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES);
    let node = TestNode::start(&config).await;
    let changed = config.replacen('{', r#"{"node": {"threads": 2},"#, 1);
    let errors = node
        .node
        .apply(&changed, ReloadSource::Admin)
        .await
        .expect_err("threads need a restart");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "node.threads");
    assert!(errors.0[0].message.contains("needs a restart"), "{errors}");
    // A live field beside it (drain_ms) is fine on its own.
    let live = config.replacen('{', r#"{"node": {"drain_ms": 10},"#, 1);
    node.node
        .apply(&live, ReloadSource::Admin)
        .await
        .expect("drain_ms applies live");
}

#[tokio::test]
async fn an_ejected_origin_stays_ejected_and_health_is_kept_across_a_reload() {
    let a = origin("a").await;
    let b = origin("b").await;
    let eject =
        r#", "failover": {"ejection": {"consecutive_failures": 2, "base_ejection_ms": 600000}}"#;
    let config = two(&a.addr().to_string(), &b.addr().to_string(), "a", eject);
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a", "b"]).await;
    a.set_fault(Fault::Status(503));
    eventually("a is ejected", Duration::from_secs(10), || async {
        let _ = node.get("/").await;
        node.origin_status("p", "a").await["ejected"] == true
    })
    .await;
    let b_before = node.origin_status("p", "b").await;
    a.set_fault(Fault::None);
    // A reload that changes the pool (b's weight) and the routes keeps both origins' state.
    let reloaded = config
        .replace(r#""priority": 2}"#, r#""priority": 2, "weight": 7}"#)
        .replace(r#""name": "r""#, r#""name": "r2""#);
    assert_ne!(reloaded, config);
    let applied = node
        .node
        .apply(&reloaded, ReloadSource::Admin)
        .await
        .expect("valid");
    assert!(applied.changed);
    let oa = node.origin_status("p", "a").await;
    assert_eq!(oa["ejected"], true, "an ejected origin stays ejected: {oa}");
    let ob = node.origin_status("p", "b").await;
    assert_eq!(ob["weight"], 7);
    assert_eq!(ob["healthy"], true);
    assert!(ob["latency_ms"].is_number(), "b keeps its latency: {ob}");
    assert!(
        ob["window"]["samples"].as_u64() >= b_before["window"]["samples"].as_u64(),
        "b keeps its health window: {b_before} -> {ob}"
    );
    for _ in 0..20 {
        assert_eq!(node.get("/").await.served_by(), "b");
    }
}

#[tokio::test]
async fn a_new_origin_takes_no_traffic_before_its_first_good_probe() {
    let a = origin("a").await;
    let c = origin("c").await;
    c.set_fault(Fault::Status(500));
    let config = one_pool(
        &[origin_json("a", a.addr(), r#", "priority": 2"#)],
        FAST_PROBES,
    );
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a"]).await;
    let with_c = one_pool(
        &[
            origin_json("a", a.addr(), r#", "priority": 2"#),
            origin_json("c", c.addr(), r#", "priority": 1"#),
        ],
        FAST_PROBES,
    );
    node.node
        .apply(&with_c, ReloadSource::Admin)
        .await
        .expect("valid");
    // c answers 500 to its probes: it is probed but never chosen, although its priority wins.
    eventually("c has been probed", Duration::from_secs(10), || async {
        node.origin_status("p", "c").await["last_probe"] == "failure"
    })
    .await;
    let oc = node.origin_status("p", "c").await;
    assert_eq!(oc["healthy"], false, "{oc}");
    assert_eq!(oc["awaiting_first_probe"], true, "{oc}");
    for _ in 0..30 {
        assert_eq!(node.get("/").await.served_by(), "a");
    }
    assert_eq!(c.stats().requests, 0, "c saw no client request");
    // Its first good probe lets it in, and its priority takes the traffic.
    c.set_fault(Fault::None);
    eventually("c takes the traffic", Duration::from_secs(10), || async {
        node.get("/").await.served_by() == "c"
    })
    .await;
}

#[tokio::test]
async fn the_admin_api_checks_token_if_match_and_validates() {
    let a = origin("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").expect("write token");
    let config = one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES).replacen(
        '{',
        &format!(
            r#"{{"node": {{"admin_token_file": "{}"}},"#,
            token_file.display()
        ),
        1,
    );
    let node = TestNode::start(&config).await;
    let url = format!("{}/config", node.admin);
    let get = node.http.get(&url).await;
    assert_eq!(get.status, 200);
    let version = node.status().await["config_version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get.header("etag"), Some(format!("\"{version}\"").as_str()));
    assert_eq!(
        get.text(),
        config,
        "GET /config returns the running document"
    );

    let changed = config.replace(r#""name": "r""#, r#""name": "r2""#);
    let put = |headers: Vec<(&'static str, String)>, body: String| {
        let http = node.http.clone();
        let url = url.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http.request(Method::PUT, &url, &h, body)
                .await
                .expect("PUT")
        }
    };
    let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
    assert_eq!(put(vec![], changed.clone()).await.status, 401);
    assert_eq!(
        put(vec![bearer("wrong")], changed.clone()).await.status,
        401
    );
    let stale = put(
        vec![
            bearer("s3cret"),
            ("if-match", "\"0000000000000000\"".into()),
        ],
        changed.clone(),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    let bad = put(
        vec![bearer("s3cret")],
        changed.replace(r#""pool": "p""#, r#""pool": "nope""#),
    )
    .await;
    assert_eq!(bad.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&bad.body).expect("JSON");
    assert_eq!(body["errors"][0]["path"], "routes[0].pool", "{body}");
    assert!(body["errors"][0]["message"].is_string());
    let ok = put(
        vec![bearer("s3cret"), ("if-match", format!("\"{version}\""))],
        changed.clone(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let body: serde_json::Value = serde_json::from_slice(&ok.body).expect("JSON");
    let new_version = body["version"].as_str().expect("version").to_string();
    assert_ne!(new_version, version);
    let s = node.status().await;
    assert_eq!(s["config_version"], new_version.as_str());
    assert_eq!(s["routes"][0]["name"], "r2");
    assert_eq!(s["last_reload"]["source"], "admin");

    // A node without a token refuses writes.
    let open = TestNode::start(&one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES)).await;
    let r = open
        .http
        .request(
            Method::PUT,
            &format!("{}/config", open.admin),
            &[("authorization", "Bearer x")],
            changed,
        )
        .await
        .expect("PUT");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("admin writes are disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let a = origin("a").await;
    let b = origin("b").await;
    let only_a = one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES);
    let only_b = one_pool(&[origin_json("b", b.addr(), "")], FAST_PROBES);
    let node = TestNode::start(&only_a).await;
    let (http, url) = (node.http.clone(), format!("{}/", node.url));
    let slow = tokio::spawn(async move {
        http.request(
            Method::GET,
            &url,
            &[("x-origin-delay-ms", "500")],
            bytes::Bytes::new(),
        )
        .await
    });
    let state = node.node.state().clone();
    eventually(
        "the slow request is in flight",
        Duration::from_secs(10),
        || async { state.in_flight() == 1 },
    )
    .await;
    // The reload removes the origin the slow request is waiting on.
    node.node
        .apply(&only_b, ReloadSource::Admin)
        .await
        .expect("valid");
    assert_eq!(
        node.get("/").await.served_by(),
        "b",
        "new requests use the new config"
    );
    let r = slow.await.expect("task").expect("answered");
    assert_eq!(
        (r.status, r.served_by()),
        (200, "a"),
        "the old config saw it through"
    );
}
