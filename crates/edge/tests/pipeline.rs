//! One config pipeline: the same bad document gets the same errors, in the same order, from
//! `portico --check`, from start-up and from a reload of a running node (and a reload changes
//! nothing).

use portico::config::prepare::prepare;
use portico::metrics::Metrics;
use portico::snapshot::Snapshot;
use portico::state::{ConfigSource, NodeState, ReloadSource};
use portico::{Node, NodeOptions};
use portico_core::config::{ConfigErrors, Overrides};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A node's state running `text`, as start-up leaves it (nothing listens: a reload needs none).
async fn running(text: &str) -> NodeState {
    let p = prepare(text, &Overrides::default(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(Metrics::new(&p.config.node.region, &p.config.version));
    let (snapshot, _) =
        Snapshot::build(p.config, p.document, &p.addrs, &p.tls.pools, None, &metrics);
    NodeState::new(
        snapshot,
        metrics,
        ConfigSource::Inline,
        Overrides::default(),
    )
}

fn lines(errors: &ConfigErrors) -> Vec<String> {
    errors.0.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn check_start_up_and_reload_give_the_same_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let good = r#"{"pools":[{"name":"p","origins":[{"name":"a","address":"127.0.0.1:7001"}]}],
        "routes":[{"name":"r","pool":"p"}]}"#;
    // A second name for origin a's socket, a CA file and a token file that are not there.
    let bad = format!(
        r#"{{"node":{{"admin_token_file":{token:?}}},
        "pools":[{{"name":"p","ca_file":{ca:?},"origins":[
            {{"name":"a","address":"127.0.0.1:7001"}},
            {{"name":"b","address":"localhost:7001"}}]}}],
        "routes":[{{"name":"r","pool":"p"}}]}}"#,
        token = file("token"),
        ca = file("ca.pem"),
    );

    let path = file("bad.json");
    std::fs::write(&path, &bad).expect("write");
    let out = Command::new(BIN)
        .args(["--config", &path, "--check"])
        .env("RUST_LOG", "off")
        .output()
        .expect("run portico --check");
    assert_eq!(out.status.code(), Some(1));
    let check: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    let paths: Vec<&str> = check
        .iter()
        .map(|l| l.split_once(": ").map_or("", |(p, _)| p))
        .collect();
    assert_eq!(
        paths,
        [
            "pools[0].origins[1].address",
            "pools[0].ca_file",
            "node.admin_token_file"
        ],
        "{check:?}"
    );

    let start_up = Node::from_text(&bad, NodeOptions::default())
        .await
        .err()
        .expect("start-up refuses it");
    assert_eq!(lines(&start_up), check);

    let node = running(good).await;
    let version = node.snapshot().config.version.clone();
    let reload = portico::config::reload::apply(&node, &bad, ReloadSource::Admin)
        .await
        .expect_err("the reload is rejected");
    assert_eq!(lines(&reload), check);
    assert_eq!(node.snapshot().config.version, version, "nothing changed");
    let last = node.last_reload().expect("the reload is recorded");
    assert_eq!(last.result, "rejected");
    assert_eq!(last.errors.len(), 3);
}
