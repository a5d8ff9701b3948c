//! The conductor election against a real etcd, started by each test through `LocalEtcd`.

use portico_store::{Conductorship, Role};
use std::time::Duration;

mod common;
use common::{cluster, connect};
use portico_test_support::eventually as poll;

/// The lease TTL the campaigners ask for.
const TTL: Duration = Duration::from_secs(2);
/// What a takeover may take beyond the TTL on a loaded machine (noticing, backoff, requests).
const MARGIN: Duration = Duration::from_secs(15);

async fn elected(c: &mut Conductorship, who: &str) {
    if tokio::time::timeout(TTL + MARGIN, c.elected())
        .await
        .is_err()
    {
        panic!("{who} was not elected (role {:?})", c.role());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conductor_and_a_takeover_when_it_dies_or_resigns() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("conduct");
    let store = connect(&url).await;
    assert_eq!(store.conductor().await.unwrap(), None);

    let mut a = Conductorship::campaign(url.clone(), "a".into(), TTL);
    elected(&mut a, "a").await;
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some("a"));

    // The second campaigner sees the first conduct, and does not.
    let b = Conductorship::campaign(url.clone(), "b".into(), TTL);
    let following_a = Role::Following { leader: "a".into() };
    poll("b to follow a", MARGIN, || async {
        b.role() == following_a
    })
    .await;
    assert!(a.is_leader());

    // a dies without revoking its lease: b takes over once the lease expires.
    a.abandon().await;
    poll("b to take over from a dead a", TTL + MARGIN, || async {
        b.is_leader()
    })
    .await;
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some("b"));

    // b resigns: its lease is revoked and c takes over.
    let c = Conductorship::campaign(url.clone(), "c".into(), TTL);
    let following_b = Role::Following { leader: "b".into() };
    poll("c to follow b", MARGIN, || async {
        c.role() == following_b
    })
    .await;
    b.resign().await;
    poll("c to take over from b", TTL + MARGIN, || async {
        c.is_leader()
    })
    .await;
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some("c"));

    // Dropped: the key goes with the revoked lease.
    drop(c);
    poll("the key to go with c", TTL + MARGIN, || async {
        store.conductor().await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conductor_cut_off_from_the_store_steps_down() {
    let (_dir, mut etcd) = cluster(1);
    let url = etcd.url("stepdown");
    let mut a = Conductorship::campaign(url, "a".into(), TTL);
    elected(&mut a, "a").await;
    etcd.stop_member(0);
    if tokio::time::timeout(TTL + MARGIN, a.lost()).await.is_err() {
        panic!("a still conducts without a store (role {:?})", a.role());
    }
    assert!(!a.is_leader());
}

/// The key deleted by hand: the holder steps down, and exactly one campaigner takes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_by_hand_is_taken_again_by_exactly_one() {
    let (_dir, etcd) = cluster(1);
    let url = etcd.url("deleted");
    let mut a = Conductorship::campaign(url.clone(), "a".into(), TTL);
    elected(&mut a, "a").await;
    let b = Conductorship::campaign(url.clone(), "b".into(), TTL);
    let following_a = Role::Following { leader: "a".into() };
    poll("b to follow a", MARGIN, || async {
        b.role() == following_a
    })
    .await;

    let mut client = etcd_client::Client::connect(&url.endpoints, None)
        .await
        .unwrap();
    let key = url.conductor_key();
    let first = client.get(key.as_str(), None).await.unwrap().kvs()[0].create_revision();
    client.delete(key.as_str(), None).await.unwrap();

    poll("one campaigner to hold a new key", TTL + MARGIN, || {
        let (a, b, mut client, key) = (&a, &b, client.clone(), key.clone());
        async move {
            let resp = client.get(key.as_str(), None).await.unwrap();
            let Some(kv) = resp.kvs().first() else {
                return false;
            };
            let holder = String::from_utf8_lossy(kv.value()).into_owned();
            let leaders: Vec<&str> = [("a", a.is_leader()), ("b", b.is_leader())]
                .into_iter()
                .filter_map(|(name, leads)| leads.then_some(name))
                .collect();
            kv.create_revision() > first && leaders == [holder.as_str()]
        }
    })
    .await;
}
