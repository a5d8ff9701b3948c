//! Managed certificates shared through the store (SPEC part 3): one JSON document at
//! `/{prefix}/acme` ([`AcmeDoc`]: the CA accounts, the HTTP-01 answers of orders in flight,
//! the issued chains and keys), changed with compare-and-swap and followed by every node like
//! the config; and per certificate an order lock at `/{prefix}/acme-locks/{name}`, created
//! only when absent, under a lease kept alive while its order runs, so one node orders at a
//! time and a node that dies mid-order gives the lock up when its lease lapses.

use crate::client::{Store, header_revision};
use crate::error::{StoreError, from_etcd};
use crate::follow::{StoreEvent, follow_key};
use crate::url::StoreUrl;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use portico_core::acme::{Failure, UnixMillis, retry_delay};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Time-to-live of an order lock's lease: a node that dies mid-order is replaced this long
/// after its last keep-alive.
pub const ORDER_LOCK_TTL_SECS: i64 = 10;

/// What nodes share about managed certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeDoc {
    /// Account credentials (instant-acme's JSON) by CA directory URL.
    #[serde(default)]
    pub accounts: BTreeMap<String, serde_json::Value>,
    /// Key authorizations by HTTP-01 token, while their order runs.
    #[serde(default)]
    pub challenges: BTreeMap<String, String>,
    /// The last certificate issued, by `certificates[].name`.
    #[serde(default)]
    pub certificates: BTreeMap<String, StoredCert>,
    /// The orders of each certificate the CA refused since it was last issued, by
    /// `certificates[].name`: every node waits for the same backoff, so the CA sees one
    /// node's retries however many nodes there are (its limits count failed validations).
    #[serde(default)]
    pub failures: BTreeMap<String, StoredFailure>,
}

/// Failed orders of one certificate, shared by the nodes that take turns ordering it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFailure {
    /// Failed orders in a row, whichever node ran them.
    pub failures: u32,
    /// No node orders the certificate before this time (milliseconds since the epoch).
    pub retry_at: UnixMillis,
    /// What the last one said.
    pub error: String,
}

/// An issued certificate as stored: PEM chain (leaf first) and PEM private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCert {
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
    /// The ACME directory URL of the CA that issued it.
    #[serde(default)]
    pub directory: String,
}

impl StoreUrl {
    /// The key of the shared ACME document: `/{prefix}/acme`.
    pub fn acme_key(&self) -> String {
        format!("/{}/acme", self.prefix)
    }

    /// The key of certificate `name`'s order lock: `/{prefix}/acme-locks/{name}`.
    pub fn acme_lock_key(&self, name: &str) -> String {
        format!("/{}/acme-locks/{name}", self.prefix)
    }
}

/// Follows the ACME document as [`crate::follow`] follows the config: each
/// [`StoreEvent::Document`] carries its JSON (parse it with [`AcmeDoc::parse`]).
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn follow_acme(url: StoreUrl) -> (mpsc::Receiver<StoreEvent>, JoinHandle<()>) {
    let key = url.acme_key();
    follow_key(url, key)
}

impl AcmeDoc {
    /// Counts a failed order of certificate `name` of kind `kind` at `now`: the next order of
    /// any node waits for the backoff of all the failures in a row so far.
    pub fn note_failure(&mut self, name: &str, kind: Failure, error: &str, now: UnixMillis) {
        let f = self.failures.entry(name.to_string()).or_default();
        f.failures = f.failures.saturating_add(1);
        f.retry_at = now.saturating_add(retry_delay(kind, f.failures));
        f.error = error.to_string();
    }

    /// The failures of certificate `name` that no node may order it before, if `now` is
    /// before their `retry_at`.
    pub fn backoff(&self, name: &str, now: UnixMillis) -> Option<&StoredFailure> {
        self.failures.get(name).filter(|f| now < f.retry_at)
    }

    /// Parses the stored JSON (an unreadable document reads as empty, and is replaced by the
    /// next write).
    pub fn parse(text: &str) -> AcmeDoc {
        serde_json::from_str(text).unwrap_or_else(|e| {
            log::warn!("store: the ACME document is not valid ({e}); read as empty");
            AcmeDoc::default()
        })
    }
}

/// An order lock held: dropped (or [`OrderLock::release`]d) it stops being kept alive.
pub struct OrderLock {
    store: Store,
    lease: i64,
    keeper: JoinHandle<()>,
}

