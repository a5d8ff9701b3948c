//! Rule sets (edge policy): each condition, each action, templates with regex captures,
//! `stop`, rule sets in order, response headers on node-written replies, rate limits (accuracy
//! per client, 429 headers, buckets across a reload), metrics, the trace and the access log.

use bytes::Bytes;
use http::Method;
use portico::state::ReloadSource;
use portico_origin::{Fault, OriginHandle};
use portico_tests::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A config with pools `p` (of `main`) and `canary` (of `canary`), `rule_sets`, and one
/// catch-all route `r` naming `route_sets`; loopback is a trusted proxy, so tests pose as
/// other clients with `X-Forwarded-For`.
fn config(main: &[String], canary: &OriginHandle, rule_sets: Value, route_sets: &[&str]) -> String {
    json!({
        "node": {"trusted_proxies": ["127.0.0.0/8"]},
        "pools": [
            {"name": "p", "origins": main.iter().map(|o| serde_json::from_str::<Value>(o).unwrap()).collect::<Vec<_>>()},
            {"name": "canary", "origins": [{"name": "c", "address": canary.addr().to_string()}]}
        ],
        "rule_sets": rule_sets,
        "routes": [{"name": "r", "pool": "p", "rule_sets": route_sets}]
    })
    .to_string()
}

/// A rule that sets response header `x-hit-NAME: 1` when `when` holds.
fn marker(name: &str, when: Value) -> Value {
    json!({"name": name, "when": when,
           "then": {"response_headers": {"set": {format!("x-hit-{name}"): "1"}}}})
}

