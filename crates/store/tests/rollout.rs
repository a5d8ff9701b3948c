//! Versions, history and the rollout record against a real etcd, started by each test through
//! `LocalEtcd` in a temporary dir.

use portico_core::rollout::{
    Command, NodeReport, Outcome, Push, Rollout, RolloutError, Settings, State,
};
use portico_store::{
    Expect, KEPT_VERSIONS, LimitSide, StoreError, StoreEvent, StoredRollout, VersionRecord,
};
use std::time::Duration;

mod common;
use common::{cluster, connect};

const NOW: u64 = 1_700_000_000_000;

fn record(version: &str) -> VersionRecord {
    VersionRecord {
        version: version.to_string(),
        pushed_at: "2026-01-01T00:00:00Z".to_string(),
        author: "ops@host".to_string(),
        message: format!("push {version}"),
        outcome: Outcome::InProgress,
        reason: None,
        ended_at: None,
    }
}

fn node(name: &str) -> NodeReport {
    NodeReport {
        name: name.to_string(),
        region: "eu".to_string(),
        healthy: true,
        version: "s1".to_string(),
        started_at_ms: NOW - 1000,
        rejected: None,
        versions: Default::default(),
        baseline: None,
    }
}

/// A rollout of `target` over one node (`stable`: the stable version, if any).
fn rollout(target: &str, stable: Option<&str>) -> Rollout {
    let push = Push {
        target: target.to_string(),
        stable: stable.map(str::to_string),
        waves: None,
        canary: None,
        settings: Settings::default(),
        author: "ops@host".to_string(),
    };
    Rollout::start(push, &[node("eu-a")], NOW).unwrap().0
}

fn command(rollout: &mut Rollout, cmd: Command) {
    rollout.command(cmd, &[node("eu-a")], NOW + 1000).unwrap();
}

