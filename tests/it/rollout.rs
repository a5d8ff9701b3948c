//! The node's side of a health-gated rollout, against a real etcd: each node runs the version
//! the stored rollout assigns it, counts its answers per version and reports them, rejects a
//! target it cannot build while it keeps serving stable, and `PUT /config` starts a rollout.
//! Rollouts are written here as the conductor would (`Store::start_rollout`/`save_rollout`);
//! the settings keep any conductor from judging them before the test is done. Where a test
//! needs the nodes' conductor to judge (a promotion; a valid-but-wrong document under load,
//! rolled back after the canary), it pushes with `start_push` and short settings.

use http::Method;
use portico::store_link::push_document;
use portico_core::config::fingerprint;
use portico_core::rollout::{Command, GateFailure, Push, Rollout, Settings, State, parse_waves};
use portico_store::{Expect, NodeStatus, Store, StoreUrl};
use portico_tests::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Gates that cannot end a rollout while a test runs: a long bake, and more errors and
/// requests than a test sends.
const PATIENT: Settings = Settings {
    bake_ms: 3_600_000,
    min_requests: 1_000_000,
    max_error_increase: 1.0,
    min_errors: 1_000_000,
};

async fn store(url: &StoreUrl) -> Store {
    Store::connect(url, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// One pool of `origin`; with `paths`, its only route takes those paths (other paths: 404
/// "no route", an error for the gates); `node` goes into the document's `node` object.
fn config(origin: &portico_origin::OriginHandle, paths: &[&str], node: &str) -> String {
    let paths = serde_json::to_string(paths).expect("paths");
    format!(
        r#"{{"node": {{{node}}}, "pools": [{{"name": "p", "origins": [{}], {FAST_PROBES}}}],
            "routes": [{{"name": "r", "pool": "p"{}}}]}}"#,
        origin_json(origin.name(), origin.addr(), ""),
        if paths == "[]" {
            String::new()
        } else {
            format!(r#", "paths": {paths}"#)
        }
    )
}

async fn start(url: &StoreUrl, dir: &Path, nodes: &[(&str, &str)]) -> Vec<TestNode> {
    let mut out = Vec::new();
    for (name, region) in nodes {
        let cache = dir.join(format!("{name}.json"));
        out.push(
            TestNode::start_store(url, name, region, Some(&cache))
                .await
                .unwrap_or_else(|e| panic!("start {name}: {e}")),
        );
    }
    out
}

/// The registrations, once `n` nodes are registered.
async fn registered(s: &Store, n: usize) -> Vec<NodeStatus> {
    eventually(&format!("{n} nodes registered"), WAIT, || async {
        s.node_statuses().await.unwrap_or_default().len() == n
    })
    .await;
    s.node_statuses().await.expect("node statuses")
}

/// The registration of `name`.
async fn status_of(s: &Store, name: &str) -> Option<NodeStatus> {
    s.node_statuses()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|st| st.record.name == name)
}

/// Starts the rollout of `text` over `waves` from the stable document `stable`, as a push
/// would (the registered nodes make the plan).
async fn start_rollout(s: &Store, stable: &str, text: &str, waves: &str, n: usize) -> Rollout {
    let reports: Vec<_> = registered(s, n)
        .await
        .iter()
        .map(|st| st.report())
        .collect();
    let push = Push {
        target: fingerprint(text),
        stable: Some(fingerprint(stable)),
        waves: Some(parse_waves(waves).expect("waves")),
        canary: None,
        settings: PATIENT,
        author: "tests".into(),
    };
    let now = portico_store::unix_millis(std::time::SystemTime::now());
    let (rollout, _) = Rollout::start(push, &reports, now).expect("rollout starts");
    s.start_rollout(&rollout, text, "a test", Expect::Any)
        .await
        .expect("rollout stored");
    rollout
}

async fn wait_version(node: &TestNode, version: &str) {
    eventually(&format!("{} runs {version}", node.admin), WAIT, || async {
        node.version().await == version
    })
    .await;
}

