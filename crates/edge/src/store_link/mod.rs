//! The node's side of the store (`--store etcd://…/PREFIX`): start from the stable document
//! (or the cache), follow `config` and `rollout` and run the version the rollout assigns this
//! node, publish its registration with the rollout report, and start pushes for `PUT /config`.
//!
//! - [`startup`]: the document a node starts from;
//! - [`follow`]: which version this node runs, applied through the one pipeline;
//! - [`conductor`]: the election and the judgement of the rollout (one node at a time);
//! - [`counters`]: the request path's per-version counters;
//! - [`report`]: the registration with the rollout report;
//! - [`status`]: the `rollout` object of `/status`;
//! - `put`: `PUT /config` starts a rollout;
//! - [`direct`]: writing `config` directly, with no rollout.

pub mod conductor;
pub mod counters;
pub mod direct;
mod follow;
mod put;
mod report;
pub mod startup;
pub mod status;

pub use direct::{PushError, push_document};
pub use startup::{Startup, startup, write_cache};

use crate::state::NodeState;
use counters::RolloutCounters;
use portico_core::rollout::{Rejection, Rollout, State, UnixMillis};
use portico_store::{Store, StoreUrl};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long a store request may take before the store counts as unreachable.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// Lease time of a node's registration.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(10);

/// A node's link to its store.
pub struct StoreLink {
    /// The store.
    pub url: StoreUrl,
    /// This node's name under `PREFIX/nodes/`.
    pub name: String,
    /// Where the last good stable document is written (see [`follow`]).
    pub cache: Option<PathBuf>,
    /// `http://ADMIN` of this node, for the registration.
    pub admin_url: String,
    /// When this node started (its report's process start time: a restart changes it).
    pub started_at_ms: UnixMillis,
    followed: Mutex<Followed>,
    changes: watch::Sender<u64>,
}

/// What the node knows of the rollout.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    /// The stored rollout (in progress, or the last one), as last read.
    pub rollout: Option<Rollout>,
    /// The last target this node rejected, with the errors.
    pub rejected: Option<Rejection>,
}

impl Followed {
    /// Whether the stored rollout is in progress or paused.
    pub fn in_progress(&self) -> bool {
        self.rollout
            .as_ref()
            .is_some_and(|r| matches!(r.state, State::InProgress | State::Paused(_)))
    }
}

impl StoreLink {
    /// The link of node `name` following `url`, caching to `cache`, its admin API at
    /// `admin_url`.
    pub fn new(url: StoreUrl, name: String, cache: Option<PathBuf>, admin_url: String) -> Self {
        StoreLink {
            url,
            name,
            cache,
            admin_url,
            started_at_ms: portico_store::unix_millis(SystemTime::now()),
            followed: Mutex::new(Followed::default()),
            changes: watch::channel(0).0,
        }
    }

    /// What the node knows of the rollout now.
    pub fn followed(&self) -> Followed {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the stored rollout is in progress or paused.
    pub fn rollout_in_progress(&self) -> bool {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_progress()
    }

    /// The last target this node rejected.
    pub fn rejected(&self) -> Option<Rejection> {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rejected
            .clone()
    }

    /// Changes what the node knows of the rollout and wakes the report.
    fn update(&self, change: impl FnOnce(&mut Followed)) {
        change(&mut self.followed.lock().unwrap_or_else(PoisonError::into_inner));
        self.changes.send_modify(|n| *n += 1);
    }

    /// A connection to the store.
    pub async fn connect(&self) -> Result<Store, portico_store::StoreError> {
        Store::connect(&self.url, STORE_TIMEOUT).await
    }

    /// Starts following the store and registering the node, on `tasks`: counting answers
    /// per version from now on. Aborting the tasks drops the registration's sender, which
    /// revokes its lease.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, node: Arc<NodeState>) {
        let running = node.snapshot().config.version.clone();
        let _ = node.rollout_counters.set(RolloutCounters::new(&running));
        tasks.spawn(report::publish(self.clone(), node.clone()));
        tasks.spawn(conductor::run(
            self.url.clone(),
            self.name.clone(),
            node.metrics.clone(),
        ));
        tasks.spawn(follow::follow(self.clone(), node));
    }
}
