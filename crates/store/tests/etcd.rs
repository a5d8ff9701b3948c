//! The store against a real etcd, started by each test through `LocalEtcd` in a temporary dir.

use portico_store::{Expect, LocalEtcd, Store, StoreError, StoreEvent, StoreUrl, follow, register};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod common;
use common::{DEADLINE, cluster, connect, poll, record};

/// The next event, or a panic after [`DEADLINE`].
async fn next(rx: &mut mpsc::Receiver<StoreEvent>, what: &str) -> StoreEvent {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("follower ended while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Events up to and including the first one `until` accepts.
async fn until(
    rx: &mut mpsc::Receiver<StoreEvent>,
    what: &str,
    until: impl Fn(&StoreEvent) -> bool,
) -> Vec<StoreEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next(rx, what).await;
        let done = until(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn doc_text(event: &StoreEvent) -> Option<&str> {
    match event {
        StoreEvent::Document(doc) => Some(doc.text.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_round_trip() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("portico")).await;
    assert_eq!(store.get_config().await.unwrap(), None);

    let r1 = store.put_config(r#"{"v":1}"#, Expect::Any).await.unwrap();
    let doc = store.get_config().await.unwrap().unwrap();
    assert_eq!(doc.text, r#"{"v":1}"#);
    assert_eq!(doc.mod_revision, r1);

    let r2 = store.put_config(r#"{"v":2}"#, Expect::Any).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(store.get_config().await.unwrap().unwrap().mod_revision, r2);

    assert!(store.delete_config().await.unwrap());
    assert_eq!(store.get_config().await.unwrap(), None);
    assert!(!store.delete_config().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("cas")).await;

    let r1 = store.put_config("one", Expect::Absent).await.unwrap();

    // Absent on an existing document: lost, carrying the current one.
    match store.put_config("two", Expect::Absent).await {
        Err(StoreError::CasLost {
            current: Some(current),
        }) => {
            assert_eq!(current.text, "one");
            assert_eq!(current.mod_revision, r1);
        }
        other => panic!("expected CasLost, got {other:?}"),
    }

    // A revision that is not the stored one: lost.
    match store.put_config("two", Expect::ModRevision(r1 + 100)).await {
        Err(StoreError::CasLost { current: Some(c) }) => assert_eq!(c.mod_revision, r1),
        other => panic!("expected CasLost, got {other:?}"),
    }
    assert_eq!(store.get_config().await.unwrap().unwrap().text, "one");

    // The stored revision: written.
    let r2 = store
        .put_config("two", Expect::ModRevision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
    let doc = store.get_config().await.unwrap().unwrap();
    assert_eq!((doc.text.as_str(), doc.mod_revision), ("two", r2));

    // ModRevision on a deleted document: lost, with no current document.
    store.delete_config().await.unwrap();
    match store.put_config("three", Expect::ModRevision(r2)).await {
        Err(StoreError::CasLost { current: None }) => {}
        other => panic!("expected CasLost without a document, got {other:?}"),
    }
    store.put_config("three", Expect::Absent).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_is_not_utf8_is_an_error() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("bytes");
    let mut raw = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    raw.put(url.config_key(), vec![0xff, 0xfe, b'{'], None)
        .await
        .unwrap();
    let store = connect(&url).await;
    match store.get_config().await {
        Err(e @ StoreError::InvalidValue { .. }) => {
            assert!(e.to_string().contains("/bytes/config"), "{e}");
            assert!(e.to_string().contains("not UTF-8"), "{e}");
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_the_document_then_each_put_then_the_delete() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("follow");
    let store = connect(&url).await;
    let r0 = store.put_config("v0", Expect::Any).await.unwrap();

    let (mut rx, task) = follow(url);
    assert_eq!(next(&mut rx, "Connected").await, StoreEvent::Connected);
    match next(&mut rx, "the initial document").await {
        StoreEvent::Document(doc) => {
            assert_eq!((doc.text.as_str(), doc.mod_revision), ("v0", r0));
        }
        other => panic!("expected the initial document, got {other:?}"),
    }

    let mut revisions = vec![r0];
    for v in ["v1", "v2", "v3"] {
        revisions.push(store.put_config(v, Expect::Any).await.unwrap());
    }
    for (i, v) in ["v1", "v2", "v3"].into_iter().enumerate() {
        match next(&mut rx, v).await {
            StoreEvent::Document(doc) => {
                assert_eq!(doc.text, v);
                assert_eq!(doc.mod_revision, revisions[i + 1]);
            }
            other => panic!("expected {v}, got {other:?}"),
        }
    }

    store.delete_config().await.unwrap();
    assert_eq!(next(&mut rx, "Deleted").await, StoreEvent::Deleted);

    // A new document after the delete is seen too.
    store.put_config("v4", Expect::Absent).await.unwrap();
    assert_eq!(doc_text(&next(&mut rx, "v4").await), Some("v4"));

    drop(rx);
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the follower ends when its receiver is dropped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_progress_requests_keep_an_idle_watch() {
    // An idle watch stays up (progress answers count as signs of life): no Disconnected in a
    // few silence limits.
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("idle");
    let (mut rx, _task) = follow(url);
    assert_eq!(next(&mut rx, "Connected").await, StoreEvent::Connected);
    let quiet = portico_store::WATCH_SILENCE_LIMIT * 2;
    match tokio::time::timeout(quiet, rx.recv()).await {
        Err(_) => {}
        Ok(event) => panic!("an idle follower emitted {event:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_across_an_outage() {
    let (_dir, mut etcd) = cluster(1);
    let url = etcd.url("outage");
    let store = connect(&url).await;
    store.put_config("before", Expect::Any).await.unwrap();

    let (mut rx, _task) = follow(url.clone());
    let seen = until(&mut rx, "the first document", |e| doc_text(e).is_some()).await;
    assert_eq!(seen[0], StoreEvent::Connected);

    etcd.stop_member(0);
    assert!(!etcd.is_running(0));
    let seen = until(&mut rx, "Disconnected", |e| {
        matches!(e, StoreEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(seen.len(), 1, "only Disconnected: {seen:?}");

    etcd.start_member(0).unwrap();
    assert!(etcd.is_running(0));
    let store = connect(&url).await;
    let rev = store.put_config("after", Expect::Any).await.unwrap();

    let seen = until(&mut rx, "the new document", |e| {
        doc_text(e) == Some("after")
    })
    .await;
    assert!(seen.contains(&StoreEvent::Connected), "{seen:?}");
    assert!(
        seen.iter().all(|e| doc_text(e) != Some("before")),
        "the old document was emitted again: {seen:?}"
    );
    match seen.last() {
        Some(StoreEvent::Document(doc)) => assert_eq!(doc.mod_revision, rev),
        other => panic!("{other:?}"),
    }
    // Disconnected is emitted once per outage, however many reconnection attempts failed.
    let disconnects = seen
        .iter()
        .filter(|e| matches!(e, StoreEvent::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_notices_a_frozen_etcd() {
    // A frozen member keeps its connections open but answers nothing: only the progress
    // check can tell. Disconnected must come within a few seconds, well before the deadline.
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("frozen");
    let store = connect(&url).await;
    store.put_config("before", Expect::Any).await.unwrap();
    let (mut rx, _task) = follow(url.clone());
    until(&mut rx, "the first document", |e| doc_text(e).is_some()).await;

    etcd.pause_member(0).unwrap();
    let frozen_at = Instant::now();
    let seen = until(&mut rx, "Disconnected", |e| {
        matches!(e, StoreEvent::Disconnected { .. })
    })
    .await;
    let noticed_after = frozen_at.elapsed();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        noticed_after < Duration::from_secs(15),
        "noticed after {noticed_after:?}"
    );

    etcd.resume_member(0).unwrap();
    let store = connect(&url).await;
    store.put_config("after", Expect::Any).await.unwrap();
    let seen = until(&mut rx, "the new document", |e| {
        doc_text(e) == Some("after")
    })
    .await;
    assert!(seen.contains(&StoreEvent::Connected), "{seen:?}");
    assert!(
        seen.iter().all(|e| doc_text(e) != Some("before")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_a_three_member_cluster_with_a_member_killed() {
    let (_dir, mut etcd) = cluster(3);
    assert_eq!(etcd.pids().len(), 3);
    let url = etcd.url("three");
    let store = connect(&url).await;
    store.put_config("a", Expect::Any).await.unwrap();

    let (mut rx, _task) = follow(url.clone());
    until(&mut rx, "document a", |e| doc_text(e) == Some("a")).await;

    etcd.stop_member(0);
    assert_eq!(etcd.pids().len(), 2);
    let survivors = StoreUrl {
        endpoints: etcd.endpoints()[1..].to_vec(),
        prefix: url.prefix.clone(),
    };
    let store = connect(&survivors).await;
    let rev = store.put_config("b", Expect::Any).await.unwrap();

    let seen = until(&mut rx, "document b", |e| doc_text(e) == Some("b")).await;
    let docs: Vec<&str> = seen.iter().filter_map(doc_text).collect();
    assert_eq!(docs, vec!["b"], "{seen:?}");
    match seen.last() {
        Some(StoreEvent::Document(doc)) => assert_eq!(doc.mod_revision, rev),
        other => panic!("{other:?}"),
    }

    // The full URL still works for plain requests with member 0 down.
    let store = connect(&url).await;
    assert_eq!(store.get_config().await.unwrap().unwrap().text, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_updates_and_revokes() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("reg");
    let store = connect(&url).await;
    let (tx, rx) = watch::channel(record("eu-a", "v1"));
    // A long TTL: the record must go because it is revoked, not because it expired.
    let task = register(url.clone(), "eu-a".to_string(), Duration::from_secs(30), rx);

    let nodes = poll("the registration", DEADLINE, || async {
        store.nodes().await.ok().filter(|n| !n.is_empty())
    })
    .await;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "eu-a");
    assert_eq!(nodes[0].version, "v1");
    assert!(
        humantime::parse_rfc3339(&nodes[0].updated_at).is_ok(),
        "{}",
        nodes[0].updated_at
    );

    tx.send_modify(|r| {
        r.version = "v2".to_string();
        r.healthy = false;
    });
    let nodes = poll("the updated record", DEADLINE, || async {
        store
            .nodes()
            .await
            .ok()
            .filter(|n| n.first().is_some_and(|r| r.version == "v2"))
    })
    .await;
    assert!(!nodes[0].healthy);

    drop(tx);
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the registration ends when its sender is dropped")
        .unwrap();
    assert_eq!(
        store.nodes().await.unwrap(),
        vec![],
        "the lease was revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_that_stops_keeping_alive_expires() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("ttl");
    let store = connect(&url).await;
    let (tx_a, rx_a) = watch::channel(record("a", "v1"));
    let (_tx_b, rx_b) = watch::channel(record("b", "v1"));
    let ttl = Duration::from_secs(2);
    let task_a = register(url.clone(), "a".to_string(), ttl, rx_a);
    let _task_b = register(url.clone(), "b".to_string(), ttl, rx_b);

    let names = poll("both registrations", DEADLINE, || async {
        let nodes = store.nodes().await.ok()?;
        (nodes.len() == 2).then(|| nodes.into_iter().map(|n| n.name).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(names, vec!["a", "b"], "sorted by name");

    // The process "dies": no revoke, no more keep-alives.
    task_a.abort();
    let _ = task_a.await;
    drop(tx_a);
    let names = poll("a's lease to expire", DEADLINE, || async {
        let nodes = store.nodes().await.ok()?;
        (nodes.len() == 1).then(|| nodes.into_iter().map(|n| n.name).collect::<Vec<_>>())
    })
    .await;
    // b, kept alive, outlives several of its TTLs.
    assert_eq!(names, vec!["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_survives_an_outage() {
    let (_dir, mut etcd) = cluster(1);
    let url = etcd.url("reg-outage");
    let (tx, rx) = watch::channel(record("eu-a", "v1"));
    let _task = register(url.clone(), "eu-a".to_string(), Duration::from_secs(2), rx);
    let store = connect(&url).await;
    poll("the registration", DEADLINE, || async {
        store.nodes().await.ok().filter(|n| n.len() == 1)
    })
    .await;

    etcd.stop_member(0);
    // Changed while etcd is down: written once it is back.
    tx.send_modify(|r| r.version = "v2".to_string());
    etcd.start_member(0).unwrap();
    let store = connect(&url).await;
    poll("the registration after the restart", DEADLINE, || async {
        store
            .nodes()
            .await
            .ok()
            .filter(|n| n.len() == 1 && n[0].version == "v2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_skips_values_that_are_not_records() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("junk");
    let mut raw = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    raw.put(url.node_key("zz"), record("zz", "v").to_json(), None)
        .await
        .unwrap();
    raw.put(url.node_key("junk"), "not json", None)
        .await
        .unwrap();
    raw.put(url.node_key("aa"), record("aa", "v").to_json(), None)
        .await
        .unwrap();
    // Outside the nodes prefix: not listed.
    raw.put(
        format!("/{}/nodes-old/x", url.prefix),
        record("x", "v").to_json(),
        None,
    )
    .await
    .unwrap();
    let store = connect(&url).await;
    let names: Vec<String> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, vec!["aa", "zz"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_closed_port_is_unreachable_within_the_timeout() {
    let port = portico_test_support::free_addr().port();
    let url: StoreUrl = format!("etcd://127.0.0.1:{port}/portico").parse().unwrap();
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let result = Store::connect(&url, timeout).await;
    let took = started.elapsed();
    match result {
        Err(e @ StoreError::Unreachable { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        }
        Err(other) => panic!("expected Unreachable, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_reports_an_unreachable_store_and_connects_when_it_appears() {
    // Nothing listens at first: Disconnected once, then nothing while it retries.
    let (_dir, mut etcd) = cluster(1);
    let url = etcd.url("late");
    etcd.stop_member(0);
    let (mut rx, _task) = follow(url.clone());
    match next(&mut rx, "Disconnected").await {
        StoreEvent::Disconnected { reason } => {
            assert!(reason.contains(&url.endpoints[0]), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    etcd.start_member(0).unwrap();
    assert_eq!(next(&mut rx, "Connected").await, StoreEvent::Connected);
}

#[test]
fn local_etcd_members_stop_and_restart() {
    let (_dir, mut etcd) = cluster(1);
    let pid = etcd.pids()[0];
    assert!(etcd.is_running(0));
    etcd.stop_member(0);
    assert!(!etcd.is_running(0));
    assert!(etcd.pids().is_empty());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    etcd.start_member(0).unwrap();
    assert!(etcd.is_running(0));
    assert_ne!(etcd.pids(), vec![pid]);
    let pid = etcd.pids()[0];
    drop(etcd);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "dropping the cluster kills its members"
    );
    assert!(etcd_log_exists(&_dir));
}

fn etcd_log_exists(dir: &TempDir) -> bool {
    let member = dir.path().join("m0");
    member.join(portico_store::LOG_FILE).is_file() && member.join("data").join("member").is_dir()
}

#[test]
fn a_member_that_cannot_start_is_reported_with_its_log() {
    // Its client port is taken: etcd exits at once, and the error shows why.
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = portico_store::MemberSpec {
        name: "m0".to_string(),
        client: taken.local_addr().unwrap(),
        peer: portico_test_support::free_addr(),
        data_dir: dir.path().join("m0"),
        command_prefix: Vec::new(),
    };
    let started = std::time::Instant::now();
    let e = match LocalEtcd::start(vec![spec]) {
        Err(e) => e,
        Ok(etcd) => panic!("started on a taken port: {etcd:?}"),
    };
    assert!(e.contains("etcd member m0 exited"), "{e}");
    assert!(e.contains("address already in use"), "{e}");
    assert!(started.elapsed() < portico_store::START_DEADLINE, "{e}");
}