/// Waits until `node`'s `/status` shows a rollout of `target` in `state`; returns it.
async fn wait_rollout(node: &TestNode, target: &str, state: &str) -> Value {
    eventually(
        &format!("{} sees the rollout of {target} {state}", node.admin),
        WAIT,
        || async {
            let r = &node.status().await["rollout"];
            r["target"] == target && r["state"] == state
        },
    )
    .await;
    node.status().await["rollout"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_runs_the_target_while_the_others_and_a_newcomer_keep_stable_and_reports_per_version()
 {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let (a, b) = (origin("a").await, origin("b").await);
    let stable = config(&a, &[], "");
    let v1 = push_document(&s, &stable, None).await.expect("push v1");
    let nodes = start(
        &url,
        dir.path(),
        &[
            ("edge-a", "us-east"),
            ("edge-b", "us-east"),
            ("edge-c", "eu-west"),
        ],
    )
    .await;
    for n in &nodes {
        assert_eq!(n.status().await["rollout"], Value::Null, "no rollout yet");
        assert_eq!(
            n.metrics().await.sum("portico_rollout_in_progress", &[]),
            0.0
        );
    }
    for _ in 0..30 {
        assert_eq!(nodes[0].get("/").await.served_by(), "a");
    }

    // The target serves /ok/* from b: anything else is Portico's "no route", an error.
    let target = config(&b, &["/ok/*"], "");
    let v2 = fingerprint(&target);
    start_rollout(&s, &stable, &target, "node:edge-a,rest", 3).await;
    wait_version(&nodes[0], &v2).await;
    let canary = wait_rollout(&nodes[0], &v2, "in progress").await;
    assert_eq!(
        canary,
        json!({"target": v2, "stable": v1, "state": "in progress", "wave": 1, "waves": 2,
               "node_wave": 1, "version": v2})
    );
    for n in &nodes[1..] {
        let r = wait_rollout(n, &v2, "in progress").await;
        assert_eq!((&r["node_wave"], &r["version"]), (&Value::Null, &json!(v1)));
        assert_eq!(n.version().await, v1, "outside the started wave: stable");
        assert_eq!(n.get("/ok/x").await.served_by(), "a");
    }
    // The canary's status page shows the rollout, rendered by a real browser.
    let chromium = crate::status_page::chromium();
    let page = format!("{}/", nodes[0].admin);
    let dom = tokio::task::spawn_blocking(move || crate::status_page::dump_dom(&chromium, &page))
        .await
        .expect("chromium thread");
    let at = dom.find(r#"id="rollout""#).expect("a Rollout fact");
    let fact = &dom[at..at + dom[at..].find("</dd>").expect("its end")];
    for shown in [
        r#"id="rollout-state">in progress</span>"#,
        &format!("target <code>{v2}</code>"),
        &format!("from stable <code>{v1}</code>"),
        "wave 1 of 2",
        &format!("this node: wave 1 · runs <code>{v2}</code>"),
    ] {
        assert!(fact.contains(shown), "{shown} in {fact}");
    }

    for n in &nodes {
        eventually("portico_rollout_in_progress is 1", WAIT, || async {
            n.metrics().await.sum("portico_rollout_in_progress", &[]) == 1.0
        })
        .await;
    }
    // The canary's cache keeps the stable document: the target is not judged good yet.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("edge-a.json")).expect("cache"),
        stable
    );

    for _ in 0..15 {
        assert_eq!(nodes[0].get("/ok/x").await.served_by(), "b");
    }
    for _ in 0..5 {
        assert_eq!(nodes[0].get("/elsewhere").await.status, 404);
    }
    eventually(
        "the canary reports its figures on the target",
        WAIT,
        || async {
            status_of(&s, "edge-a").await.is_some_and(|st| {
                let f = st.report().figures(&v2);
                (f.requests, f.errors) == (20, 5)
            })
        },
    )
    .await;
    let report = status_of(&s, "edge-a").await.expect("registered").report();
    assert_eq!(report.version, v2);
    assert!(
        report.started_at_ms > 0,
        "the process start time is reported"
    );
    assert_eq!(report.rejected, None);
    let before = report.figures(&v1);
    assert_eq!(
        (before.requests, before.errors),
        (30, 0),
        "frozen at the switch"
    );
    let baseline = report.baseline.expect("a baseline frozen at the switch");
    assert_eq!(baseline.to, v2);
    assert_eq!(
        (baseline.figures.requests, baseline.figures.errors),
        (30, 0)
    );
    // An idle node reports every second all the same.
    let last = status_of(&s, "edge-c").await.expect("edge-c").updated_at_ms;
    eventually("edge-c reports again", WAIT, || async {
        status_of(&s, "edge-c")
            .await
            .is_some_and(|st| st.updated_at_ms > last)
    })
    .await;
    eventually("edge-b reports its own answers only", WAIT, || async {
        status_of(&s, "edge-b").await.is_some_and(|st| {
            let r = st.report();
            r.version == v1 && r.figures(&v1).requests == 1 && r.baseline.is_none()
        })
    })
    .await;

    // A node that joins mid-rollout is in no started wave: it runs stable.
    let late = start(&url, dir.path(), &[("edge-d", "eu-west")]).await;
    assert_eq!(late[0].version().await, v1);
    let r = wait_rollout(&late[0], &v2, "in progress").await;
    assert_eq!((&r["node_wave"], &r["version"]), (&Value::Null, &json!(v1)));
    assert_eq!(late[0].get("/elsewhere").await.served_by(), "a");

    // Aborted: the canary goes back to stable, live.
    let stored = s.get_rollout().await.expect("get").expect("stored");
    let mut rollout = stored.rollout;
    let reports: Vec<_> = registered(&s, 4)
        .await
        .iter()
        .map(|st| st.report())
        .collect();
    rollout
        .command(
            Command::Abort {
                author: "tests".into(),
            },
            &reports,
            portico_store::unix_millis(std::time::SystemTime::now()),
        )
        .expect("abort");
    s.save_rollout(&rollout, Expect::ModRevision(stored.mod_revision))
        .await
        .expect("saved");
    wait_version(&nodes[0], &v1).await;
    let r = wait_rollout(&nodes[0], &v2, "aborted").await;
    assert_eq!(
        (&r["wave"], &r["node_wave"], &r["version"]),
        (&Value::Null, &json!(1), &json!(v1)),
        "over: no current wave; still a member of the first, back on stable"
    );
    assert_eq!(nodes[0].get("/elsewhere").await.served_by(), "a");
    eventually("portico_rollout_in_progress is 0", WAIT, || async {
        nodes[0]
            .metrics()
            .await
            .sum("portico_rollout_in_progress", &[])
            == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_the_canary_cannot_build_is_reported_rejected_while_it_keeps_serving_stable() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let a = origin("a").await;
    let stable = config(&a, &[], "");
    let v1 = push_document(&s, &stable, None).await.expect("push v1");
    let nodes = start(
        &url,
        dir.path(),
        &[("edge-a", "us-east"), ("edge-b", "eu-west")],
    )
    .await;
    // Valid as a document; a file this node does not have.
    let missing = dir.path().join("no-such-token");
    let target = config(
        &a,
        &[],
        &format!(r#""admin_token_file": "{}""#, missing.display()),
    );
    let v2 = fingerprint(&target);
    start_rollout(&s, &stable, &target, "node:edge-a,rest", 2).await;
    // The node reports the rejection while the rollout lasts; the nodes' conductor rolls the
    // rollout back on it at once (gate 1), keeping the node's errors in its verdict.
    eventually("rolled back", WAIT, || async {
        nodes[0].status().await["rollout"]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("rolled back: gate 1"))
    })
    .await;
    let stored = s.get_rollout().await.expect("get").expect("stored").rollout;
    match &stored.state {
        State::RolledBack(GateFailure::Rejected { node, errors }) => {
            assert_eq!(node, "edge-a");
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("node.admin_token_file") && e.contains("no-such-token")),
                "{errors:?}"
            );
        }
        other => panic!("rolled back by gate 1, not {other:?}"),
    }
    for n in &nodes {
        assert_eq!(n.version().await, v1, "stable stays");
        assert_eq!(n.get("/").await.served_by(), "a");
    }
    let st = nodes[0].status().await;
    assert_eq!(st["last_reload"]["result"], "rejected");
    assert_eq!(st["last_reload"]["version"], v2.as_str());
    assert_eq!(st["rollout"]["node_wave"], 1);
    assert_eq!(st["rollout"]["version"], v1.as_str());
    // Over: the rejection is no longer reported (the verdict keeps it).
    eventually(
        "the rejection is dropped once the rollout is over",
        WAIT,
        || async {
            status_of(&s, "edge-a")
                .await
                .is_some_and(|st| st.rejected.is_none())
        },
    )
    .await;

    // Pushed again once the file is there: a new rollout, tried again, and no stale rejection.
    std::fs::write(&missing, "t0ken").expect("token");
    start_rollout(&s, &stable, &target, "node:edge-a,rest", 2).await;
    wait_version(&nodes[0], &v2).await;
    eventually("the canary reports it runs the target", WAIT, || async {
        status_of(&s, "edge-a")
            .await
            .is_some_and(|st| st.record.version == v2 && st.rejected.is_none())
    })
    .await;
    assert_eq!(
        wait_rollout(&nodes[0], &v2, "in progress").await["node_wave"],
        1
    );
    assert_eq!(nodes[1].version().await, v1, "its wave has not started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_at_once_with_no_bake_is_promoted_by_the_nodes_conductor_and_cached() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let (a, b) = (origin("a").await, origin("b").await);
    let stable = config(&a, &[], "");
    push_document(&s, &stable, None).await.expect("push v1");
    let nodes = start(
        &url,
        dir.path(),
        &[("edge-a", "us-east"), ("edge-b", "eu-west")],
    )
    .await;
    registered(&s, 2).await;
    // `config push --waves rest --bake 0 --min-requests 0`: what needs every node at once.
    let target = config(&b, &[], "");
    let opts = portico::config::push::PushOptions {
        waves: Some(vec!["rest".into()]),
        bake_secs: Some(0.0),
        min_requests: Some(0),
        author: "tests".into(),
        ..Default::default()
    };
    let started = portico::config::push::start_push(&s, &target, &opts, &Default::default())
        .await
        .expect("push");
    let v2 = started.version;
    for n in &nodes {
        wait_rollout(n, &v2, "promoted").await;
        wait_version(n, &v2).await;
        assert_eq!(n.get("/").await.served_by(), "b");
    }
    assert_eq!(
        s.get_config().await.expect("get").expect("stable").text,
        target
    );
    // Promoted: the target is now the stable document, and each node caches it.
    for name in ["edge-a", "edge-b"] {
        let cache = dir.path().join(format!("{name}.json"));
        eventually(
            &format!("{name} caches the promoted target"),
            WAIT,
            || async { std::fs::read_to_string(&cache).is_ok_and(|t| t == target) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_on_a_store_node_starts_a_rollout_and_answers_202_with_the_plan() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let (a, b) = (origin("a").await, origin("b").await);
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken").expect("token");
    let node = format!(r#""admin_token_file": "{}""#, token.display());
    let stable = config(&a, &[], &node);
    let v1 = push_document(&s, &stable, None).await.expect("push v1");
    let nodes = start(
        &url,
        dir.path(),
        &[("edge-a", "us-east"), ("edge-b", "eu-west")],
    )
    .await;
    registered(&s, 2).await;
    let put = |body: String| {
        let (http, url) = (nodes[1].http.clone(), format!("{}/config", nodes[1].admin));
        async move {
            http.request(
                Method::PUT,
                &url,
                &[("authorization", "Bearer t0ken")],
                body,
            )
            .await
            .expect("PUT")
        }
    };
    let invalid = put(r#"{"pools": 3}"#.to_string()).await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    let target = config(&b, &[], &node);
    let v2 = fingerprint(&target);
    let started = put(target.clone()).await;
    assert_eq!(started.status, 202, "{}", started.text());
    let body: Value = serde_json::from_slice(&started.body).expect("JSON");
    assert_eq!(
        body,
        json!({"version": v2, "state": "in progress", "plan": [
            {"wave": 1, "selector": "node:edge-a", "nodes": ["edge-a"]},
            {"wave": 2, "selector": "region:us-east", "nodes": []},
            {"wave": 3, "selector": "rest", "nodes": ["edge-b"]},
        ]})
    );
    let stored = s.get_rollout().await.expect("get").expect("stored");
    assert_eq!(stored.rollout.target, v2);
    assert_eq!(stored.rollout.author, "PUT /config on edge-b");
    wait_version(&nodes[0], &v2).await;
    assert_eq!(
        nodes[1].version().await,
        v1,
        "edge-b's wave has not started"
    );
    assert_eq!(
        s.get_config().await.expect("get").expect("stable").text,
        stable,
        "config stays the stable document"
    );

    let again = put(config(&a, &["/x"], &node)).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(again.text().contains(&v2), "names it: {}", again.text());
}

/// What one node's load task counted: requests sent, and those that failed (a status other
/// than 200, or a transport error).
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// A task per node sending `GET /` through its proxy listener every few milliseconds, until
/// stopped: load that does not wait for the test.
struct Load {
    tallies: Vec<Arc<Tally>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(nodes: &[TestNode]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tallies = Vec::new();
        let mut tasks = Vec::new();
        for n in nodes {
            let tally = Arc::new(Tally::default());
            let (t, stop, url) = (tally.clone(), stop.clone(), format!("{}/", n.url));
            tasks.push(tokio::spawn(async move {
                let http = Http::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = http.request(Method::GET, &url, &[], "").await;
                    t.requests.fetch_add(1, Ordering::Relaxed);
                    if !r.is_ok_and(|r| r.status == 200) {
                        t.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
            tallies.push(tally);
        }
        Load {
            tallies,
            stop,
            tasks,
        }
    }

    /// (requests, errors) per node so far, in the order of the nodes.
    fn counts(&self) -> Vec<(u64, u64)> {
        self.tallies
            .iter()
            .map(|t| {
                (
                    t.requests.load(Ordering::Relaxed),
                    t.errors.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
    }
}

/// A document with one pool `p` of one origin at `addr`, one catch-all route `r` naming
/// `rule_sets`, and `extra` top-level fields.
fn document_at(addr: std::net::SocketAddr, rule_sets: &str, extra: &str) -> String {
    format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}], {FAST_PROBES}}}]{extra},
            "routes": [{{"name": "r", "pool": "p", "rule_sets": [{rule_sets}]}}]}}"#,
        origin_json("a", addr, "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_but_wrong_document_is_rolled_back_after_the_canary_with_no_error_elsewhere() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let a = origin("a").await;
    let stable = document_at(a.addr(), "", "");
    let v1 = push_document(&s, &stable, None).await.expect("push v1");
    let names = ["edge-a", "edge-b", "edge-c"];
    let nodes = start(
        &url,
        dir.path(),
        &[
            ("edge-a", "us-east"),
            ("edge-b", "us-east"),
            ("edge-c", "eu-west"),
        ],
    )
    .await;
    registered(&s, 3).await;
    let load = Load::start(&nodes);
    eventually("every node answers the load", WAIT, || async {
        load.counts().iter().all(|&(requests, _)| requests >= 20)
    })
    .await;
    assert!(
        load.counts().iter().all(|&(_, errors)| errors == 0),
        "stable answers every request: {:?}",
        load.counts()
    );

    // Each validates and each breaks every request: Portico's "no route" 404 (the catch-all
    // route gone), a 502/503 from an origin nobody listens on, a rule's own 503.
    let wrong = [
        (
            "the route removed",
            stable.replace(r#""pool": "p","#, r#""pool": "p", "paths": ["/ok/*"],"#),
        ),
        (
            "the pool's origin at a dead port",
            document_at(free_addr(), "", ""),
        ),
        (
            "a rule answering 503",
            document_at(
                a.addr(),
                r#""outage""#,
                r#", "rule_sets": [{"name": "outage", "rules": [
                    {"name": "refuse", "then": {"respond": {"status": 503, "body": "down\n"}}}]}]"#,
            ),
        ),
    ];
    // Short enough for a test; the gate that judges is the error gate all the same: every
    // answer on the target is an error, so it has its `min_errors` before the wave could
    // have its `min_requests`.
    let opts = portico::config::push::PushOptions {
        bake_secs: Some(2.0),
        min_requests: Some(20),
        author: "tests".into(),
        ..Default::default()
    };
    for (what, target) in wrong {
        assert_ne!(target, stable, "{what}");
        let before = load.counts();
        let started = portico::config::push::start_push(&s, &target, &opts, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: push: {e}"));
        let v = started.version.clone();
        let plan: Vec<(String, Vec<String>)> = (started.plan.iter())
            .map(|(sel, nodes)| (sel.to_string(), nodes.clone()))
            .collect();
        assert_eq!(
            plan,
            [
                ("node:edge-a", vec!["edge-a"]),
                ("region:us-east", vec!["edge-b"]),
                ("rest", vec!["edge-c"]),
            ]
            .map(|(sel, n)| (sel.to_string(), n.iter().map(|s| s.to_string()).collect())),
            "{what}: the default plan: the canary, its region, the rest"
        );

        let rollout = poll(&format!("{what}: the rollout ends"), WAIT, || async {
            let r = s.get_rollout().await.ok().flatten()?.rollout;
            (r.target == v && r.state.is_over()).then_some(r)
        })
        .await;
        match &rollout.state {
            State::RolledBack(GateFailure::ErrorRatio { target, .. }) => assert!(
                target.errors >= 10 && target.errors <= target.requests,
                "{what}: {target:?}"
            ),
            other => panic!("{what}: rolled back by gate 3, not {other:?}"),
        }
        assert!(
            rollout.waves[0].started_at_ms.is_some(),
            "{what}: the canary's wave started"
        );
        assert!(
            rollout.waves[1..].iter().all(|w| w.started_at_ms.is_none()),
            "{what}: no later wave started: {:?}",
            rollout.waves
        );
        let verdict_at = rollout.ended_at_ms.expect("an ended rollout says when");
        for (n, name) in nodes.iter().zip(names) {
            wait_version(n, &v1).await;
            let r = poll(
                &format!("{what}: {name} shows the rollback"),
                WAIT,
                || async {
                    let r = n.status().await["rollout"].clone();
                    let back = r["target"] == v.as_str()
                        && r["version"] == v1.as_str()
                        && (r["state"].as_str())
                            .is_some_and(|st| st.starts_with("rolled back: gate 3"));
                    back.then_some(r)
                },
            )
            .await;
            let wave = if name == "edge-a" {
                json!(1)
            } else {
                Value::Null
            };
            assert_eq!(r["node_wave"], wave, "{what}: {name}: {r}");
        }
        // Back on stable, every node answers again (the canary too).
        let back = load.counts();
        eventually(&format!("{what}: answers on stable"), WAIT, || async {
            load.counts()
                .iter()
                .zip(&back)
                .all(|(now, then)| now.0 >= then.0 + 10)
        })
        .await;
        let after = load.counts();
        let canary = (after[0].0 - before[0].0, after[0].1 - before[0].1);
        assert!(canary.1 > 0, "{what}: the canary saw errors: {canary:?}");
        // One request per node is in flight at a time: at most one sent before the switch back.
        assert!(
            after[0].1 - back[0].1 <= 1,
            "{what}: no error on the canary once back on stable: {back:?} then {after:?}"
        );
        for i in 1..names.len() {
            let (requests, errors) = (after[i].0 - before[i].0, after[i].1 - before[i].1);
            assert!(requests > 0, "{what}: {} had load", names[i]);
            assert_eq!(
                errors, 0,
                "{what}: no error on {} outside the canary ({requests} requests)",
                names[i]
            );
        }

        // From their reports (each node publishes when it sees the rollout end, and the
        // canary again once it switched back): the canary ran the target and counted its
        // errors; the others never ran it and never switched.
        for name in names {
            let canary = name == "edge-a";
            let report = poll(&format!("{what}: {name} reports"), WAIT, || async {
                status_of(&s, name)
                    .await
                    .filter(|st| st.updated_at_ms >= verdict_at)
                    .filter(|st| !canary || st.record.version == v1)
                    .map(|st| st.report())
            })
            .await;
            assert_eq!(report.version, v1, "{what}: {name} runs stable");
            if canary {
                assert!(report.figures(&v).errors >= 10, "{what}: {report:?}");
                // At most the one request in flight at the switch back, counted on stable.
                assert!(report.figures(&v1).errors <= 1, "{what}: {report:?}");
            } else {
                assert_eq!(
                    report.versions.keys().collect::<Vec<_>>(),
                    [&v1],
                    "{what}: {name} never ran another version"
                );
                assert_eq!(report.baseline, None, "{what}: {name} never switched");
                assert_eq!(report.figures(&v1).errors, 0, "{what}: {report:?}");
            }
        }
    }
    load.stop().await;
}
