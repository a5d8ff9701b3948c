//! What a running node knows across reloads: the current config snapshot (swapped
//! atomically), metrics, where its config comes from, the last reload and the drain flag.

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use portico_core::config::{ConfigError, Overrides};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};
use tokio::sync::watch;

/// Where a node's config comes from, and so what a reload re-reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`: SIGHUP re-reads the file.
    File(PathBuf),
    /// `--store etcd://…/PREFIX`: the node follows the store.
    Store {
        /// The store URL as given.
        url: String,
        /// The node's name under `PREFIX/nodes/`.
        name: String,
        /// Where the last applied document is cached.
        cache: Option<PathBuf>,
    },
    /// Given by the embedding program (tests, the in-process simulation).
    Inline,
}

impl ConfigSource {
    /// `file:PATH`, `etcd:URL` or `inline`, as `/status` shows it.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(p) => format!("file:{}", p.display()),
            ConfigSource::Store { url, .. } => format!("etcd:{url}"),
            ConfigSource::Inline => "inline".to_string(),
        }
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadSource {
    /// SIGHUP (or an in-process request to re-read the file).
    File,
    /// `PUT /config`.
    Admin,
    /// A new revision in the store.
    Store,
}

impl ReloadSource {
    /// The `source` label of `portico_config_reloads_total`.
    pub fn label(self) -> &'static str {
        match self {
            ReloadSource::File => "file",
            ReloadSource::Admin => "admin",
            ReloadSource::Store => "store",
        }
    }
}

/// The outcome of the last reload, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    /// RFC 3339 UTC.
    pub at: String,
    /// `file`, `admin` or `store`.
    pub source: &'static str,
    /// `applied` or `rejected`.
    pub result: &'static str,
    /// The version applied or rejected.
    pub version: Option<String>,
    /// Every error of a rejected reload, `path: message`.
    pub errors: Vec<ErrorEntry>,
}

/// One config error in a machine-readable form.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorEntry {
    /// JSON path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl From<&ConfigError> for ErrorEntry {
    fn from(e: &ConfigError) -> Self {
        Self {
            path: e.path.clone(),
            message: e.message.clone(),
        }
    }
}

/// Shared by the proxy hooks, the admin listener, probes, reloads and the shutdown watcher.
pub struct NodeState {
    current: ArcSwap<Snapshot>,
    /// The access log (off unless `node.access_log` says where).
    pub access_log: Arc<AccessLog>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The TLS listener's certificates, read by every handshake and swapped by each reload
    /// (and by each managed certificate issued: see [`crate::acme::publish`]).
    pub certs: Arc<ArcSwap<crate::tls::CertStore>>,
    /// Managed certificates: their state, loaded chains and challenge answers.
    pub acme: crate::acme::shared::Acme,
    /// When the node was built.
    pub started: Instant,
    /// Where the config comes from.
    pub source: ConfigSource,
    /// Command-line values applied over `node.*` of every document.
    pub overrides: Overrides,
    /// Serialises reloads.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    last_reload: Mutex<Option<LastReload>>,
    /// Set when the node started from its cache because the store was unreachable.
    pub started_from_cache: AtomicBool,
    changed: watch::Sender<u64>,
    draining: AtomicBool,
    in_flight: Arc<AtomicUsize>,
    /// Why the node stopped on its own (a listener gone), if it did.
    failure: Mutex<Option<String>>,
    /// What the probes share: their connector, built once for the node's life.
    pub probes: crate::probe_connector::Probes,
    /// Answers counted per config version for the rollout gates (set when the node follows
    /// a store).
    pub rollout_counters: std::sync::OnceLock<crate::store_link::counters::RolloutCounters>,
}

/// Counts a request as in flight until dropped (held in the request's context).
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl NodeState {
    /// State running `snapshot`.
    pub fn new(
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        source: ConfigSource,
        overrides: Overrides,
    ) -> Self {
        let access_log = AccessLog::start(
            &snapshot.config.node.access_log,
            metrics.access_log_dropped.clone(),
        );
        Self {
            access_log,
            current: ArcSwap::from_pointee(snapshot),
            acme: crate::acme::shared::Acme::new(&metrics),
            metrics,
            certs: Arc::new(ArcSwap::from_pointee(crate::tls::CertStore::default())),
            started: Instant::now(),
            source,
            overrides,
            reload_lock: tokio::sync::Mutex::new(()),
            last_reload: Mutex::new(None),
            started_from_cache: AtomicBool::new(false),
            changed: watch::channel(0).0,
            draining: AtomicBool::new(false),
            in_flight: Arc::new(AtomicUsize::new(0)),
            failure: Mutex::new(None),
            probes: crate::probe_connector::Probes::default(),
            rollout_counters: std::sync::OnceLock::new(),
        }
    }

    /// The running config. Hold on to it for the whole of a request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` the running config and wakes whoever watches for changes.
    pub(crate) fn install(&self, snapshot: Snapshot) {
        self.access_log.set_target(&snapshot.config.node.access_log);
        self.current.store(Arc::new(snapshot));
        self.changed.send_modify(|g| *g += 1);
    }

    /// A receiver that sees each installed config (a generation counter).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The outcome of the last reload, if any.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last_reload(&self, r: LastReload) {
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(r);
    }

    /// Marks a request as in flight for as long as the returned guard lives.
    pub fn begin_request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.in_flight.clone())
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the node is draining (`/healthz` answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining: `/healthz` answers 503 and responses close their connections.
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            self.metrics.draining.with_label_values::<&str>(&[]).set(1);
            self.changed.send_modify(|_| {});
        }
    }

    /// Records why the node is stopping on its own (the binary then exits 1).
    pub fn fail(&self, why: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(why);
    }

    /// Why the node stopped on its own, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `SystemTime` as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