async fn send(node: &TestNode, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    node.http
        .request(
            method,
            &format!("{}{path}", node.url),
            headers,
            Bytes::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The markers a response carries, sorted.
fn hits(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = r
        .headers
        .keys()
        .filter_map(|k| k.as_str().strip_prefix("x-hit-").map(str::to_string))
        .collect();
    v.sort();
    v
}

/// A request (method, path, headers) and the markers it should get beside the usual ones.
type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[tokio::test]
async fn each_condition_matches_exactly_its_requests() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rules = json!([{"name": "conds", "rules": [
        marker("method", json!({"methods": ["POST"]})),
        marker("path", json!({"paths": ["/exact", "/api/*"]})),
        marker("regex", json!({"path_regex": "^/items/[0-9]+$"})),
        marker("header", json!({"headers": [{"name": "X-Team", "equals": "blue"}]})),
        marker("header-regex", json!({"headers": [{"name": "user-agent", "regex": "^curl/"}]})),
        marker("absent", json!({"headers": [{"name": "authorization", "absent": true}]})),
        marker("query", json!({"query": [{"name": "debug", "present": true}]})),
        marker("cookie", json!({"cookies": [{"name": "session", "regex": "^s-"}]})),
        marker("inside", json!({"client_ips": ["203.0.113.0/24"]})),
        marker("outside", json!({"not_client_ips": ["203.0.113.0/24", "127.0.0.0/8"]})),
        marker("http", json!({"schemes": ["http"]})),
        marker("https", json!({"schemes": ["https"]})),
        marker("both", json!({"methods": ["GET"], "paths": ["/api/*"], "query": [{"name": "v", "equals": "2"}]}))
    ]}]);
    let node = TestNode::start(&config(
        &[origin_json("a", a.addr(), "")],
        &c,
        rules,
        &["conds"],
    ))
    .await;
    let base = ["absent", "http"];
    let cases: &[Case] = &[
        (Method::GET, "/", &[], &[]),
        (Method::POST, "/", &[], &["method"]),
        (Method::GET, "/exact", &[], &["path"]),
        (Method::GET, "/exact/no", &[], &[]),
        (Method::GET, "/api/x?v=2", &[], &["both", "path"]),
        (Method::GET, "/api/x?v=3&debug", &[], &["path", "query"]),
        (Method::GET, "/items/42", &[], &["regex"]),
        (Method::GET, "/items/42/x", &[], &[]),
        (Method::GET, "/", &[("x-team", "blue")], &["header"]),
        (Method::GET, "/", &[("x-team", "Blue")], &[]),
        (
            Method::GET,
            "/",
            &[("user-agent", "curl/8.0")],
            &["header-regex"],
        ),
        (
            Method::GET,
            "/",
            &[("cookie", "a=1; session=s-9")],
            &["cookie"],
        ),
        (Method::GET, "/", &[("cookie", "session=x")], &[]),
        (
            Method::GET,
            "/",
            &[("x-forwarded-for", "203.0.113.9")],
            &["inside"],
        ),
        (
            Method::GET,
            "/",
            &[("x-forwarded-for", "198.51.100.1")],
            &["outside"],
        ),
    ];
    for (method, path, headers, want) in cases {
        let r = send(&node, method.clone(), path, headers).await;
        assert_eq!(r.status, 200, "{method} {path}");
        let mut want: Vec<String> = want.iter().chain(&base).map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(hits(&r), want, "{method} {path} {headers:?}");
    }
    let r = send(&node, Method::GET, "/", &[("authorization", "Bearer x")]).await;
    assert_eq!(hits(&r), ["http"]);
}

#[tokio::test]
async fn each_action_does_what_it_says() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rules = json!([{"name": "acts", "rules": [
        {"name": "blocked", "when": {"client_ips": ["192.0.2.0/24"]},
         "then": {"respond": {"status": 403, "body": "{\"error\":\"blocked\",\"ip\":\"{client_ip}\"}",
                              "headers": {"content-type": "application/json"}}}},
        {"name": "empty", "when": {"paths": ["/empty"]},
         "then": {"respond": {"status": 204, "body": "ignored"}}},
        {"name": "moved", "when": {"path_regex": "^/old/(.*)$"},
         "then": {"redirect": {"status": 301, "location": "https://{host}/new/{1}?{query}"}}},
        {"name": "v1", "then": {"rewrite": {"path_prefix": {"from": "/v1/", "to": "/api/v1/"}}}},
        {"name": "users", "when": {"path_regex": "^/u/([a-z]+)/([0-9]+)$"},
         "then": {"rewrite": {"path_regex": {"pattern": "^/u/([a-z]+)/([0-9]+)$", "replace": "/users/{2}/{1}"}},
                  "request_headers": {"set": {"x-user": "{1}"}}}},
        {"name": "canary", "when": {"headers": [{"name": "x-canary", "equals": "1"}]}, "then": {"pool": "canary"}},
        {"name": "edit", "then": {
            "request_headers": {"set": {"x-edge": "portico {request_id}"}, "add": {"x-tag": "two"}, "remove": ["x-secret"]},
            "response_headers": {"set": {"strict-transport-security": "max-age=63072000"}, "remove": ["x-served-by"]}}}
    ]}]);
    let node = TestNode::start(&config(
        &[origin_json("a", a.addr(), "")],
        &c,
        rules,
        &["acts"],
    ))
    .await;

    // respond: status, templated body, headers, no origin; the response edits still apply.
    let served = |o: &OriginHandle| o.log().iter().filter(|r| !r.probe).count();
    let before = served(&a);
    let r = send(
        &node,
        Method::GET,
        "/x",
        &[("x-forwarded-for", "192.0.2.7")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), r#"{"error":"blocked","ip":"192.0.2.7"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert!(r.header("x-request-id").is_some());
    assert_eq!(served(&a), before, "no origin asked");

    // A 204 carries no body and no Content-Length, whatever the rule wrote.
    let r = send(&node, Method::GET, "/empty", &[]).await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert!(r.header("content-length").is_none());
    assert_eq!(
        send(&node, Method::GET, "/x", &[]).await.status,
        200,
        "the connection is still good"
    );

    // redirect, with a capture, the host without its port and the query.
    let host = node.url.trim_start_matches("http://").to_string();
    let r = send(&node, Method::GET, "/old/a/b?x=1", &[("host", &host)]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://127.0.0.1/new/a/b?x=1"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );

    // rewrite by prefix: the origin sees the new path and the query; request edits apply.
    let r = send(
        &node,
        Method::GET,
        "/v1/items?id=7",
        &[
            ("x-secret", "s"),
            ("x-tag", "one"),
            ("x-request-id", "rid-1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.served_by(), "", "x-served-by removed");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    let seen = last_request(&a);
    assert_eq!(seen.path, "/api/v1/items?id=7");
    assert_eq!(header(&seen, "x-edge"), Some("portico rid-1"));
    assert_eq!(header(&seen, "x-secret"), None);
    let tags: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(k, _)| k == "x-tag")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, ["one", "two"]);

    // rewrite by regex, the groups in the replacement and in a header.
    send(&node, Method::GET, "/u/ann/42?full=1", &[]).await;
    let seen = last_request(&a);
    assert_eq!(seen.path, "/users/42/ann?full=1");
    assert_eq!(header(&seen, "x-user"), Some("ann"));

    // pool: another pool's origin answers.
    let r = send(&node, Method::GET, "/v1/x", &[("x-canary", "1")]).await;
    assert_eq!(r.status, 200);
    let seen = last_request(&c);
    assert_eq!(seen.path, "/api/v1/x");
    // The request is counted after its response was written: poll until it shows, then
    // check it shows once.
    let labels = [("route", "r"), ("pool", "canary"), ("origin", "c")];
    let counted = poll(
        "the canary request counted",
        Duration::from_secs(10),
        || async {
            let n = node.metrics().await.sum("portico_requests_total", &labels);
            (n > 0.0).then_some(n)
        },
    )
    .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn rule_sets_run_in_order_and_stop_ends_them() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rules = json!([
        {"name": "first", "rules": [
            {"name": "tag", "then": {"response_headers": {"add": {"x-order": "first"}}}},
            {"name": "halt", "when": {"paths": ["/stop"]}, "stop": true,
             "then": {"response_headers": {"add": {"x-order": "halt"}}}},
            {"name": "after-halt", "then": {"response_headers": {"add": {"x-order": "first-late"}}}}
        ]},
        {"name": "second", "rules": [
            {"name": "tag", "then": {"response_headers": {"add": {"x-order": "second"}}, "pool": "canary"}}
        ]}
    ]);
    let node = TestNode::start(&config(
        &[origin_json("a", a.addr(), "")],
        &c,
        rules,
        &["first", "second"],
    ))
    .await;
    let order = |r: &Resp| -> Vec<String> {
        r.headers
            .get_all("x-order")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let r = send(&node, Method::GET, "/go", &[]).await;
    assert_eq!(order(&r), ["first", "first-late", "second"]);
    assert_eq!(r.served_by(), "c", "the second set's pool applies");
    let r = send(&node, Method::GET, "/stop", &[]).await;
    assert_eq!(order(&r), ["first", "halt"]);
    assert_eq!(r.served_by(), "a", "nothing after the stop applies");
}

#[tokio::test]
async fn response_headers_reach_a_502_the_node_wrote_and_every_attempt_is_edited() {
    let a = origin("a").await;
    let b = origin("b").await;
    let c = origin("c").await;
    let rules = json!([{"name": "edge", "rules": [
        {"name": "all", "then": {
            "rewrite": {"path_prefix": {"from": "/", "to": "/app/"}},
            "request_headers": {"set": {"x-edge": "1"}},
            "response_headers": {"set": {"x-frame-options": "DENY"}}}}
    ]}]);
    let main = [
        origin_json("a", a.addr(), ""),
        origin_json("b", b.addr(), r#", "priority": 2"#),
    ];
    let node = TestNode::start(&config(&main, &c, rules, &["edge"])).await;
    // a fails with 503, the retry goes to b: both attempts carry the rule's edits.
    a.set_fault(Fault::Status(503));
    let r = send(&node, Method::GET, "/x?q=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.served_by(), "b");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    for o in [&a, &b] {
        let seen = last_request(o);
        assert_eq!(seen.path, "/app/x?q=1", "{}", o.name());
        assert_eq!(header(&seen, "x-edge"), Some("1"), "{}", o.name());
    }
    // Both refuse: the node's own 502 carries the rule's header too.
    a.set_fault(Fault::Refuse);
    b.set_fault(Fault::Refuse);
    let r = send(&node, Method::GET, "/x", &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn a_client_at_three_times_the_limit_gets_the_limit_and_another_is_untouched() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rate = 20.0;
    let rules = json!([{"name": "edge", "rules": [
        {"name": "per-client", "then": {"rate_limit": {"key": "client_ip", "requests_per_second": rate, "burst": 5}}}
    ]}]);
    let node = TestNode::start(&config(
        &[origin_json("a", a.addr(), "")],
        &c,
        rules,
        &["edge"],
    ))
    .await;
    let url = format!("{}/", node.url);
    let run = |ip: &'static str, per_second: f64| {
        let http = Http::new();
        let url = url.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            let (mut ok, mut limited, mut other) = (0u32, 0u32, 0u32);
            let start = Instant::now();
            let mut last_429 = None;
            while start.elapsed() < Duration::from_secs(5) {
                tick.tick().await;
                let r = http
                    .request(Method::GET, &url, &[("x-forwarded-for", ip)], Bytes::new())
                    .await
                    .expect("GET");
                match r.status {
                    200 => ok += 1,
                    429 => {
                        limited += 1;
                        last_429 = Some(r);
                    }
                    _ => other += 1,
                }
            }
            (ok, limited, other, start.elapsed(), last_429)
        })
    };
    let heavy = run("198.51.100.1", 3.0 * rate);
    let light = run("198.51.100.2", rate / 2.0);
    let (ok, limited, other, elapsed, last_429) = heavy.await.unwrap();
    let (light_ok, light_limited, light_other, _, _) = light.await.unwrap();
    // The bucket allows burst (5) plus the rate over the time the client kept sending.
    let allowed = 5.0 + rate * elapsed.as_secs_f64();
    println!(
        "heavy client: {ok} allowed, {limited} limited in {elapsed:?} (limit allows {allowed:.0}); light client: {light_ok} allowed, {light_limited} limited"
    );
    assert_eq!(other, 0);
    assert!(
        (f64::from(ok) - allowed).abs() <= allowed * 0.1,
        "{ok} allowed, the limit is {allowed:.1}"
    );
    assert!(limited > 0);
    assert_eq!(
        (light_limited, light_other),
        (0, 0),
        "the other client is untouched"
    );
    assert!(light_ok > 0);
    let r = last_429.expect("a 429");
    assert!(
        r.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(r#""edge/per-client";q=5;w=1"#)
    );
    assert!(
        r.header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""edge/per-client";r=0;t="#))
    );
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_rate_limited_total",
            &[("route", "r"), ("rule", "edge/per-client")]
        ),
        f64::from(limited)
    );
    assert_eq!(
        m.sum(
            "portico_rule_matches_total",
            &[("route", "r"), ("rule", "edge/per-client")]
        ),
        f64::from(ok + limited + light_ok)
    );
}

#[tokio::test]
async fn buckets_of_an_unchanged_rule_survive_a_reload_and_a_changed_rule_applies_at_once() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rules = |header: &str, rps: f64| {
        json!([{"name": "edge", "rules": [
            {"name": "mark", "then": {"response_headers": {"set": {"x-version": header}}}},
            {"name": "tight", "then": {"rate_limit": {"key": "header:x-api-key", "requests_per_second": rps, "burst": 2}}}
        ]}])
    };
    let main = [origin_json("a", a.addr(), "")];
    let node = TestNode::start(&config(&main, &c, rules("one", 0.01), &["edge"])).await;
    let key = [("x-api-key", "k1")];
    let statuses = |n: usize| {
        let node = &node;
        async move {
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(send(node, Method::GET, "/", &key).await.status);
            }
            v
        }
    };
    assert_eq!(statuses(3).await, [200, 200, 429]);
    // Without the header, the limit does not apply.
    assert_eq!(send(&node, Method::GET, "/", &[]).await.status, 200);
    // Another rule changes: the new header shows at once, the bucket is kept.
    node.node
        .apply(
            &config(&main, &c, rules("two", 0.01), &["edge"]),
            ReloadSource::Admin,
        )
        .await
        .expect("reload");
    let r = send(&node, Method::GET, "/", &key).await;
    assert_eq!((r.status, r.header("x-version")), (429, Some("two")));
    // The limit itself changes: a new bucket.
    node.node
        .apply(
            &config(&main, &c, rules("two", 0.02), &["edge"]),
            ReloadSource::Admin,
        )
        .await
        .expect("reload");
    assert_eq!(statuses(3).await, [200, 200, 429]);
}

