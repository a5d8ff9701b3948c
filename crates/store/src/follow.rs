//! Following the config document (or the rollout): every new revision, once, in order, across
//! outages.

use crate::backoff::Backoff;
use crate::client::{Store, StoredDoc, doc_from_kv};
use crate::error::{StoreError, from_etcd};
use crate::url::StoreUrl;
use etcd_client::{EventType, KeyValue, WatchOptions};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The time allowed to connect and to each request of the follower.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the follower asks etcd for watch progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A watch that has heard nothing from etcd (no event, no progress answer) for this long is
/// taken as dead.
pub const WATCH_SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// What the follower reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// (Re)connected and read the document; emitted before that read's [`StoreEvent::Document`].
    Connected,
    /// A revision of the document newer than any emitted before.
    Document(StoredDoc),
    /// The document was deleted (only after a document was emitted).
    Deleted,
    /// The store was lost (or could not be reached at first); emitted once per outage.
    Disconnected {
        /// What failed.
        reason: String,
    },
}

/// Follows the config document of `url` on a task of the current tokio runtime.
///
/// The task connects (retrying with backoff: 100 ms doubling to 2 s), reads the document, then
/// watches its key from the revision after that read, emitting each change. On any error it
/// emits [`StoreEvent::Disconnected`] once, backs off, reconnects and reads again. Revisions
/// are deduplicated by `mod_revision`: nothing is emitted twice and, since the watch starts
/// right after the read's revision, nothing is missed. A value that is not UTF-8 is logged and
/// skipped.
///
/// A dead etcd is noticed within [`WATCH_SILENCE_LIMIT`] even when its connection does not
/// break (a partition): the task sends a watch progress request every [`PROGRESS_INTERVAL`] and
/// gives up the watch when nothing at all was heard for that long. Requests require a leader,
/// so a member cut off from its quorum ends the watch too.
///
/// The task ends when the receiver is dropped.
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn follow(url: StoreUrl) -> (mpsc::Receiver<StoreEvent>, JoinHandle<()>) {
    let key = url.config_key();
    follow_key(url, key)
}

/// Follows the rollout at [`StoreUrl::rollout_key`] as [`follow`] follows the config document:
/// each [`StoreEvent::Document`] carries the rollout's JSON (parse it with
/// [`crate::StoredRollout::from_doc`]).
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn follow_rollout(url: StoreUrl) -> (mpsc::Receiver<StoreEvent>, JoinHandle<()>) {
    let key = url.rollout_key();
    follow_key(url, key)
}

pub(crate) fn follow_key(
    url: StoreUrl,
    key: String,
) -> (mpsc::Receiver<StoreEvent>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let follower = Follower {
        url,
        key,
        tx,
        seen_revision: 0,
        present: false,
        down_announced: false,
    };
    (rx, tokio::spawn(follower.run()))
}

/// Why a session ended.
enum End {
    /// The receiver was dropped: stop.
    Closed,
    /// The store failed: back off and reconnect.
    Failed(StoreError),
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> Self {
        End::Failed(e)
    }
}