/// Promotes by hand until the rollout is promoted.
fn promote(rollout: &mut Rollout) {
    while !rollout.state.is_over() {
        command(
            rollout,
            Command::Promote {
                author: "ops@host".into(),
            },
        );
    }
    assert_eq!(rollout.state, State::Promoted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_history_outcomes_and_pruning() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("versions")).await;
    assert_eq!(store.get_version("v0").await.unwrap(), None);
    assert!(store.history(10).await.unwrap().is_empty());

    for i in 0..5 {
        let v = format!("v{i}");
        store
            .put_version(&record(&v), &format!("doc {i}"))
            .await
            .unwrap();
    }
    // A version pushed again is refused, whatever its record says.
    let mut again = record("v3");
    again.message = "other".into();
    assert_eq!(
        store.put_version(&again, "doc 3").await,
        Err(StoreError::VersionExists {
            version: "v3".into(),
            outcome: Outcome::InProgress
        })
    );

    let v2 = store.get_version("v2").await.unwrap().unwrap();
    assert_eq!(v2.record, record("v2"));
    assert_eq!(
        store.get_document("v2").await.unwrap().as_deref(),
        Some("doc 2")
    );

    let newest: Vec<String> = store
        .history(3)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.version)
        .collect();
    assert_eq!(newest, ["v4", "v3", "v2"]);
    assert_eq!(store.history(0).await.unwrap().len(), 5);

    store
        .set_outcome(
            "v2",
            Outcome::RolledBack,
            Some("rolled back: gate 1".into()),
        )
        .await
        .unwrap();
    let v2 = store.get_version("v2").await.unwrap().unwrap().record;
    assert_eq!(v2.outcome, Outcome::RolledBack);
    assert_eq!(v2.reason.as_deref(), Some("rolled back: gate 1"));
    assert!(v2.ended_at.is_some());
    assert_eq!(v2.message, "push v2");
    assert!(matches!(
        store.set_outcome("nope", Outcome::Promoted, None).await,
        Err(StoreError::UnknownVersion { .. })
    ));

    // The outcome was written last: v2 is the newest now. Keep the newest two and the
    // protected v0: v3 and v1 go, record and document.
    assert_eq!(store.prune_versions(2, &["v0"]).await.unwrap(), 2);
    let left: Vec<String> = store
        .history(0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.version)
        .collect();
    assert_eq!(left, ["v2", "v4", "v0"]);
    assert_eq!(store.get_document("v1").await.unwrap(), None);
    assert_eq!(store.get_document("v3").await.unwrap(), None);
    assert_eq!(
        store.get_document("v0").await.unwrap().as_deref(),
        Some("doc 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_prunes_to_the_newest_hundred_but_the_stable_one() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("prune")).await;
    let total = KEPT_VERSIONS + 5;
    for i in 0..total {
        store
            .put_version(&record(&format!("v{i:03}")), "{}")
            .await
            .unwrap();
    }
    assert_eq!(store.history(0).await.unwrap().len(), total);
    // The push of t (stable: v001) keeps t, the 99 newest before it, and v001.
    store
        .start_rollout(&rollout("t", Some("v001")), "t doc", "", Expect::Any)
        .await
        .unwrap();
    let left: Vec<String> = store
        .history(0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.version)
        .collect();
    assert_eq!(left.len(), KEPT_VERSIONS + 1);
    assert_eq!(left[0], "t");
    assert_eq!(left[1], format!("v{:03}", total - 1));
    assert_eq!(left[KEPT_VERSIONS - 1], format!("v{:03}", total - 99));
    assert_eq!(left[KEPT_VERSIONS], "v001");
    assert_eq!(store.get_version("v000").await.unwrap(), None);
    assert_eq!(store.get_document("v000").await.unwrap(), None);
    assert_eq!(
        store
            .prune_versions(KEPT_VERSIONS, &["v001"])
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_starts_only_when_none_is_in_progress() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("start")).await;
    let stable = store
        .put_config("stable doc", Expect::Absent)
        .await
        .unwrap();

    let first = rollout("t1", Some("s1"));
    assert_eq!(first.state, State::InProgress);
    // The plan was made against another stable document: lost, naming the stored one.
    match store
        .start_rollout(&first, "t1 doc", "m", Expect::ModRevision(stable + 100))
        .await
    {
        Err(StoreError::CasLost { current: Some(doc) }) => assert_eq!(doc.text, "stable doc"),
        other => panic!("expected a lost compare, got {other:?}"),
    }
    assert_eq!(store.get_rollout().await.unwrap(), None);
    assert_eq!(store.get_version("t1").await.unwrap(), None);

    store
        .start_rollout(&first, "t1 doc", "first", Expect::ModRevision(stable))
        .await
        .unwrap();
    let stored = store.get_rollout().await.unwrap().unwrap();
    assert_eq!(stored.rollout, first);
    let v = store.get_version("t1").await.unwrap().unwrap().record;
    assert_eq!(
        (v.outcome, v.message.as_str()),
        (Outcome::InProgress, "first")
    );
    assert_eq!(v.pushed_at, "2023-11-14T22:13:20Z");
    assert_eq!(
        store.get_document("t1").await.unwrap().as_deref(),
        Some("t1 doc")
    );
    assert_eq!(
        store.get_config().await.unwrap().unwrap().text,
        "stable doc"
    );

    // Another push while it lasts: refused, naming it.
    let err = store
        .start_rollout(&rollout("t2", Some("s1")), "t2 doc", "", Expect::Any)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::RolloutInProgress {
            target: "t1".into(),
            state: "in progress".into()
        }
    );
    assert!(err.to_string().contains("t1"), "{err}");
    assert_eq!(store.get_version("t2").await.unwrap(), None);

    // Abort it (saved by compare-and-swap), then race two pushes: exactly one starts.
    let mut aborted = stored.rollout.clone();
    command(
        &mut aborted,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    store
        .save_rollout(&aborted, Expect::ModRevision(stored.mod_revision))
        .await
        .unwrap();
    let (a, b) = (rollout("t2", Some("s1")), rollout("t3", Some("s1")));
    let (ra, rb) = tokio::join!(
        store.start_rollout(&a, "t2 doc", "", Expect::Any),
        store.start_rollout(&b, "t3 doc", "", Expect::Any)
    );
    let (won, lost) = match (ra, rb) {
        (Ok(_), Err(e)) => ("t2", e),
        (Err(e), Ok(_)) => ("t3", e),
        other => panic!("expected exactly one start, got {other:?}"),
    };
    assert_eq!(
        lost,
        StoreError::RolloutInProgress {
            target: won.into(),
            state: "in progress".into()
        }
    );
    assert_eq!(
        store.get_rollout().await.unwrap().unwrap().rollout.target,
        won
    );
    let loser = if won == "t2" { "t3" } else { "t2" };
    assert_eq!(store.get_version(loser).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_rollout_writes_outcome_config_and_rollout_together() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("end")).await;
    store
        .put_config("stable doc", Expect::Absent)
        .await
        .unwrap();

    // Aborted: outcome and rollout, config untouched; a stale save loses.
    let first = rollout("t1", Some("s1"));
    store
        .start_rollout(&first, "t1 doc", "", Expect::Any)
        .await
        .unwrap();
    let stored = store.get_rollout().await.unwrap().unwrap();
    let mut aborted = first.clone();
    command(
        &mut aborted,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    let stale = Expect::ModRevision(stored.mod_revision - 1);
    assert_eq!(
        store.save_rollout(&aborted, stale).await,
        Err(StoreError::RolloutChanged {
            current: Some(stored.mod_revision)
        })
    );
    assert_eq!(
        store
            .get_version("t1")
            .await
            .unwrap()
            .unwrap()
            .record
            .outcome,
        Outcome::InProgress
    );
    store
        .save_rollout(&aborted, Expect::ModRevision(stored.mod_revision))
        .await
        .unwrap();
    let v = store.get_version("t1").await.unwrap().unwrap().record;
    assert_eq!(v.outcome, Outcome::Aborted);
    assert_eq!(v.reason.as_deref(), Some("aborted"));
    assert_eq!(
        store.get_config().await.unwrap().unwrap().text,
        "stable doc"
    );
    assert_eq!(store.get_rollout().await.unwrap().unwrap().rollout, aborted);

    // Promoted: config = the target's document, in the same transaction.
    let mut second = rollout("t2", Some("s1"));
    store
        .start_rollout(&second, "t2 doc", "", Expect::Any)
        .await
        .unwrap();
    let rev = store.get_rollout().await.unwrap().unwrap().mod_revision;
    promote(&mut second);
    let saved = store
        .save_rollout(&second, Expect::ModRevision(rev))
        .await
        .unwrap();
    let config = store.get_config().await.unwrap().unwrap();
    assert_eq!(
        (config.text.as_str(), config.mod_revision),
        ("t2 doc", saved)
    );
    let v = store.get_version("t2").await.unwrap().unwrap().record;
    assert_eq!((v.outcome, v.reason), (Outcome::Promoted, None));
    // Saved again: the outcome is recorded already, config is not rewritten.
    store.save_rollout(&second, Expect::Any).await.unwrap();
    assert_eq!(
        store.get_config().await.unwrap().unwrap().mod_revision,
        saved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_an_empty_store_is_stable_at_once() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("empty")).await;
    let first = rollout("t1", None);
    assert_eq!(first.state, State::Promoted);
    let rev = store
        .start_rollout(&first, "t1 doc", "", Expect::Absent)
        .await
        .unwrap();
    let config = store.get_config().await.unwrap().unwrap();
    assert_eq!((config.text.as_str(), config.mod_revision), ("t1 doc", rev));
    let v = store.get_version("t1").await.unwrap().unwrap().record;
    assert_eq!(v.outcome, Outcome::Promoted);
    assert!(v.ended_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_only_to_a_promoted_version_and_not_during_a_rollout() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("rollback")).await;
    let first = rollout("t1", None);
    store
        .start_rollout(&first, "t1 doc", "", Expect::Absent)
        .await
        .unwrap();
    let mut second = rollout("t2", Some("t1"));
    store
        .start_rollout(&second, "t2 doc", "", Expect::Any)
        .await
        .unwrap();
    assert!(matches!(
        store.rollback_to("t1").await,
        Err(StoreError::RolloutInProgress { .. })
    ));
    promote(&mut second);
    store.save_rollout(&second, Expect::Any).await.unwrap();
    assert_eq!(store.get_config().await.unwrap().unwrap().text, "t2 doc");

    let mut third = rollout("t3", Some("t2"));
    store
        .start_rollout(&third, "t3 doc", "", Expect::Any)
        .await
        .unwrap();
    command(
        &mut third,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    store.save_rollout(&third, Expect::Any).await.unwrap();

    for (version, outcome) in [("t3", "aborted"), ("t9", "unknown")] {
        assert_eq!(
            store.rollback_to(version).await,
            Err(StoreError::Refused(RolloutError::NotPromoted {
                version: version.into(),
                outcome: outcome.into()
            }))
        );
    }
    let rev = store.rollback_to("t1").await.unwrap();
    let config = store.get_config().await.unwrap().unwrap();
    assert_eq!((config.text.as_str(), config.mod_revision), ("t1 doc", rev));
}

/// A document over etcd's limits gets an error saying its size, the limit and the flag to
/// raise — whether the gRPC layer refuses it (over 2 MiB) or etcd (over 1.5 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_too_large_says_size_limit_and_flag() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("large")).await;
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(2_900_000));
    let err = store.put_config(&huge, Expect::Any).await.unwrap_err();
    match &err {
        StoreError::TooLarge {
            side: LimitSide::Server,
            size: Some(size),
            limit: Some(limit),
        } => {
            assert!(*size >= huge.len() as u64, "{err:?}");
            assert!(*limit < *size, "{err:?}");
        }
        other => panic!("expected a size refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("--max-request-bytes"), "{err}");

    let large = format!("{{\"pad\":\"{}\"}}", "x".repeat(1_700_000));
    let err = store
        .start_rollout(&rollout("big", None), &large, "", Expect::Any)
        .await
        .unwrap_err();
    match &err {
        StoreError::TooLarge {
            side: LimitSide::Server,
            size: Some(size),
            ..
        } => assert!(*size >= large.len() as u64, "{err:?}"),
        other => panic!("expected a size refusal, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "{} bytes",
            match err {
                StoreError::TooLarge { size: Some(s), .. } => s,
                _ => 0,
            }
        )),
        "{text}"
    );
    assert!(text.contains("--max-request-bytes"), "{text}");
    assert_eq!(store.get_version("big").await.unwrap(), None);
}

/// Nodes follow the rollout as they follow `config`: every saved state, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_is_followed() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("follow");
    let store = connect(&url).await;
    let (mut events, _task) = portico_store::follow_rollout(url.clone());
    let mut next = async || match tokio::time::timeout(Duration::from_secs(30), events.recv()).await
    {
        Ok(Some(event)) => event,
        other => panic!("no event from the follower: {other:?}"),
    };
    assert_eq!(next().await, StoreEvent::Connected);

    let mut first = rollout("t1", Some("s1"));
    store
        .start_rollout(&first, "t1 doc", "", Expect::Any)
        .await
        .unwrap();
    let StoreEvent::Document(doc) = next().await else {
        panic!("expected the started rollout");
    };
    let seen = StoredRollout::from_doc(&doc).unwrap();
    assert_eq!(
        (&seen.rollout, seen.mod_revision),
        (&first, doc.mod_revision)
    );

    command(
        &mut first,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    store
        .save_rollout(&first, Expect::ModRevision(seen.mod_revision))
        .await
        .unwrap();
    let StoreEvent::Document(doc) = next().await else {
        panic!("expected the aborted rollout");
    };
    assert_eq!(
        StoredRollout::from_doc(&doc).unwrap().rollout.state,
        State::Aborted
    );
}

/// A member down mid-rollout (quorum kept): the rollout is saved and promoted all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_mid_rollout_does_not_stop_it() {
    let (_dir, mut etcd) = cluster(3);
    let store = connect(&etcd.url("quorum")).await;
    store
        .put_config("stable doc", Expect::Absent)
        .await
        .unwrap();
    let mut second = rollout("t2", Some("s1"));
    store
        .start_rollout(&second, "t2 doc", "", Expect::Any)
        .await
        .unwrap();
    let rev = store.get_rollout().await.unwrap().unwrap().mod_revision;

    etcd.stop_member(0);
    promote(&mut second);
    store
        .save_rollout(&second, Expect::ModRevision(rev))
        .await
        .unwrap();
    assert_eq!(store.get_config().await.unwrap().unwrap().text, "t2 doc");
    assert_eq!(
        store
            .get_version("t2")
            .await
            .unwrap()
            .unwrap()
            .record
            .outcome,
        Outcome::Promoted
    );
}

/// A version rolled back or aborted may be pushed again (its record rewritten, first in the
/// history again); a promoted one is refused with the way to make it stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_version_may_be_pushed_again_a_promoted_one_not() {
    let (_dir, etcd) = cluster(1);
    let store = connect(&etcd.url("again")).await;
    store
        .put_config("stable doc", Expect::Absent)
        .await
        .unwrap();
    let mut first = rollout("t1", Some("s1"));
    store
        .start_rollout(&first, "t1 doc", "try 1", Expect::Any)
        .await
        .unwrap();
    command(
        &mut first,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    store.save_rollout(&first, Expect::Any).await.unwrap();
    let mut second = rollout("t2", Some("s1"));
    store
        .start_rollout(&second, "t2 doc", "", Expect::Any)
        .await
        .unwrap();
    promote(&mut second);
    store.save_rollout(&second, Expect::Any).await.unwrap();

    // t1 again: started, its record rewritten, first in the history.
    let mut retry = rollout("t1", Some("t2"));
    retry.started_at_ms += 60_000;
    store
        .start_rollout(&retry, "t1 doc", "try 2", Expect::Any)
        .await
        .unwrap();
    let v = store.get_version("t1").await.unwrap().unwrap().record;
    assert_eq!(
        (v.outcome, v.message.as_str()),
        (Outcome::InProgress, "try 2")
    );
    assert_eq!((v.reason, v.ended_at), (None, None));
    let order: Vec<String> = store
        .history(0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.version)
        .collect();
    assert_eq!(order, ["t1", "t2"]);
    command(
        &mut retry,
        Command::Abort {
            author: "ops@host".into(),
        },
    );
    store.save_rollout(&retry, Expect::Any).await.unwrap();

    // t3 promoted, then t2 (promoted before) again: refused, pointing at `config rollback`.
    let mut third = rollout("t3", Some("t2"));
    store
        .start_rollout(&third, "t3 doc", "", Expect::Any)
        .await
        .unwrap();
    promote(&mut third);
    store.save_rollout(&third, Expect::Any).await.unwrap();
    let err = store
        .start_rollout(&rollout("t2", Some("t3")), "t2 doc", "", Expect::Any)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::VersionExists {
            version: "t2".into(),
            outcome: Outcome::Promoted
        }
    );
    assert!(err.to_string().contains("config rollback t2"), "{err}");
}
