//! Conductor election: one node at a time holds `/{prefix}/conductor` under its lease.
//!
//! A lease-held key rather than etcd's election API: the election API is the same mechanism
//! (a key under a lease, the lowest creation revision leads) plus a queue of candidate keys
//! and a blocking `campaign` call that must be cancelled by hand on shutdown; a put-if-absent
//! in one transaction gives the same guarantee, lets a follower name the conductor (the key's
//! value), and fits the session loop `register` already uses (connect, lease, keep alive,
//! start over with backoff).

use crate::backoff::Backoff;
use crate::client::Store;
use crate::error::{StoreError, from_etcd};
use crate::register::REVOKE_TIMEOUT;
use crate::url::StoreUrl;
use etcd_client::{Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The conductor's lease TTL by default (the SPEC: at most 5 s). A conductor that dies is
/// replaced within about this long.
pub const CONDUCTOR_TTL: Duration = Duration::from_secs(3);

/// Where a campaigner stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not connected to the store (starting, or starting over after a failure).
    Candidate,
    /// Another node conducts.
    Following {
        /// Its name (the key's value).
        leader: String,
    },
    /// This node conducts.
    Leading,
}

/// One node's campaign to conduct rollouts, on a task of the tokio runtime; stops (revoking
/// its lease, so that another node takes over at once) when resigned or dropped.
#[derive(Debug)]
pub struct Conductorship {
    role: watch::Receiver<Role>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Conductorship {
    /// Starts campaigning as `name` in the store of `url`, with a lease of `ttl` (whole
    /// seconds, at least 1; etcd may raise it to its minimum).
    ///
    /// The task connects, grants a lease, keeps it alive every third of its TTL, and puts
    /// `/{prefix}/conductor` = `name` under the lease if the key is absent, in one transaction.
    /// A follower tries again whenever the key is deleted (watched) and every third of the
    /// TTL. The leader steps down (its role becomes [`Role::Candidate`]) as soon as no
    /// keep-alive was answered for two thirds of the TTL — before the lease can expire and
    /// another node take over — or when the key is deleted or the store fails; it then revokes
    /// its lease (best effort, so that the key need not wait for the lease to expire) and
    /// starts over with a new lease, backing off 100 ms doubling to 2 s.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn campaign(url: StoreUrl, name: String, ttl: Duration) -> Conductorship {
        let (role_tx, role) = watch::channel(Role::Candidate);
        let (stop, stop_rx) = oneshot::channel();
        let campaign = Campaign {
            key: url.conductor_key(),
            url,
            name,
            ttl_secs: ttl.as_secs_f64().ceil().max(1.0) as i64,
            role: role_tx,
            stop: stop_rx,
        };
        Conductorship {
            role,
            stop: Some(stop),
            task: Some(tokio::spawn(campaign.run())),
        }
    }

    /// Where this campaigner stands now.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Whether this node conducts now.
    pub fn is_leader(&self) -> bool {
        *self.role.borrow() == Role::Leading
    }

    /// A receiver of every change of role (for a conductor loop to select on).
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Waits until this node conducts.
    pub async fn elected(&mut self) {
        // The sender lives as long as the task, which only ends when stopped by `self`.
        let _ = self.role.wait_for(|r| *r == Role::Leading).await;
    }

    /// Waits until this node no longer conducts (at once when it does not).
    pub async fn lost(&mut self) {
        let _ = self.role.wait_for(|r| *r != Role::Leading).await;
    }

