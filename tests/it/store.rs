//! One config for every region: nodes follow a real etcd, reject invalid revisions, keep
//! serving without it, start from their cache, and resume when it returns.

use http::Method;
use portico::store_link::push_document;
use portico_store::{Expect, Store, StoreUrl};
use portico_tests::*;
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

async fn store(url: &StoreUrl) -> Store {
    Store::connect(url, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A config whose only origin is `origin` (so each origin gives a distinct version).
fn config_to(origin: &portico_origin::OriginHandle) -> String {
    one_pool(
        &[origin_json(origin.name(), origin.addr(), "")],
        FAST_PROBES,
    )
}

async fn wait_version(nodes: &[TestNode], version: &str) {
    for n in nodes {
        eventually(
            &format!("{} runs {version}", n.admin),
            Duration::from_secs(30),
            || async { n.version().await == version },
        )
        .await;
    }
}

async fn start_nodes(url: &StoreUrl, dir: &std::path::Path) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for region in REGIONS {
        let cache = dir.join(format!("{region}.json"));
        let node = TestNode::start_store(url, &format!("edge-{region}"), region, Some(&cache))
            .await
            .unwrap_or_else(|e| panic!("start {region}: {e}"));
        nodes.push(node);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reaches_every_node_and_an_invalid_revision_is_rejected_everywhere() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let (a, b) = (origin("a").await, origin("b").await);
    let v1 = push_document(&s, &config_to(&a), None)
        .await
        .expect("push v1");
    let nodes = start_nodes(&url, dir.path()).await;
    for n in &nodes {
        assert_eq!(n.version().await, v1);
        let st = n.status().await;
        assert_eq!(st["config_source"], format!("etcd:{url}"));
        assert_eq!(st["started_from_cache"], false);
        assert_eq!(n.get("/").await.served_by(), "a");
    }
    eventually("every node registered", Duration::from_secs(15), || async {
        let recs = s.nodes().await.unwrap_or_default();
        recs.len() == 3 && recs.iter().all(|r| r.version == v1 && r.healthy)
    })
    .await;
    let recs = s.nodes().await.expect("nodes");
    let regions: Vec<&str> = recs.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(
        regions,
        vec!["ap-south", "eu-west", "us-east"],
        "sorted by name"
    );
    assert!(
        recs.iter()
            .all(|r| r.admin.starts_with("http://127.0.0.1:"))
    );

    let v2 = push_document(&s, &config_to(&b), None)
        .await
        .expect("push v2");
    wait_version(&nodes, &v2).await;
    for n in &nodes {
        assert_eq!(n.get("/").await.served_by(), "b");
        let cached = std::fs::read_to_string(dir.path().join(format!(
            "{}.json",
            n.status().await["region"].as_str().unwrap()
        )))
        .expect("cache written");
        assert_eq!(
            cached,
            config_to(&b),
            "the cache holds the last good document"
        );
    }
    eventually("registrations follow", Duration::from_secs(15), || async {
        s.nodes()
            .await
            .unwrap_or_default()
            .iter()
            .all(|r| r.version == v2)
    })
    .await;

    // A revision written around `config push` (no validation) is rejected by every node.
    let broken = config_to(&a).replace(r#""pool": "p""#, r#""pool": "missing""#);
    s.put_config(&broken, Expect::Any).await.expect("raw put");
    for n in &nodes {
        eventually("rejected", Duration::from_secs(30), || async {
            let st = n.status().await;
            st["last_reload"]["result"] == "rejected" && st["last_reload"]["source"] == "store"
        })
        .await;
        let st = n.status().await;
        assert_eq!(
            st["config_version"],
            v2.as_str(),
            "the last good config stays"
        );
        assert_eq!(st["last_reload"]["errors"][0]["path"], "routes[0].pool");
        assert_eq!(n.get("/").await.served_by(), "b");
        let m = n.metrics().await;
        assert_eq!(
            m.sum(
                "portico_config_reloads_total",
                &[("source", "store"), ("result", "rejected")]
            ),
            1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_store_stops_nothing_a_new_node_starts_from_cache_and_the_watch_resumes() {
    let (mut etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let (a, b) = (origin("a").await, origin("b").await);
    let v1 = push_document(&store(&url).await, &config_to(&a), None)
        .await
        .expect("push");
    let cache = dir.path().join("first.json");
    let first = TestNode::start_store(&url, "first", "us-east", Some(&cache))
        .await
        .expect("start");
    eventually("cache written", Duration::from_secs(10), || async {
        std::fs::read_to_string(&cache).is_ok_and(|t| t == config_to(&a))
    })
    .await;

    etcd.stop_member(0);
    for _ in 0..20 {
        assert_eq!(
            first.get("/").await.status,
            200,
            "serving without the store"
        );
    }
    // A node started now has only its cache.
    let second_cache = dir.path().join("second.json");
    std::fs::copy(&cache, &second_cache).expect("copy cache");
    let second = TestNode::start_store(&url, "second", "eu-west", Some(&second_cache))
        .await
        .expect("starts from its cache");
    let st = second.status().await;
    assert_eq!(st["started_from_cache"], true);
    assert_eq!(st["config_version"], v1.as_str());
    assert_eq!(second.get("/").await.served_by(), "a");
    // With neither store nor cache there is nothing to start from, and the error says so.
    let e = TestNode::start_store(&url, "third", "ap-south", None)
        .await
        .err()
        .expect("no store, no cache");
    assert!(e.contains("unreachable") && e.contains("cache"), "{e}");

    etcd.start_member(0).expect("etcd restarts");
    let v2 = push_document(&store(&url).await, &config_to(&b), None)
        .await
        .expect("push after the outage");
    wait_version(&[first, second], &v2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_member_of_three_down_a_push_from_another_region_reaches_every_node() {
    let (mut etcd, dir) = etcd(3);
    let url = etcd.url("portico");
    let (a, b) = (origin("a").await, origin("b").await);
    push_document(&store(&url).await, &config_to(&a), None)
        .await
        .expect("push");
    let nodes = start_nodes(&url, dir.path()).await;
    etcd.stop_member(0);
    // The operator in another region talks to the members that are left.
    let endpoints = etcd.endpoints();
    let rest: StoreUrl = format!("etcd://{}/portico", endpoints[1..].join(","))
        .parse()
        .expect("url");
    let v2 = push_document(&store(&rest).await, &config_to(&b), None)
        .await
        .expect("push with a quorum");
    wait_version(&nodes, &v2).await;
    for n in &nodes {
        assert_eq!(n.get("/").await.served_by(), "b");
    }
}

/// Promotes the stored rollout wave by wave (`config promote`) until it is over.
async fn promote_all(s: &Store) {
    loop {
        let stored = s.get_rollout().await.expect("get").expect("a rollout");
        if stored.rollout.state.is_over() {
            return;
        }
        let reports: Vec<_> = s
            .node_statuses()
            .await
            .expect("statuses")
            .iter()
            .map(|st| st.report())
            .collect();
        let mut rollout = stored.rollout;
        let now = portico_store::unix_millis(std::time::SystemTime::now());
        let promote = portico_core::rollout::Command::Promote {
            author: "tests".into(),
        };
        rollout.command(promote, &reports, now).expect("promote");
        // A lost compare-and-swap (a conductor saved first) is read again.
        let _ = s
            .save_rollout(&rollout, Expect::ModRevision(stored.mod_revision))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_on_a_store_node_starts_a_rollout_that_reaches_every_node_once_promoted() {
    let (etcd, dir) = etcd(1);
    let url = etcd.url("portico");
    let s = store(&url).await;
    let (a, b) = (origin("a").await, origin("b").await);
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken").expect("token");
    let with_token = |o: &portico_origin::OriginHandle| {
        config_to(o).replacen(
            '{',
            &format!(
                r#"{{"node": {{"admin_token_file": "{}"}},"#,
                token.display()
            ),
            1,
        )
    };
    let v1 = push_document(&s, &with_token(&a), None)
        .await
        .expect("push");
    let nodes = start_nodes(&url, dir.path()).await;
    let put = |if_match: String| {
        let http = nodes[1].http.clone();
        let url = format!("{}/config", nodes[1].admin);
        let body = with_token(&b);
        async move {
            http.request(
                Method::PUT,
                &url,
                &[("authorization", "Bearer t0ken"), ("if-match", &if_match)],
                body,
            )
            .await
            .expect("PUT")
        }
    };
    let stale = put("\"ffffffffffffffff\"".into()).await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert!(
        stale.text().contains(&v1),
        "names the stored version: {}",
        stale.text()
    );
    let ok = put(format!("\"{v1}\"")).await;
    assert_eq!(ok.status, 202, "{}", ok.text());
    let body: serde_json::Value = serde_json::from_slice(&ok.body).expect("JSON");
    let v2 = body["version"].as_str().expect("version").to_string();
    assert_eq!(
        s.get_document(&v2).await.expect("get"),
        Some(with_token(&b))
    );
    // PUT /config starts a rollout in waves (SPEC part 3): promote it by hand, wave by wave.
    promote_all(&s).await;
    let stored = s.get_config().await.expect("get").expect("stored");
    assert_eq!(stored.text, with_token(&b), "promoted: the stable document");
    wait_version(&nodes, &v2).await;
}
