//! Registering a node: its record at `/{prefix}/nodes/{name}`, under a lease kept alive.

use crate::backoff::Backoff;
use crate::client::Store;
use crate::error::{StoreError, from_etcd};
use crate::node::Registered;
use crate::url::StoreUrl;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The time allowed to revoke the lease when the registration ends.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(1);

/// The least time between two puts of a registration (SPEC: at most one write per node per
/// second during a rollout); changes in between are coalesced into one put of the latest.
pub const MIN_PUT_INTERVAL: Duration = Duration::from_secs(1);

/// Registers node `name` in the store of `url` on a task of the current tokio runtime, until
/// the sender of `records` is dropped.
///
/// The task grants a lease of `ttl` (whole seconds, at least 1; etcd may raise it to its
/// minimum), puts the current record as JSON at [`StoreUrl::node_key`] under that lease, and
/// keeps the lease alive every third of its TTL. It puts the record again whenever `records`
/// changes, at most once per [`MIN_PUT_INTERVAL`]: a change within that interval of the last
/// put is written when the interval ends (the latest record then; changes in between are
/// coalesced). `updated_at` (and a [`crate::NodeStatus`]'s `updated_at_ms`) is set to the time
/// of each put. The record is a [`crate::NodeRecord`] or a [`crate::NodeStatus`] (with the
/// rollout report). When no keep-alive is answered for
/// two thirds of the TTL, or etcd says the lease is gone, or a request fails, it starts over
/// with a new lease, backing off 100 ms doubling to 2 s between attempts.
///
/// When the sender is dropped, the task revokes the lease (best effort, within
/// [`REVOKE_TIMEOUT`]), which deletes the record, and ends. A registration whose task stops
/// without that (process killed, task aborted) disappears when its lease expires.
///
/// The key is named by `name`, whatever the record's own `name` says.
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn register<R: Registered>(
    url: StoreUrl,
    name: String,
    ttl: Duration,
    records: watch::Receiver<R>,
) -> JoinHandle<()> {
    let registration = Registration {
        key: url.node_key(&name),
        url,
        ttl_secs: ttl.as_secs_f64().ceil().max(1.0) as i64,
        records,
    };
    tokio::spawn(registration.run())
}

/// Why a session ended.
enum End {
    /// The sender of the records was dropped (after the lease was revoked): stop.
    SenderGone,
    /// The store failed: back off and start over.
    Failed(StoreError),
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> Self {
        End::Failed(e)
    }
}

struct Registration<R> {
    url: StoreUrl,
    key: String,
    ttl_secs: i64,
    records: watch::Receiver<R>,
}

impl<R: Registered> Registration<R> {
    /// The time allowed to each request: half the TTL, between 0.5 s and 2 s.
    fn request_timeout(&self) -> Duration {
        (Duration::from_secs(self.ttl_secs.unsigned_abs()) / 2)
            .clamp(Duration::from_millis(500), Duration::from_secs(2))
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let Err(end) = self.session(&mut backoff).await;
            let error = match end {
                End::SenderGone => return,
                End::Failed(e) => e,
            };
            log::warn!("store: registration at {} failed: {error}", self.key);
            let pause = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    changed = self.records.changed() => if changed.is_err() {
                        return;
                    },
                }
            }
        }
    }

    /// Grants a lease, puts the record, keeps the lease alive and re-puts on changes.
    async fn session(&mut self, backoff: &mut Backoff) -> Result<Infallible, End> {
        if self.records.has_changed().is_err() {
            return Err(End::SenderGone);
        }
        let store = Store::connect(&self.url, self.request_timeout()).await?;
        let (lease, granted_ttl) = store.grant_lease(self.ttl_secs).await?;
        let result = self.keep(&store, lease, granted_ttl, backoff).await;
        if let Err(End::SenderGone) = result {
            revoke(&store, lease).await;
        }
        result
    }

    async fn keep(
        &mut self,
        store: &Store,
        lease: i64,
        ttl: Duration,
        backoff: &mut Backoff,
    ) -> Result<Infallible, End> {
        self.put(store, lease).await?;
        let mut client = store.client();
        let (mut keeper, mut responses) =
            tokio::time::timeout(self.request_timeout(), client.lease_keep_alive(lease))
                .await
                .map_err(|_| StoreError::Timeout {
                    endpoints: store.endpoints().to_string(),
                    what: format!("keep-alive of lease {lease:x}"),
                    after: self.request_timeout(),
                })?
                .map_err(|e| match e {
                    etcd_client::Error::LeaseKeepAliveError(reason) => {
                        StoreError::Lease { id: lease, reason }
                    }
                    other => from_etcd(store.endpoints(), other),
                })?;
        backoff.reset();
        log::info!(
            "store: registered at {} (lease {lease:x}, ttl {} s)",
            self.key,
            ttl.as_secs()
        );
        let lease_error = |reason: String| End::Failed(StoreError::Lease { id: lease, reason });
        let mut ticker = tokio::time::interval(ttl / 3);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_answer = Instant::now();
        let mut last_put = Instant::now();
        // A change not written yet (it came within MIN_PUT_INTERVAL of the last put).
        let mut pending = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if last_answer.elapsed() >= ttl * 2 / 3 {
                        return Err(lease_error(format!(
                            "no keep-alive answer for {} ms",
                            last_answer.elapsed().as_millis()
                        )));
                    }
                    keeper
                        .keep_alive()
                        .await
                        .map_err(|e| from_etcd(store.endpoints(), e))?;
                }
                answer = responses.message() => match answer {
                    Ok(Some(answer)) if answer.ttl() > 0 => last_answer = Instant::now(),
                    Ok(Some(_)) => return Err(lease_error("expired or revoked".into())),
                    Ok(None) => return Err(lease_error("etcd closed the keep-alive stream".into())),
                    Err(e) => return Err(from_etcd(store.endpoints(), e).into()),
                },
                changed = self.records.changed(), if !pending => match changed {
                    Ok(()) if last_put.elapsed() >= MIN_PUT_INTERVAL => {
                        self.put(store, lease).await?;
                        last_put = Instant::now();
                    }
                    Ok(()) => pending = true,
                    Err(_) => return Err(End::SenderGone),
                },
                _ = tokio::time::sleep_until(last_put + MIN_PUT_INTERVAL), if pending => {
                    if self.records.has_changed().is_err() {
                        return Err(End::SenderGone);
                    }
                    self.put(store, lease).await?;
                    last_put = Instant::now();
                    pending = false;
                }
            }
        }
    }

    /// Puts the current record, stamped with the time, under `lease`.
    async fn put(&mut self, store: &Store, lease: i64) -> Result<(), StoreError> {
        let json = self
            .records
            .borrow_and_update()
            .stamped_json(std::time::SystemTime::now());
        store
            .put_with_lease(&self.key, &json, lease)
            .await
            .map(|_| ())
    }
}

/// Revokes `lease` (deleting the keys attached to it), within [`REVOKE_TIMEOUT`]; logs a
/// failure (the lease then expires on its own).
async fn revoke(store: &Store, lease: i64) {
    let mut client = store.client();
    match tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease)).await {
        Ok(Ok(_)) => log::info!("store: revoked lease {lease:x}"),
        Ok(Err(e)) => log::warn!("store: could not revoke lease {lease:x}: {e}"),
        Err(_) => log::warn!(
            "store: could not revoke lease {lease:x} within {} ms",
            REVOKE_TIMEOUT.as_millis()
        ),
    }
}
