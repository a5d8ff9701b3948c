//! A real local etcd cluster for a test: store tests never skip.

use portico_store::LocalEtcd;
use std::path::Path;
use tempfile::TempDir;

/// A real etcd cluster of `members` members on free loopback ports, with its data in a
/// temporary directory (kept alive beside it). Panics with the install command when etcd is
/// missing: store tests never skip.
pub fn etcd(members: usize) -> (LocalEtcd, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = etcd_in(members, dir.path());
    (cluster, dir)
}

/// The same with its data under `dir` (`dir/m0`, `dir/m1`, ...).
pub fn etcd_in(members: usize, dir: &Path) -> LocalEtcd {
    LocalEtcd::start_local(members, dir).unwrap_or_else(|e| panic!("cannot start etcd: {e}"))
}