    /// Stops campaigning: steps down, revokes the lease (deleting the key when held, within
    /// [`REVOKE_TIMEOUT`]) and waits for the task to end.
    pub async fn resign(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the task without revoking the lease, as a killed process would: a held key stays
    /// until the lease expires.
    pub async fn abandon(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Conductorship {
    fn drop(&mut self) {
        // Dropping `stop` tells the task to revoke its lease and end.
        self.stop.take();
    }
}

impl Store {
    /// The name of the node conducting rollouts now, if any.
    pub async fn conductor(&self) -> Result<Option<String>, StoreError> {
        let key = self.url().conductor_key();
        Ok(self
            .get_one(&key)
            .await?
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}

/// Why a session ended.
enum End {
    /// Resigned or dropped: the lease is revoked, stop.
    Stopped,
    /// The store failed: back off and start over.
    Failed(StoreError),
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> Self {
        End::Failed(e)
    }
}

struct Campaign {
    url: StoreUrl,
    key: String,
    name: String,
    ttl_secs: i64,
    role: watch::Sender<Role>,
    stop: oneshot::Receiver<()>,
}

impl Campaign {
    /// The time allowed to each request: a third of the TTL, between 0.5 s and 2 s.
    fn request_timeout(&self) -> Duration {
        (Duration::from_secs(self.ttl_secs.unsigned_abs()) / 3)
            .clamp(Duration::from_millis(500), Duration::from_secs(2))
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let Err(end) = self.session(&mut backoff).await;
            self.role.send_replace(Role::Candidate);
            let error = match end {
                End::Stopped => return,
                End::Failed(e) => e,
            };
            log::warn!("store: conductor campaign at {} failed: {error}", self.key);
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = &mut self.stop => return,
            }
        }
    }

    /// Grants a lease, then campaigns and keeps it alive until stopped or failed.
    async fn session(&mut self, backoff: &mut Backoff) -> Result<Infallible, End> {
        let store = tokio::select! {
            store = Store::connect(&self.url, self.request_timeout()) => store?,
            _ = &mut self.stop => return Err(End::Stopped),
        };
        let (lease, ttl) = store.grant_lease(self.ttl_secs).await?;
        let result = self.hold(&store, lease, ttl, backoff).await;
        // Stopped, or failed (a broken watch, a lost keep-alive): give the key up at once
        // rather than when the lease expires, so that a new session (or another node) need not
        // wait a TTL. Step down first.
        self.role.send_replace(Role::Candidate);
        revoke(&store, lease).await;
        result
    }

    async fn hold(
        &mut self,
        store: &Store,
        lease: i64,
        ttl: Duration,
        backoff: &mut Backoff,
    ) -> Result<Infallible, End> {
        let timeout = self.request_timeout();
        let timed_out = |what: String| StoreError::Timeout {
            endpoints: store.endpoints().to_string(),
            what,
            after: timeout,
        };
        let mut client = store.client();
        let (mut keeper, mut answers) =
            tokio::time::timeout(timeout, client.lease_keep_alive(lease))
                .await
                .map_err(|_| timed_out(format!("keep-alive of lease {lease:x}")))?
                .map_err(|e| from_etcd(store.endpoints(), e))?;
        // Watch first, then try: a delete between the two is not missed.
        let mut events = tokio::time::timeout(timeout, client.watch(self.key.as_str(), None))
            .await
            .map_err(|_| timed_out(format!("watch of {}", self.key)))?
            .map_err(|e| from_etcd(store.endpoints(), e))?;
        backoff.reset();
        self.try_acquire(store, lease).await?;

        let lease_error = |reason: String| End::Failed(StoreError::Lease { id: lease, reason });
        let silence_limit = ttl * 2 / 3;
        let mut ticker = tokio::time::interval(ttl / 3);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let silence = tokio::time::sleep(silence_limit);
        tokio::pin!(silence);
        loop {
            tokio::select! {
                _ = &mut self.stop => return Err(End::Stopped),
                _ = &mut silence => {
                    return Err(lease_error(format!(
                        "no keep-alive answer for {} ms",
                        silence_limit.as_millis()
                    )));
                }
                _ = ticker.tick() => {
                    keeper
                        .keep_alive()
                        .await
                        .map_err(|e| from_etcd(store.endpoints(), e))?;
                    if *self.role.borrow() != Role::Leading {
                        self.try_acquire(store, lease).await?;
                    }
                }
                answer = answers.message() => match answer {
                    Ok(Some(answer)) if answer.ttl() > 0 => {
                        silence.as_mut().reset(Instant::now() + silence_limit);
                    }
                    Ok(Some(_)) => return Err(lease_error("expired or revoked".into())),
                    Ok(None) => return Err(lease_error("etcd closed the keep-alive stream".into())),
                    Err(e) => return Err(from_etcd(store.endpoints(), e).into()),
                },
                event = events.message() => match event {
                    Ok(Some(resp)) => {
                        let deleted = resp
                            .events()
                            .iter()
                            .any(|e| e.event_type() == EventType::Delete);
                        if deleted {
                            // Held by us and deleted by hand: step down first, then try again.
                            self.role.send_replace(Role::Candidate);
                            self.try_acquire(store, lease).await?;
                        }
                    }
                    Ok(None) => {
                        return Err(End::Failed(StoreError::Watch {
                            key: self.key.clone(),
                            reason: "etcd closed the watch stream".into(),
                        }));
                    }
                    Err(e) => return Err(from_etcd(store.endpoints(), e).into()),
                },
            }
        }
    }

    /// Puts the key under `lease` if it is absent; sets the role from what the store holds.
    async fn try_acquire(&mut self, store: &Store, lease: i64) -> Result<(), StoreError> {
        let key = self.key.clone();
        let name = self.name.clone();
        let resp = store
            .request(&format!("campaign at {key}"), |mut c| {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        name.as_str(),
                        Some(PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        let role = if resp.succeeded() {
            Role::Leading
        } else {
            let held = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
                _ => None,
            });
            match held {
                // Put by an attempt whose answer was lost.
                Some(kv) if kv.lease() == lease => Role::Leading,
                Some(kv) => Role::Following {
                    leader: String::from_utf8_lossy(kv.value()).into_owned(),
                },
                // Deleted since: the watch or the next tick tries again.
                None => Role::Candidate,
            }
        };
        if role == Role::Leading && *self.role.borrow() != Role::Leading {
            log::info!("store: {} conducts rollouts (lease {lease:x})", self.name);
        }
        self.role.send_replace(role);
        Ok(())
    }
}

/// Revokes `lease` (deleting the key when held), within [`REVOKE_TIMEOUT`]; logs a failure
/// (the lease then expires on its own).
async fn revoke(store: &Store, lease: i64) {
    let mut client = store.client();
    match tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease)).await {
        Ok(Ok(_)) => log::info!("store: conductor lease {lease:x} revoked"),
        Ok(Err(e)) => log::warn!("store: could not revoke conductor lease {lease:x}: {e}"),
        Err(_) => log::warn!(
            "store: could not revoke conductor lease {lease:x} within {} ms",
            REVOKE_TIMEOUT.as_millis()
        ),
    }
}
