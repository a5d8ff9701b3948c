//! Following the store (`--store etcd://…/PREFIX`): apply each revision of `PREFIX/config`,
//! cache the last good document, register the node under `PREFIX/nodes/<name>`, and write
//! `PUT /config` and `portico config push` documents with compare-and-swap.

use crate::config::prepare::{Prepared, document, prepare};
use crate::config::reload::apply;
use crate::state::{NodeState, ReloadSource};
use portico_core::config::{ConfigErrors, Overrides, fingerprint};
use portico_store::{Expect, NodeRecord, Store, StoreError, StoreEvent, StoreUrl};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
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
    /// Where the last applied document is written.
    pub cache: Option<PathBuf>,
    /// `http://ADMIN` of this node, for the registration.
    pub admin_url: String,
}

/// Why a document was not written to the store.
#[derive(Debug)]
pub enum PushError {
    /// It does not validate; nothing was written.
    Invalid(ConfigErrors),
    /// `--if-version` / `If-Match` named another version than the stored one.
    CasLost {
        /// The stored version (None: the store has no document).
        stored: Option<String>,
    },
    /// The store could not be reached or failed.
    Store(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Invalid(e) => write!(f, "{e}"),
            PushError::CasLost { stored } => write!(
                f,
                "compare-and-swap lost: the stored version is {}",
                stored
                    .as_deref()
                    .unwrap_or("(none: the store holds no config)")
            ),
            PushError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Validates `text` (the pipeline's first step, [`document`]: the files and names it refers
/// to are each node's to check) and writes it to the store; with `if_version`, only if the
/// stored document has that version. Returns the new version.
pub async fn push_document(
    store: &Store,
    text: &str,
    if_version: Option<&str>,
) -> Result<String, PushError> {
    document(text, &Overrides::default()).map_err(PushError::Invalid)?;
    let expect = match if_version {
        None => Expect::Any,
        Some(v) => {
            let current = store
                .get_config()
                .await
                .map_err(|e| PushError::Store(e.to_string()))?;
            match current {
                Some(doc) if fingerprint(&doc.text) == v => Expect::ModRevision(doc.mod_revision),
                Some(doc) => {
                    return Err(PushError::CasLost {
                        stored: Some(fingerprint(&doc.text)),
                    });
                }
                None => return Err(PushError::CasLost { stored: None }),
            }
        }
    };
    match store.put_config(text, expect).await {
        Ok(_) => Ok(fingerprint(text)),
        Err(StoreError::CasLost { current }) => Err(PushError::CasLost {
            stored: current.map(|d| fingerprint(&d.text)),
        }),
        Err(e) => Err(PushError::Store(e.to_string())),
    }
}

/// The document a store-following node starts from, prepared.
pub struct Startup {
    /// The document, ready to build the node from.
    pub prepared: Prepared,
    /// Whether it came from the cache (the store was unreachable, empty, or its document
    /// could not be prepared here).
    pub from_cache: bool,
}

/// Picks and prepares the document a node following `url` starts from: the stored one when
/// the store answers and it prepares on this machine, else the cache (logged); with neither,
/// an error naming both.
pub async fn startup(
    url: &StoreUrl,
    cache: Option<&Path>,
    overrides: &Overrides,
) -> Result<Startup, String> {
    let fetched = match Store::connect(url, STORE_TIMEOUT).await {
        Ok(store) => store.get_config().await,
        Err(e) => Err(e),
    };
    let why = match fetched {
        Ok(Some(doc)) => match prepare(&doc.text, overrides, None).await {
            Ok(prepared) => {
                return Ok(Startup {
                    prepared,
                    from_cache: false,
                });
            }
            Err(errors) => format!(
                "the stored config (version {}) is invalid:\n{errors}",
                fingerprint(&doc.text)
            ),
        },
        Ok(None) => format!(
            "the store {url} holds no config at {} (push one with  portico config push FILE --store {url})",
            url.config_key()
        ),
        Err(e) => format!("the store {url} is unreachable ({e})"),
    };
    let cache_name = cache
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(no --cache given)".to_string());
    let cached = match cache.map(std::fs::read_to_string) {
        Some(Ok(text)) => prepare(&text, overrides, None)
            .await
            .map_err(|e| format!("the cache {cache_name} cannot be used: {e}")),
        Some(Err(e)) => Err(format!("the cache {cache_name} cannot be read: {e}")),
        None => Err("no --cache given".to_string()),
    };
    match cached {
        Ok(prepared) => {
            log::warn!("{why}; starting from the cache {cache_name}");
            Ok(Startup {
                prepared,
                from_cache: true,
            })
        }
        Err(reason) => Err(format!(
            "{why}, and there is no usable cache ({reason}): nothing to start from"
        )),
    }
}

/// Writes `text` to `path` atomically (a temporary file renamed over it).
pub fn write_cache(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl StoreLink {
    /// Writes `text` to the store from `PUT /config`, then waits (up to 5 s) until this
    /// node runs it, so the answer means "applied here" in the common case.
    pub async fn push(
        &self,
        node: &NodeState,
        text: &str,
        if_version: Option<&str>,
    ) -> Result<String, PushError> {
        let store = Store::connect(&self.url, STORE_TIMEOUT)
            .await
            .map_err(|e| PushError::Store(e.to_string()))?;
        let version = push_document(&store, text, if_version).await?;
        let mut changes = node.watch();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while node.snapshot().config.version != version {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(version)
    }

    /// Starts following the store and registering the node, on `tasks`. Aborting the
    /// tasks drops the registration's sender, which revokes its lease.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, node: Arc<NodeState>) {
        let (records, rx) = tokio::sync::watch::channel(self.record(&node));
        let registration =
            portico_store::register(self.url.clone(), self.name.clone(), REGISTRATION_TTL, rx);
        let me = self.clone();
        let n = node.clone();
        tasks.spawn(async move {
            let mut changes = n.watch();
            while changes.changed().await.is_ok() {
                let record = me.record(&n);
                records.send_if_modified(|r| {
                    let changed = (r.version.as_str(), r.healthy, r.region.as_str())
                        != (
                            record.version.as_str(),
                            record.healthy,
                            record.region.as_str(),
                        );
                    if changed {
                        *r = record;
                    }
                    changed
                });
            }
            drop(records);
            let _ = registration.await;
        });
        let conductor = crate::store_link::conductor::run(
            self.url.clone(),
            self.name.clone(),
            node.metrics.clone(),
        );
        tasks.spawn(conductor);
        tasks.spawn(follow_store(node, self.url.clone(), self.cache.clone()));
    }

    fn record(&self, node: &NodeState) -> NodeRecord {
        let snapshot = node.snapshot();
        NodeRecord {
            name: self.name.clone(),
            region: snapshot.region().to_string(),
            version: snapshot.config.version.clone(),
            healthy: !node.is_draining(),
            admin: self.admin_url.clone(),
            updated_at: portico_store::now_rfc3339(),
        }
    }
}

/// Applies every revision the store announces; caches each applied one.
async fn follow_store(node: Arc<NodeState>, url: StoreUrl, cache: Option<PathBuf>) {
    let (mut events, _follower) = portico_store::follow(url.clone());
    let mut connected = true;
    while let Some(event) = events.recv().await {
        match event {
            StoreEvent::Connected => {
                if !connected {
                    log::info!(
                        "store {url}: connected again, following {}",
                        url.config_key()
                    );
                }
                connected = true;
            }
            StoreEvent::Disconnected { reason } => {
                if connected {
                    log::warn!(
                        "store {url}: lost ({reason}); serving the running config {} and retrying",
                        node.snapshot().config.version
                    );
                }
                connected = false;
            }
            StoreEvent::Deleted => log::warn!(
                "store {url}: {} was deleted; keeping the running config {}",
                url.config_key(),
                node.snapshot().config.version
            ),
            StoreEvent::Document(doc) => {
                if apply(&node, &doc.text, ReloadSource::Store).await.is_ok() {
                    if let Some(path) = &cache {
                        if let Err(e) = write_cache(path, &doc.text) {
                            log::warn!("cannot write the config cache {}: {e}", path.display());
                        }
                    }
                }
            }
        }
    }
}
