//! Prometheus and Grafana: the alert rules and the dashboard queries against a real Prometheus scraping a node.

use portico_core::config::Overrides;
use portico_origin::Fault;
use portico_tests::*;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Substitutions for Grafana's built-in interval variables: rate windows of five 1 s scrapes.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "5s"),
    ("__interval", "1s"),
    ("__range", "1m"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

/// A Prometheus server on a free port, its storage in a temporary directory, scraping one
/// target every second with the repository's rule files loaded. Killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    http: Http,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = repo().join("deploy/prometheus");
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{:?}, {:?}]\n\
             scrape_configs:\n  - job_name: portico\n    static_configs: [{{targets: [{target:?}]}}]\n",
            rules.join("recording.yml"),
            rules.join("alerts.yml"),
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let listen = free_addr();
        let log = File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run prometheus ({e}): install Debian's `prometheus` package \
                     (apt-get install -y prometheus, or `make test-deps`)"
                )
            });
        Prometheus {
            child,
            url: format!("http://{listen}"),
            dir,
            http: Http::new(),
        }
    }

    /// The end of Prometheus's log, for failure messages.
    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            let r = self
                .http
                .request(http::Method::GET, &ready, &[], bytes::Bytes::new())
                .await;
            if r.is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, else the error.
    async fn api(&self, path: &str) -> Result<Value, String> {
        let r = self.http.get(&format!("{}/api/v1/{path}", self.url)).await;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{path}: not JSON ({e}): {}", r.text()))?;
        match v["status"].as_str() {
            Some("success") => Ok(v["data"].clone()),
            _ => Err(format!("{path}: {} {}", r.status, v["error"])),
        }
    }

    /// An instant query: its series, or Prometheus's error (a query that does not parse).
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("query?query={}", encode(promql))).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replaces Grafana's `$name`, `${name}`, `${name:format}` and `[[name]]` with `vars`;
/// panics on a variable it does not know.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let lookup = |name: &str| {
        vars.iter()
            .chain(BUILTINS)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("unknown dashboard variable ${name} in {expr}"))
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            let end = t.find('}').expect("closed ${");
            (t[..end].split(':').next().unwrap_or_default(), end + 3)
        } else if let Some(t) = tail.strip_prefix("[[") {
            let end = t.find("]]").expect("closed [[");
            (&t[..end], end + 4)
        } else if let Some(t) = tail.strip_prefix('$') {
            let end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(t.len());
            (&t[..end], end + 1)
        } else {
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        out.push_str(lookup(name));
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Every query of the dashboard: `(panel title, PromQL)`, rows' nested panels included.
fn panel_queries(panels: &Value, out: &mut Vec<(String, String)>) {
    for p in panels.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                let title = p["title"].as_str().unwrap_or_default();
                out.push((title.to_string(), expr.to_string()));
            }
        }
        panel_queries(&p["panels"], out);
    }
}

/// The `label_values(SELECTOR, LABEL)` queries of the dashboard's variables: `(name,
/// selector, label)`.
fn variable_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(..): {query}", v["name"]));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        out.push((
            v["name"].as_str().unwrap_or_default().to_string(),
            selector.trim().to_string(),
            label.trim().to_string(),
        ));
    }
    out
}