#[tokio::test]
async fn the_trace_the_access_log_and_the_metrics_name_the_rules() {
    let a = origin("a").await;
    let c = origin("c").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let rules = json!([{"name": "edge", "rules": [
        {"name": "hsts", "then": {"response_headers": {"set": {"strict-transport-security": "max-age=1"}}}},
        {"name": "never", "when": {"paths": ["/never"]}, "then": {"respond": {"status": 404}}}
    ]}]);
    let mut doc: Value = serde_json::from_str(&config(
        &[origin_json("a", a.addr(), "")],
        &c,
        rules,
        &["edge"],
    ))
    .unwrap();
    doc["node"]["access_log"] = json!(log.display().to_string());
    let node = TestNode::start(&doc.to_string()).await;
    let r = send(&node, Method::GET, "/", &[("x-portico-debug", "1")]).await;
    let trace = r.header("x-portico-decision").expect("a trace");
    assert!(
        trace.starts_with("route=r; pool=p; rules=[edge/hsts];"),
        "{trace}"
    );
    eventually("an access log line", Duration::from_secs(10), || async {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 1)
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["rules"], json!(["edge/hsts"]));
    let m = node.metrics().await;
    assert_eq!(
        m.sum(
            "portico_rule_matches_total",
            &[("route", "r"), ("rule", "edge/hsts")]
        ),
        1.0
    );
    assert!(!m.has("portico_rule_matches_total", &[("rule", "edge/never")]));
}