impl OrderLock {
    /// Gives the lock up at once (revokes its lease).
    pub async fn release(self) {
        self.keeper.abort();
        let mut client = self.store.client();
        let _ = tokio::time::timeout(self.store.timeout(), client.lease_revoke(self.lease)).await;
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Store {
    /// The ACME document and its `mod_revision` (`None`: there is none yet).
    pub async fn get_acme(&self) -> Result<(AcmeDoc, Option<i64>), StoreError> {
        let (kv, _) = self.get_raw(&self.url().acme_key()).await?;
        Ok(match kv {
            Some(kv) => (
                AcmeDoc::parse(&String::from_utf8_lossy(kv.value())),
                Some(kv.mod_revision()),
            ),
            None => (AcmeDoc::default(), None),
        })
    }

    /// Changes the ACME document with `change`, compare-and-swap, read again and retried when
    /// another node wrote in between. Returns the document written.
    pub async fn update_acme(&self, change: impl Fn(&mut AcmeDoc)) -> Result<AcmeDoc, StoreError> {
        let key = self.url().acme_key();
        for _ in 0..50 {
            let (mut doc, revision) = self.get_acme().await?;
            change(&mut doc);
            let text = serde_json::to_string(&doc).map_err(|e| StoreError::InvalidValue {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            if self.put_if_unchanged(&key, &text, revision).await? {
                return Ok(doc);
            }
        }
        Err(StoreError::CasLost { current: None })
    }

    /// Takes certificate `name`'s order lock for `holder` if no node holds it: `Ok(Err(holder))`
    /// names the node that does. The lock lives under a lease of [`ORDER_LOCK_TTL_SECS`]
    /// kept alive until the returned lock is released or dropped.
    pub async fn lock_acme_order(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<Result<OrderLock, String>, StoreError> {
        let key = self.url().acme_lock_key(name);
        let (lease, ttl) = self.grant_lease(ORDER_LOCK_TTL_SECS).await?;
        let resp = self
            .request(&format!("lock {key}"), |mut c| {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        holder,
                        Some(PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        header_revision(resp.header())?;
        if !resp.succeeded() {
            let mut client = self.client();
            let _ = tokio::time::timeout(self.timeout(), client.lease_revoke(lease)).await;
            let mut other = String::from("another node");
            for op in resp.op_responses() {
                if let TxnOpResponse::Get(mut get) = op
                    && let Some(kv) = get.take_kvs().into_iter().next()
                {
                    other = String::from_utf8_lossy(kv.value()).into_owned();
                }
            }
            return Ok(Err(other));
        }
        let mut client = self.client();
        let (mut keeper, mut answers) = client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| from_etcd(self.endpoints(), e))?;
        let every = (ttl / 3).max(Duration::from_millis(500));
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if keeper.keep_alive().await.is_err() {
                    return;
                }
                match answers.message().await {
                    Ok(Some(a)) if a.ttl() > 0 => {}
                    _ => return,
                }
            }
        });
        Ok(Ok(OrderLock {
            store: self.clone(),
            lease,
            keeper,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_across_nodes_and_back_off_every_node() {
        let mut doc = AcmeDoc::parse(r#"{"certificates": {}}"#);
        assert_eq!(doc.backoff("www", 0), None);
        // One node fails (the CA refused), then another after the first backoff.
        doc.note_failure("www", Failure::Refused, "rate limited", 1_000);
        let first = doc.backoff("www", 1_000).expect("backing off").clone();
        assert_eq!(first.retry_at, 1_000 + retry_delay(Failure::Refused, 1));
        assert_eq!(doc.backoff("www", first.retry_at), None);
        doc.note_failure(
            "www",
            Failure::Refused,
            "rate limited again",
            first.retry_at,
        );
        let second = doc.backoff("www", first.retry_at).expect("backing off");
        assert_eq!(second.failures, 2);
        assert_eq!(
            second.retry_at,
            first.retry_at + retry_delay(Failure::Refused, 2)
        );
        assert_eq!(second.error, "rate limited again");
        assert_eq!(doc.backoff("other", first.retry_at), None);
        // It survives the store: every node reads the same backoff.
        let text = serde_json::to_string(&doc).expect("json");
        assert_eq!(AcmeDoc::parse(&text), doc);
    }
}
