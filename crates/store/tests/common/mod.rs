//! Helpers shared by the store's etcd test suites: a local cluster, a connection, polling
//! (the last two from portico-test-support).

#![allow(dead_code)]

use portico_store::{LocalEtcd, NodeRecord, Store, StoreUrl};
#[allow(unused_imports)] // not every suite polls
pub use portico_test_support::poll;
use std::time::Duration;
use tempfile::TempDir;

/// The time allowed to each request of a test's `Store`.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Starts a cluster of `members` members; fails (never skips) when etcd is missing.
pub fn cluster(members: usize) -> (TempDir, LocalEtcd) {
    let (etcd, dir) = portico_test_support::etcd(members);
    (dir, etcd)
}

/// Connects to `url`, or panics naming it.
pub async fn connect(url: &StoreUrl) -> Store {
    match Store::connect(url, TIMEOUT).await {
        Ok(store) => store,
        Err(e) => panic!("connect to {url}: {e}"),
    }
}

/// A healthy node's record in region `eu`, running `version`.
pub fn record(name: &str, version: &str) -> NodeRecord {
    NodeRecord {
        name: name.to_string(),
        region: "eu".to_string(),
        version: version.to_string(),
        healthy: true,
        admin: "http://127.0.0.1:9901".to_string(),
        updated_at: String::new(),
    }
}