struct Follower {
    /// The key followed.
    key: String,
    url: StoreUrl,
    tx: mpsc::Sender<StoreEvent>,
    /// Every change up to this store revision has been accounted for.
    seen_revision: i64,
    /// Whether the last thing emitted (or skipped) was a document rather than a deletion.
    present: bool,
    /// Whether `Disconnected` was emitted since the last `Connected`.
    down_announced: bool,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let error = match self.session(&mut backoff).await {
                End::Closed => return,
                End::Failed(e) => e,
            };
            log::warn!(
                "store: following {} at {} failed: {error}",
                self.key,
                self.url
            );
            if !self.down_announced {
                self.down_announced = true;
                let event = StoreEvent::Disconnected {
                    reason: error.to_string(),
                };
                if self.tx.send(event).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Connects, reads, emits, then watches until something fails.
    async fn session(&mut self, backoff: &mut Backoff) -> End {
        let Err(end) = self.session_inner(backoff).await;
        end
    }

    async fn session_inner(&mut self, backoff: &mut Backoff) -> Result<Infallible, End> {
        let store = tokio::select! {
            store = Store::connect(&self.url, FOLLOW_TIMEOUT) => store?,
            _ = self.tx.closed() => return Err(End::Closed),
        };
        let key = self.key.clone();
        let (kv, revision) = tokio::select! {
            read = store.get_raw(&key) => read?,
            _ = self.tx.closed() => return Err(End::Closed),
        };
        backoff.reset();
        self.down_announced = false;
        self.emit(StoreEvent::Connected).await?;
        if revision < self.seen_revision {
            log::warn!(
                "store: revision of {} went back from {} to {revision} (was the store reset?)",
                self.url,
                self.seen_revision
            );
            self.seen_revision = 0;
        }
        match kv {
            Some(kv) => self.on_put(&key, &kv).await?,
            None => self.on_delete(revision).await?,
        }
        self.seen_revision = self.seen_revision.max(revision);

        let mut client = store
            .client()
            .watch_client()
            .max_decoding_message_size(crate::client::MAX_MESSAGE_BYTES);
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = tokio::select! {
            started = tokio::time::timeout(FOLLOW_TIMEOUT, client.watch(key.as_str(), Some(options))) => {
                match started {
                    Ok(stream) => stream.map_err(|e| from_etcd(store.endpoints(), e))?,
                    Err(_) => return Err(End::Failed(StoreError::Timeout {
                        endpoints: store.endpoints().to_string(),
                        what: format!("watch of {key}"),
                        after: FOLLOW_TIMEOUT,
                    })),
                }
            }
            _ = self.tx.closed() => return Err(End::Closed),
        };
        let watch_error = |reason: String| {
            End::Failed(StoreError::Watch {
                key: key.clone(),
                reason,
            })
        };
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Err(watch_error("etcd closed the stream".into())),
                        Err(e) => return Err(from_etcd(store.endpoints(), e).into()),
                    };
                    if response.canceled() || response.compact_revision() > 0 {
                        let reason = match (response.compact_revision(), response.cancel_reason()) {
                            (rev, _) if rev > 0 => format!("revision {rev} was compacted"),
                            (_, "") => "cancelled by etcd".to_string(),
                            (_, reason) => format!("cancelled by etcd: {reason}"),
                        };
                        return Err(watch_error(reason));
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        match event.event_type() {
                            EventType::Put => self.on_put(&key, kv).await?,
                            EventType::Delete => self.on_delete(kv.mod_revision()).await?,
                        }
                    }
                    // Time spent waiting for a slow receiver is not etcd's silence.
                    last_heard = Instant::now();
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() >= WATCH_SILENCE_LIMIT {
                        return Err(watch_error(format!(
                            "no answer from etcd for {} ms",
                            last_heard.elapsed().as_millis()
                        )));
                    }
                    stream
                        .request_progress()
                        .await
                        .map_err(|e| from_etcd(store.endpoints(), e))?;
                }
                _ = self.tx.closed() => return Err(End::Closed),
            }
        }
    }

    async fn on_put(&mut self, key: &str, kv: &KeyValue) -> Result<(), End> {
        let revision = kv.mod_revision();
        if revision <= self.seen_revision {
            return Ok(());
        }
        self.seen_revision = revision;
        self.present = true;
        match doc_from_kv(key, kv) {
            Ok(doc) => self.emit(StoreEvent::Document(doc)).await,
            Err(e) => {
                log::warn!("store: ignoring revision {revision}: {e}");
                Ok(())
            }
        }
    }

    async fn on_delete(&mut self, revision: i64) -> Result<(), End> {
        if revision <= self.seen_revision {
            return Ok(());
        }
        self.seen_revision = revision;
        if self.present {
            self.present = false;
            self.emit(StoreEvent::Deleted).await?;
        }
        Ok(())
    }

    async fn emit(&self, event: StoreEvent) -> Result<(), End> {
        self.tx.send(event).await.map_err(|_| End::Closed)
    }
}