#[tokio::test]
async fn a_rule_naming_a_missing_pool_is_a_config_error() {
    let a = origin("a").await;
    let c = origin("c").await;
    let rules = json!([{"name": "edge", "rules": [{"name": "x", "then": {"pool": "nowhere"}}]}]);
    let text = config(&[origin_json("a", a.addr(), "")], &c, rules, &["edge"]);
    let e = portico::Node::from_text(&text, portico::NodeOptions::default())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(
            r#"rule_sets[0].rules[0].then.pool: "nowhere" is not a pool (pools: p, canary)"#
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_hedged_attempt_carries_the_rules_edits_too() {
    let a = origin("a").await;
    let b = origin("b").await;
    let c = origin("c").await;
    let rules = json!([{"name": "edge", "rules": [
        {"name": "all", "then": {
            "rewrite": {"path_prefix": {"from": "/", "to": "/app/"}},
            "request_headers": {"set": {"x-edge": "1"}},
            "response_headers": {"set": {"x-frame-options": "DENY"}}}}
    ]}]);
    let main = [
        origin_json("a", a.addr(), ""),
        origin_json("b", b.addr(), r#", "priority": 2"#),
    ];
    let mut doc: Value = serde_json::from_str(&config(&main, &c, rules, &["edge"])).unwrap();
    doc["pools"][0]["failover"] =
        json!({"hedging": {"enabled": true, "delay_ms": 20, "max_percent": 100}});
    let node = TestNode::start(&doc.to_string()).await;
    a.set_fault(Fault::Slow {
        delay: Duration::from_millis(500),
        percent: 100,
    });
    let r = send(&node, Method::GET, "/h", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    for o in [&a, &b] {
        let seen = last_request(o);
        assert_eq!(seen.path, "/app/h", "{}", o.name());
        assert_eq!(header(&seen, "x-edge"), Some("1"), "{}", o.name());
    }
}
