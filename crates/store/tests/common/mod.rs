//! Helpers shared by the store's etcd test suites: a local cluster, a connection, polling.

#![allow(dead_code)]

use portico_store::{LocalEtcd, Store, StoreUrl};
use std::future::Future;
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::Instant;

/// The time allowed to each request of a test's `Store`.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Starts a cluster of `members` members; fails (never skips) when etcd is missing.
pub fn cluster(members: usize) -> (TempDir, LocalEtcd) {
    let dir = tempfile::tempdir().expect("temporary dir");
    match LocalEtcd::start_local(members, dir.path()) {
        Ok(etcd) => (dir, etcd),
        Err(e) => panic!("{e}"),
    }
}

/// Connects to `url`, or panics naming it.
pub async fn connect(url: &StoreUrl) -> Store {
    match Store::connect(url, TIMEOUT).await {
        Ok(store) => store,
        Err(e) => panic!("connect to {url}: {e}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn poll<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
