//! Registrations carrying the rollout report, against a real etcd started by `LocalEtcd`.

use portico_core::rollout::{Figures, Rejection};
use portico_store::{NodeStatus, Store, register};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

mod common;
use common::{DEADLINE, cluster, connect, poll, record};

const TTL: Duration = Duration::from_secs(10);

fn status(name: &str, requests: u64) -> NodeStatus {
    let mut status = NodeStatus::new(record(name, "v2"));
    status.started_at_ms = 1_700_000_000_000;
    status.rejected = Some(Rejection {
        version: "v3".into(),
        errors: vec!["no such pool".into()],
        rollout_started_at_ms: 0,
    });
    status.versions.insert(
        "v2".into(),
        Figures {
            requests,
            errors: 1,
            p99_ms: Some(4.0),
        },
    );
    status
}

async fn stored(store: &Store, name: &str) -> Option<NodeStatus> {
    store
        .node_statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.record.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_registered_and_old_records_still_parse() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("report");
    let store = connect(&url).await;

    let (_tx_new, rx_new) = watch::channel(status("eu-a", 7));
    let _a = register(url.clone(), "eu-a".into(), TTL, rx_new);
    // A node that publishes no report (a NodeRecord, as before).
    let (_tx_old, rx_old) = watch::channel(record("eu-b", "v1"));
    let _b = register(url.clone(), "eu-b".into(), TTL, rx_old);

    let statuses = poll("both registrations", DEADLINE, || async {
        let s = store.node_statuses().await.unwrap();
        (s.len() == 2).then_some(s)
    })
    .await;
    let (a, b) = (&statuses[0], &statuses[1]);
    assert_eq!(a.record.name, "eu-a");
    assert!(a.updated_at_ms > 0 && !a.record.updated_at.is_empty());
    let report = a.report();
    assert_eq!(report.figures("v2").requests, 7);
    assert!(report.rejects("v3"));
    assert_eq!(report.started_at_ms, 1_700_000_000_000);

    assert_eq!(b.record.version, "v1");
    assert_eq!(b.updated_at_ms, 0);
    assert!(b.versions.is_empty() && b.rejected.is_none());

    // Both read as plain records too, as `config status` reads them.
    let nodes = store.nodes().await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["eu-a", "eu-b"]);
}

/// Many changes in a short time are coalesced: at most one put per second, the latest one
/// written last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_written_at_most_once_a_second() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("rate");
    let store = connect(&url).await;
    let (tx, rx) = watch::channel(status("eu-a", 0));
    let _task = register(url.clone(), "eu-a".into(), TTL, rx);
    poll("the first registration", DEADLINE, || async {
        stored(&store, "eu-a").await
    })
    .await;

    let start = Instant::now();
    const CHANGES: u64 = 60;
    for requests in 1..=CHANGES {
        tx.send_replace(status("eu-a", requests));
        // Spread the changes over about 1.5 s (pacing, not synchronisation).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    poll("the last change written", DEADLINE, || async {
        stored(&store, "eu-a")
            .await
            .filter(|s| s.versions["v2"].requests == CHANGES)
    })
    .await;
    let elapsed = start.elapsed();

    // etcd's `version` of a key counts its puts since it was created.
    let mut client = etcd_client::Client::connect(&url.endpoints, None)
        .await
        .unwrap();
    let resp = client.get(url.node_key("eu-a"), None).await.unwrap();
    let puts = resp.kvs()[0].version();
    // The first put, then at most one per whole second since the changes began, plus one.
    let bound = 1 + elapsed.as_secs() as i64 + 1;
    assert!(
        puts <= bound,
        "{puts} puts for {CHANGES} changes over {elapsed:?} (at most {bound})"
    );
    assert!(puts >= 2, "the changes were not written ({puts} puts)");
}
