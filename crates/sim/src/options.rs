//! How to lay a simulation out: ports, launch mode, work directory, network mode, store.

use crate::launch::Launch;
use std::path::PathBuf;

/// How to lay the simulation out.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// First port: entries at `base`, nodes at `base+10..`, admins at `base+20..`, origins at
    /// `base+30..`, origin controls at `base+40..`, etcd members' client and peer listeners
    /// at `base+50..` and `base+60..`, TLS entries at `base+80..`, the nodes' TLS listeners at
    /// `base+90..`. `None`: free ports chosen at random.
    pub base_port: Option<u16>,
    /// Threads of this process or child processes (etcd members are always child processes).
    pub launch: Launch,
    /// Where the shared config (`portico.json`), the children's logs (`logs/`), the nodes'
    /// config caches (`cache/`), the etcd members' data (`etcd/`) and the pid file (`pids`) go.
    /// Required for [`Launch::Subprocess`]; without it an in-process run keeps its etcd data
    /// and caches in a scratch directory under the system's temporary directory, removed at stop.
    pub work_dir: Option<PathBuf>,
    /// Network mode (root, subprocess launch only): a router namespace per region and one per
    /// edge node, the round trips on the links (`tc netem`), one anycast service address on
    /// every node, routed by BIRD (BGP between the namespaces, each node announcing while its
    /// health check passes), and each region's entry and etcd member inside its router
    /// namespace (see [`crate::netns`] and [`crate::bird`]).
    pub netns: bool,
    /// No store: every node reads the shared config from `WORK_DIR/portico.json` (`--config`;
    /// in process, the document itself) and no etcd runs, as before the store existed.
    pub no_store: bool,
    /// Start Pebble (Let's Encrypt's test CA, see [`crate::pebble`]) and add a managed
    /// certificate for [`crate::pebble::HOST`] from it to the shared config: one order through
    /// the store, served by every node. Loopback mode with the store only.
    pub acme: bool,
}
