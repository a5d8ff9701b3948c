//! Helpers for Portico's integration tests: in-process nodes and origins on ports chosen at
//! run time, a small HTTP client, polling with a deadline, and a metrics scraper.

pub mod acme;
pub mod client;
pub mod metrics;
pub mod node;
pub mod seen;
pub mod tls;
pub mod wait;

pub use client::{Http, Resp, raw};
pub use metrics::Scrape;
pub use node::{
    FAST_PROBES, TestNode, free_addr, one_pool, origin, origin_json, origin_pair, origin_with,
};
pub use seen::{header, last_request};
pub use wait::eventually;

/// A real etcd cluster of `members` members on free loopback ports, with its data in a
/// temporary directory (kept alive beside it). Panics with the install command when etcd is
/// missing: store tests never skip.
pub fn etcd(members: usize) -> (portico_store::LocalEtcd, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = portico_store::LocalEtcd::start_local(members, dir.path())
        .unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    (cluster, dir)
}
