//! What a running node knows: its config, route table, pools, metrics and drain flag.

use crate::metrics::Metrics;
use crate::pool::PoolRuntime;
use portico_core::config::Config;
use portico_core::routing::RouteTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Shared by the proxy hooks, the admin listener and the shutdown watcher.
pub struct NodeState {
    /// The validated config this node runs.
    pub config: Config,
    /// `portico-<region>`: this node's name in `Via`.
    pub via_token: String,
    /// `1.1 portico-<region>`: the `Via` entry this node appends.
    pub via_entry: String,
    /// Host and path to route index.
    pub routes: RouteTable,
    /// Pools, index for index with `config.pools`.
    pub pools: Vec<PoolRuntime>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// When the node was built.
    pub started: Instant,
    draining: AtomicBool,
}

impl NodeState {
    /// State for `config` with its pools built.
    pub fn new(config: Config, pools: Vec<PoolRuntime>, metrics: Arc<Metrics>) -> Self {
        let via_token = format!("portico-{}", config.node.region);
        Self {
            via_entry: format!("1.1 {via_token}"),
            via_token,
            routes: RouteTable::new(&config.routes),
            pools,
            metrics,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            config,
        }
    }

    /// The node's region.
    pub fn region(&self) -> &str {
        &self.config.node.region
    }

    /// Whether the node is draining (`/healthz` answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining: `/healthz` answers 503 and responses close their connections.
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            self.metrics.draining.with_label_values::<&str>(&[]).set(1);
        }
    }

    /// The pool a route sends to.
    pub fn route_pool(&self, route: usize) -> &PoolRuntime {
        &self.pools[self.config.routes[route].pool]
    }
}