/// Polls every query until each returns a series (or `deadline`); a query Prometheus rejects
/// fails at once. Checks that any `region` in the answers is the node's.
async fn assert_all_return_series(
    prom: &Prometheus,
    queries: &[(String, String)],
    region: &str,
    deadline: Instant,
) {
    loop {
        let mut empty = Vec::new();
        for (title, q) in queries {
            let series = prom
                .query(q)
                .await
                .unwrap_or_else(|e| panic!("panel {title:?}: Prometheus rejects {q}: {e}"));
            if series.is_empty() {
                empty.push(format!("{title}: {q}"));
            }
            for s in &series {
                let r = &s["metric"]["region"];
                assert!(
                    r.is_null() || r == region,
                    "panel {title:?}: {q} gave region {r}, not {region}: {s}"
                );
            }
        }
        if empty.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard queries without any series:\n  {}\nprometheus log:\n{}",
            empty.join("\n  "),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Rules per type in a rule file: lines starting with `- record:` / `- alert:`.
fn count_rules(file: &str, kind: &str) -> usize {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus").join(file))
        .expect("read rule file");
    text.lines()
        .filter(|l| l.trim_start().starts_with(&format!("- {kind}:")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_the_rules_and_every_dashboard_query() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/portico.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");

    // Pool p: b answers 503 to requests (its probes accept 503, so it stays healthy): GETs it
    // gets are retried on a, and it is ejected. Pool q: c answers 503 to everything, so it is
    // unhealthy, its route's requests fail and cannot be retried (no other origin).
    let (a, b, c) = (origin("a").await, origin("b").await, origin("c").await);
    b.set_fault(Fault::Status(503));
    c.set_fault(Fault::Status(503));
    let config = format!(
        r#"{{"pools": [
              {{"name": "p", "health_probe": {{"interval_ms": 100, "timeout_ms": 80, "expected_status": [200, 503]}},
                "origins": [{}, {}]}},
              {{"name": "q", {FAST_PROBES}, "origins": [{}]}}],
            "routes": [{{"name": "s", "hosts": ["q.test"], "pool": "q"}}, {{"name": "r", "pool": "p"}}]}}"#,
        origin_json("a", a.addr(), ""),
        origin_json("b", b.addr(), ""),
        origin_json("c", c.addr(), ""),
    );
    let region = "eu-west";
    let overrides = Overrides {
        region: Some(region.into()),
        ..Overrides::default()
    };
    let node = TestNode::start_with(&config, &overrides).await;
    let instance = node.admin.trim_start_matches("http://").to_string();
    let mut prom = Prometheus::start(&instance);

    node.wait_health("q", "c", false).await;
    node.wait_latencies("p", &["a", "b"]).await;
    eventually(
        "a retry, a request saved by failover, a denied retry and an ejection",
        Duration::from_secs(10),
        || async {
            for _ in 0..10 {
                node.get("/").await;
                node.http
                    .get_host(&format!("{}/", node.url), "q.test")
                    .await;
            }
            let m = node.metrics().await;
            m.sum("portico_failover_requests_total", &[("route", "r")]) >= 1.0
                && m.sum("portico_retries_denied_total", &[("pool", "q")]) >= 1.0
                && m.sum("portico_ejections_total", &[("origin", "b")]) >= 1.0
        },
    )
    .await;

    prom.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(30);

    // The rule files load, and every rule evaluates without error.
    let want = count_rules("recording.yml", "record") + count_rules("alerts.yml", "alert");
    loop {
        let groups = prom.api("rules").await.expect("/api/v1/rules");
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        for r in &rules {
            assert_ne!(
                r["health"], "err",
                "rule {} fails: {}",
                r["name"], r["lastError"]
            );
        }
        if rules.len() == want && rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {want} rules loaded, not all evaluated ok: {groups}\n{}",
            rules.len(),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every panel's query returns a series: with the node's region and instance chosen, and
    // with "All" (Grafana's allValue `.*`).
    let mut queries = Vec::new();
    panel_queries(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 15, "only {} queries", queries.len());
    for vars in [
        [("region", region), ("instance", instance.as_str())],
        [("region", ".*"), ("instance", ".*")],
    ] {
        let substituted: Vec<(String, String)> = queries
            .iter()
            .map(|(t, q)| (t.clone(), substitute(q, &vars)))
            .collect();
        assert_all_return_series(&prom, &substituted, region, deadline).await;
    }

    // The variables list this node's region and address.
    for (name, selector, label) in variable_queries(&dashboard) {
        let selector = substitute(&selector, &[("region", region), ("instance", ".*")]);
        let values: Vec<String> = prom
            .query(&selector)
            .await
            .unwrap_or_else(|e| panic!("variable {name}: {e}"))
            .iter()
            .filter_map(|s| s["metric"][&label].as_str().map(str::to_string))
            .collect();
        let expected = if label == "region" { region } else { &instance };
        assert!(
            values.iter().any(|v| v == expected),
            "variable {name}: label_values({selector}, {label}) = {values:?}, not {expected}"
        );
    }

    // The alerts match the node's real series: c is down and pool q has no healthy origin
    // (pending: their `for` has not passed), each with the node's region.
    let down = |alerts: &Value, name: &str, pool: &str| {
        alerts["alerts"].as_array().into_iter().flatten().any(|a| {
            let l = &a["labels"];
            l["alertname"] == name
                && l["pool"] == pool
                && l["region"] == region
                && l["instance"] == instance.as_str()
                && l["job"] == "portico"
        })
    };
    loop {
        let alerts = prom.api("alerts").await.expect("/api/v1/alerts");
        if down(&alerts, "PorticoOriginDown", "q")
            && down(&alerts, "PorticoPoolNoHealthyOrigin", "q")
        {
            assert!(
                !down(&alerts, "PorticoOriginDown", "p"),
                "pool p's origins pass their probes: {alerts}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no PorticoOriginDown and PorticoPoolNoHealthyOrigin for pool q: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn grafana_variables_are_substituted() {
    let vars = [("region", "eu-west"), ("instance", ".*")];
    assert_eq!(
        substitute(
            r#"sum(rate(x{region=~"$region", i=~"${instance:regex}"}[$__rate_interval]))[[region]]"#,
            &vars
        ),
        r#"sum(rate(x{region=~"eu-west", i=~".*"}[5s]))eu-west"#
    );
    assert_eq!(encode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
}
