//! A connection to the store: read and write the config document, list registered nodes.

pub use crate::doc::{Expect, StoredDoc};
use crate::error::{StoreError, from_etcd};
use crate::node::{NodeRecord, NodeStatus};
use crate::url::StoreUrl;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The pause between two attempts of one request (another endpoint is tried: the client picks
/// one at random among those it is connected to).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

pub use crate::error::MAX_MESSAGE_BYTES;

/// A connection to the store named by a [`StoreUrl`]. Cheap to clone; clones share the
/// connection.
///
/// Every request is bounded by the timeout given to [`Store::connect`]; a request that fails
/// because an endpoint is down is retried on the others until that timeout. Requests require a
/// leader: a member cut off from its cluster answers with an error rather than stale data.
#[derive(Clone)]
pub struct Store {
    client: Client,
    url: StoreUrl,
    endpoints: String,
    timeout: Duration,
}

impl Store {
    /// Connects to the store and checks that it answers (a linearizable read of the config
    /// key) within `timeout`, which then bounds every request of this `Store`.
    ///
    /// Fails with [`StoreError::Unreachable`] (naming the endpoints and the last error) when no
    /// endpoint answered within `timeout`.
    pub async fn connect(url: &StoreUrl, timeout: Duration) -> Result<Store, StoreError> {
        let endpoints = url.endpoints_text();
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_require_leader(true);
        let client = Client::connect(&url.endpoints, Some(options))
            .await
            .map_err(|e| match from_etcd(&endpoints, e) {
                StoreError::Etcd(reason) => StoreError::Unreachable {
                    endpoints: endpoints.clone(),
                    reason,
                },
                other => other,
            })?;
        let store = Store {
            client,
            url: url.clone(),
            endpoints,
            timeout,
        };
        let key = store.url.config_key();
        store
            .request("connection check", |mut c| {
                let key = key.clone();
                async move {
                    c.get(key, Some(GetOptions::new().with_count_only()))
                        .await
                        .map(|_| ())
                }
            })
            .await
            .map_err(|e| match e {
                StoreError::Timeout { endpoints, .. } => StoreError::Unreachable {
                    endpoints,
                    reason: format!("no answer within {} ms", timeout.as_millis()),
                },
                other => other,
            })?;
        Ok(store)
    }

    /// The URL this store was connected with.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The time allowed to each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The stored config document, or `None` when there is none.
    pub async fn get_config(&self) -> Result<Option<StoredDoc>, StoreError> {
        self.get_config_at().await.map(|(doc, _)| doc)
    }

    /// The stored config document and the store revision the read saw (every change after the
    /// read has a higher revision).
    pub(crate) async fn get_config_at(&self) -> Result<(Option<StoredDoc>, i64), StoreError> {
        let (kv, revision) = self.get_raw(&self.url.config_key()).await?;
        let doc = match kv {
            Some(kv) => Some(doc_from_kv(&self.url.config_key(), &kv)?),
            None => None,
        };
        Ok((doc, revision))
    }

    /// Writes `text` at `key` only while the key's `mod_revision` is still `revision` (`None`:
    /// only while the key does not exist). `Ok(false)` when another writer came first: the
    /// caller reads again and decides anew.
    pub(crate) async fn put_if_unchanged(
        &self,
        key: &str,
        text: &str,
        revision: Option<i64>,
    ) -> Result<bool, StoreError> {
        let compare = match revision {
            None => Compare::create_revision(key, CompareOp::Equal, 0),
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
        };
        let resp = self
            .request(&format!("put of {key}"), |mut c| {
                let txn = Txn::new()
                    .when([compare.clone()])
                    .and_then([TxnOp::put(key, text, None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// The raw key-value pair at `key` (if any) and the store revision the read saw.
    pub(crate) async fn get_raw(&self, key: &str) -> Result<(Option<KeyValue>, i64), StoreError> {
        let key = key.to_string();
        let mut resp = self
            .request(&format!("get of {key}"), |c| {
                let key = key.clone();
                async move {
                    c.kv_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .get(key, None)
                        .await
                }
            })
            .await?;
        let revision = header_revision(resp.header())?;
        Ok((resp.take_kvs().into_iter().next(), revision))
    }

    /// Writes the config document if the store holds what `expect` says, in one etcd
    /// transaction; returns the new `mod_revision`.
    ///
    /// A lost compare fails with [`StoreError::CasLost`] carrying the document stored now (read
    /// in the same transaction). When an attempt failed in transit and a retry finds the very
    /// text being written already stored, the write is taken as done and its revision returned.
    pub async fn put_config(&self, text: &str, expect: Expect) -> Result<i64, StoreError> {
        let key = self.url.config_key();
        let what = format!("put of {key}");
        let compare = match expect {
            Expect::Any => {
                let resp = self
                    .request(&what, |mut c| {
                        let (key, text) = (key.clone(), text.to_string());
                        async move { c.put(key, text, None).await }
                    })
                    .await
                    .map_err(|e| e.sized(text.len()))?;
                return header_revision(resp.header());
            }
            Expect::Absent => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            Expect::ModRevision(rev) => Compare::mod_revision(key.as_str(), CompareOp::Equal, rev),
        };
        let mut attempts = 0u32;
        let resp = self
            .request(&what, |mut c| {
                attempts += 1;
                let txn = Txn::new()
                    .when([compare.clone()])
                    .and_then([TxnOp::put(key.as_str(), text, None)])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                async move { c.txn(txn).await }
            })
            .await
            .map_err(|e| e.sized(text.len()))?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        let mut current = None;
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(mut get) = op
                && let Some(kv) = get.take_kvs().into_iter().next()
            {
                current = Some(doc_from_kv(&key, &kv)?);
            }
        }
        match current {
            Some(doc) if attempts > 1 && doc.text == text => Ok(doc.mod_revision),
            current => Err(StoreError::CasLost { current }),
        }
    }

    /// Deletes the config document; true if there was one.
    pub async fn delete_config(&self) -> Result<bool, StoreError> {
        let key = self.url.config_key();
        let resp = self
            .request(&format!("delete of {key}"), |mut c| {
                let key = key.clone();
                async move { c.delete(key, None).await }
            })
            .await?;
        Ok(resp.deleted() > 0)
    }

    /// Every node registered under the nodes prefix, sorted by name. A value that is not a
    /// valid record is skipped (and logged as a warning).
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes: Vec<NodeRecord> = self.registrations().await?;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// Every node registered, with its rollout report (empty for a node that publishes none),
    /// sorted by name. A value that is not a valid record is skipped (and logged as a warning).
    /// [`NodeStatus::report`] gives what the rollout's gates judge.
    pub async fn node_statuses(&self) -> Result<Vec<NodeStatus>, StoreError> {
        let mut nodes: Vec<NodeStatus> = self.registrations().await?;
        nodes.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        Ok(nodes)
    }

    /// Every value under the nodes prefix that parses as a `T`.
    async fn registrations<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let prefix = self.url.nodes_prefix();
        let mut resp = self
            .request(&format!("list of {prefix}"), |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        Ok(resp
            .take_kvs()
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                match serde_json::from_slice::<T>(kv.value()) {
                    Ok(record) => Some(record),
                    Err(e) => {
                        log::warn!("store: skipping {key}: not a node record: {e}");
                        None
                    }
                }
            })
            .collect())
    }

    /// Puts `value` at `key` attached to `lease`; returns the new revision.
    pub(crate) async fn put_with_lease(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> Result<i64, StoreError> {
        let resp = self
            .request(&format!("put of {key}"), |mut c| {
                let (key, value) = (key.to_string(), value.to_string());
                async move {
                    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await?;
        header_revision(resp.header())
    }

    /// A clone of the underlying etcd client, for streams (watch, lease keep-alive).
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// The endpoints, comma-separated (for messages).
    pub(crate) fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Grants a lease of `ttl_secs`: its id and the TTL etcd granted (etcd may round it).
    /// A grant etcd answered with an error (id 0 or no TTL) is [`StoreError::Lease`].
    pub(crate) async fn grant_lease(&self, ttl_secs: i64) -> Result<(i64, Duration), StoreError> {
        let granted = self
            .request("lease grant", |mut c| async move {
                c.lease_grant(ttl_secs, None).await
            })
            .await?;
        let lease = granted.id();
        if lease == 0 || granted.ttl() <= 0 {
            return Err(StoreError::Lease {
                id: lease,
                reason: format!("not granted: {}", granted.error()),
            });
        }
        Ok((lease, Duration::from_secs(granted.ttl().unsigned_abs())))
    }

    /// Runs one request, retrying transient failures (a dead endpoint, no leader yet) until the
    /// store's timeout. `what` names the request in a [`StoreError::Timeout`].
    pub(crate) async fn request<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut last: Option<StoreError> = None;
        loop {
            match tokio::time::timeout_at(deadline, op(self.client.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => {
                    let e = from_etcd(&self.endpoints, e);
                    if !e.is_transient() {
                        return Err(e);
                    }
                    log::debug!("store: {what} failed, retrying: {e}");
                    last = Some(e);
                }
                Err(_elapsed) => break,
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(last.unwrap_or_else(|| StoreError::Timeout {
            endpoints: self.endpoints.clone(),
            what: what.to_string(),
            after: self.timeout,
        }))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The document in a key-value pair read from `key`; a non-UTF-8 value is an error.
pub(crate) fn doc_from_kv(key: &str, kv: &KeyValue) -> Result<StoredDoc, StoreError> {
    let text = std::str::from_utf8(kv.value()).map_err(|e| StoreError::InvalidValue {
        key: key.to_string(),
        reason: format!("not UTF-8 ({e})"),
    })?;
    Ok(StoredDoc {
        text: text.to_string(),
        mod_revision: kv.mod_revision(),
    })
}

pub(crate) fn header_revision(
    header: Option<&etcd_client::ResponseHeader>,
) -> Result<i64, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Etcd("etcd answered without a response header".to_string()))
}
