//! Pushed versions: a record at `/{prefix}/versions/{version}` and the document at
//! `/{prefix}/documents/{version}`; history newest first; outcomes; pruning.
//!
//! Encoding: the record is compact JSON ([`VersionRecord`]); the document is the pushed text,
//! byte for byte, under its own key. They are two keys, written in one transaction and pruned
//! together, so that changing an outcome (which promotion does in the same transaction as
//! writing `config`) rewrites a few hundred bytes rather than the document, a promotion carries
//! the document once (etcd refuses requests over `--max-request-bytes`, 1.5 MiB by default),
//! and `config history` reads records only.

use crate::client::{Store, header_revision};
use crate::error::StoreError;
use crate::url::StoreUrl;
use etcd_client::{
    Compare, CompareOp, GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use portico_core::rollout::Outcome;
use serde::{Deserialize, Serialize};

/// How many versions the store keeps (the stable one and the rollout's target besides).
pub const KEPT_VERSIONS: usize = 100;

/// How many keys one pruning transaction deletes (etcd's `--max-txn-ops` is 128 by default).
const PRUNE_BATCH: usize = 100;

/// What the store says about one pushed version, at `/{prefix}/versions/{version}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// The version (the same as the key's last segment).
    pub version: String,
    /// When it was pushed, RFC 3339 UTC.
    pub pushed_at: String,
    /// Who pushed it (`--author`, default `$USER@hostname`).
    pub author: String,
    /// The push's `--message` (empty when none).
    #[serde(default)]
    pub message: String,
    /// `in_progress`, `promoted`, `rolled_back` or `aborted`.
    pub outcome: Outcome,
    /// Why it ended so: the rollout's state (`rolled back: gate 3: …`), when it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When its rollout ended, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl VersionRecord {
    /// The record as stored: compact JSON.
    pub fn to_json(&self) -> String {
        // Strings, options and a unit enum always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A version record as stored, with its etcd revisions.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVersion {
    /// The record.
    pub record: VersionRecord,
    /// The key's `mod_revision` (for compare-and-swap).
    pub mod_revision: i64,
    /// The key's `create_revision` (its first push).
    pub create_revision: i64,
}

/// Parses a version record read from `key`.
pub(crate) fn version_from_kv(key: &str, kv: &KeyValue) -> Result<StoredVersion, StoreError> {
    let record = serde_json::from_slice(kv.value()).map_err(|e| StoreError::InvalidValue {
        key: key.to_string(),
        reason: format!("not a version record: {e}"),
    })?;
    Ok(StoredVersion {
        record,
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
    })
}

/// The ops writing a version (record and document).
pub(crate) fn version_ops(url: &StoreUrl, record: &VersionRecord, text: &str) -> [TxnOp; 2] {
    [
        TxnOp::put(url.document_key(&record.version), text, None),
        TxnOp::put(url.version_key(&record.version), record.to_json(), None),
    ]
}

impl Store {
    /// Stores a new version: its record and its document, in one transaction; returns the
    /// revision. A version the store holds already is refused ([`StoreError::VersionExists`];
    /// [`Store::start_rollout`] takes a rolled-back or aborted version again).
    pub async fn put_version(&self, record: &VersionRecord, text: &str) -> Result<i64, StoreError> {
        let url = self.url().clone();
        let key = url.version_key(&record.version);
        let compare = Compare::create_revision(key.as_str(), CompareOp::Equal, 0);
        let ops = version_ops(&url, record, text);
        let resp = self
            .request(&format!("put of {key}"), |mut c| {
                let txn = Txn::new()
                    .when([compare.clone()])
                    .and_then(ops.clone())
                    .or_else([TxnOp::get(key.as_str(), None)]);
                async move { c.txn(txn).await }
            })
            .await
            .map_err(|e| e.sized(text.len() + record.to_json().len()))?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        // Written by an attempt whose answer was lost, or pushed before.
        match first_kv(resp.op_responses()) {
            Some(kv) => {
                let stored = version_from_kv(&key, &kv)?;
                if stored.record == *record {
                    return Ok(kv.mod_revision());
                }
                Err(StoreError::VersionExists {
                    version: record.version.clone(),
                    outcome: stored.record.outcome,
                })
            }
            // Deleted since: a retry will tell.
            None => Err(StoreError::UnknownVersion {
                version: record.version.clone(),
            }),
        }
    }

    /// The record of `version`, or `None` when the store does not hold it.
    pub async fn get_version(&self, version: &str) -> Result<Option<StoredVersion>, StoreError> {
        let key = self.url().version_key(version);
        let kv = self.get_one(&key).await?;
        kv.map(|kv| version_from_kv(&key, &kv)).transpose()
    }

    /// The document of `version`, or `None` when the store does not hold it.
    pub async fn get_document(&self, version: &str) -> Result<Option<String>, StoreError> {
        let key = self.url().document_key(version);
        let kv = self.get_one(&key).await?;
        kv.map(|kv| crate::client::doc_from_kv(&key, &kv).map(|d| d.text))
            .transpose()
    }

    /// The version records, newest first, at most `limit` of them (0: all). A value that is
    /// not a record is skipped (and logged as a warning).
    ///
    /// "Newest" is the last write of the record (its `mod_revision`): a push, or the end of its
    /// rollout. With one rollout at a time that is the order of pushes, and a version pushed
    /// again after a rollback comes first again.
    pub async fn history(&self, limit: usize) -> Result<Vec<StoredVersion>, StoreError> {
        let prefix = self.url().versions_prefix();
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut resp = self
            .request(&format!("list of {prefix}"), |mut c| {
                let (prefix, options) = (prefix.clone(), options.clone());
                async move { c.get(prefix, Some(options)).await }
            })
            .await?;
        Ok(resp
            .take_kvs()
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                version_from_kv(&key, &kv)
                    .map_err(|e| log::warn!("store: skipping {key}: {e}"))
                    .ok()
            })
            .collect())
    }

    /// Sets the outcome of `version` (and `reason`, and `ended_at` when the outcome is not
    /// `in_progress`), by compare-and-swap on its record, retried while someone else writes it.
    /// Returns the revision.
    pub async fn set_outcome(
        &self,
        version: &str,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Result<i64, StoreError> {
        let key = self.url().version_key(version);
        loop {
            let Some(stored) = self.get_version(version).await? else {
                return Err(StoreError::UnknownVersion {
                    version: version.to_string(),
                });
            };
            let record = with_outcome(stored.record, outcome, reason.clone());
            let compare =
                Compare::mod_revision(key.as_str(), CompareOp::Equal, stored.mod_revision);
            let resp = self
                .request(&format!("put of {key}"), |mut c| {
                    let txn = Txn::new().when([compare.clone()]).and_then([TxnOp::put(
                        key.as_str(),
                        record.to_json(),
                        None,
                    )]);
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return header_revision(resp.header());
            }
        }
    }

    /// Deletes every version (record and document) but the newest `keep` (as
    /// [`Store::history`] orders them) and those named in `protect` (the stable version, the rollout's target); returns how many it deleted.
    pub async fn prune_versions(&self, keep: usize, protect: &[&str]) -> Result<usize, StoreError> {
        let url = self.url().clone();
        let prefix = url.versions_prefix();
        let options = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Mod, SortOrder::Descend);
        let mut resp = self
            .request(&format!("list of {prefix}"), |mut c| {
                let (prefix, options) = (prefix.clone(), options.clone());
                async move { c.get(prefix, Some(options)).await }
            })
            .await?;
        let doomed: Vec<String> = resp
            .take_kvs()
            .iter()
            .skip(keep)
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                key.strip_prefix(prefix.as_str()).map(str::to_string)
            })
            .filter(|v| !protect.contains(&v.as_str()))
            .collect();
        for batch in doomed.chunks(PRUNE_BATCH / 2) {
            let ops: Vec<TxnOp> = batch
                .iter()
                .flat_map(|v| {
                    [
                        TxnOp::delete(url.version_key(v), None),
                        TxnOp::delete(url.document_key(v), None),
                    ]
                })
                .collect();
            self.request(&format!("prune of {prefix}"), |mut c| {
                let txn = Txn::new().and_then(ops.clone());
                async move { c.txn(txn).await }
            })
            .await?;
        }
        Ok(doomed.len())
    }

    /// The key-value pair at `key`, if any.
    pub(crate) async fn get_one(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut resp = self
            .request(&format!("get of {key}"), |c| {
                let key = key.to_string();
                async move {
                    c.kv_client()
                        .max_decoding_message_size(crate::client::MAX_MESSAGE_BYTES)
                        .get(key, None)
                        .await
                }
            })
            .await?;
        Ok(resp.take_kvs().into_iter().next())
    }
}

/// `record` with `outcome` and `reason`, and `ended_at` now unless the outcome is `in_progress`.
pub(crate) fn with_outcome(
    mut record: VersionRecord,
    outcome: Outcome,
    reason: Option<String>,
) -> VersionRecord {
    record.outcome = outcome;
    record.reason = reason;
    record.ended_at = (outcome != Outcome::InProgress).then(crate::node::now_rfc3339);
    record
}

/// The first key-value pair among the answers of a transaction's `get`s.
pub(crate) fn first_kv(responses: Vec<TxnOpResponse>) -> Option<KeyValue> {
    responses.into_iter().find_map(|op| match op {
        TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
        _ => None,
    })
}
