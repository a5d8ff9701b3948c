//! The rollout at `/{prefix}/rollout`: started only when none is in progress, saved by
//! compare-and-swap, ended in one transaction with its version's outcome (and, on promotion,
//! `config`); and `config rollback` to an earlier promoted version.
//!
//! Every write that must agree with another is one etcd transaction, so a conductor that dies
//! between two requests never leaves `config`, `versions/<target>` and `rollout` disagreeing.

use crate::client::{Expect, Store, header_revision};
use crate::error::StoreError;
use crate::versions::{KEPT_VERSIONS, VersionRecord, first_kv, version_ops, with_outcome};
use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse};
use portico_core::rollout::{Outcome, Rollout, State, UnixMillis, check_rollback};
use std::time::{Duration, SystemTime};

/// How many times a transaction is tried again when a key it does not own changed under it.
const ATTEMPTS: usize = 5;

/// The rollout as stored, with the `mod_revision` to compare-and-swap against.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRollout {
    /// The rollout.
    pub rollout: Rollout,
    /// The key's `mod_revision`.
    pub mod_revision: i64,
}

impl StoredRollout {
    /// Parses a rollout read by [`crate::follow_rollout`].
    pub fn from_doc(doc: &crate::StoredDoc) -> Result<StoredRollout, StoreError> {
        let rollout = serde_json::from_str(&doc.text).map_err(|e| StoreError::InvalidValue {
            key: "rollout".to_string(),
            reason: format!("not a rollout: {e}"),
        })?;
        Ok(StoredRollout {
            rollout,
            mod_revision: doc.mod_revision,
        })
    }
}

impl Store {
    /// The rollout in progress or the last one, or `None` when none was ever started.
    pub async fn get_rollout(&self) -> Result<Option<StoredRollout>, StoreError> {
        let key = self.url().rollout_key();
        self.get_one(&key)
            .await?
            .map(|kv| rollout_from_kv(&key, &kv))
            .transpose()
    }

    /// Starts `rollout` (from [`Rollout::start`]) of the document `text`, pushed with `message`:
    /// in one transaction, writes the version (record and document), the rollout and, when the
    /// rollout is promoted at once (no stable document or no node), `config` = `text`. Returns
    /// the revision.
    ///
    /// The transaction succeeds only when no rollout is in progress (the stored one is absent
    /// or over, and unchanged since it was read), the version is new or was rolled back or
    /// aborted (pushed again: its record is rewritten), and `config` is what
    /// `config` expects (the stable document the plan was made against; `--if-version`), so of
    /// two pushes racing only one starts. Fails with [`StoreError::RolloutInProgress`] naming
    /// the rollout in progress, [`StoreError::VersionExists`] (a promoted version: `config
    /// rollback` makes it stable), or [`StoreError::CasLost`]
    /// carrying the stored `config`.
    ///
    /// Once started, versions beyond the newest [`KEPT_VERSIONS`] are pruned, never the stable
    /// one (`rollout.stable`) nor the target; a failed pruning is logged and tried again at the
    /// next push.
    pub async fn start_rollout(
        &self,
        rollout: &Rollout,
        text: &str,
        message: &str,
        config: Expect,
    ) -> Result<i64, StoreError> {
        let url = self.url().clone();
        let (rkey, ckey) = (url.rollout_key(), url.config_key());
        let vkey = url.version_key(&rollout.target);
        let json = rollout_json(&rkey, rollout)?;
        let outcome = rollout.state.outcome();
        let record = with_outcome(
            VersionRecord {
                version: rollout.target.clone(),
                pushed_at: rfc3339(rollout.started_at_ms),
                author: rollout.author.clone(),
                message: message.to_string(),
                outcome,
                reason: None,
                ended_at: None,
            },
            outcome,
            reason(&rollout.state),
        );
        let promoted = outcome == Outcome::Promoted;
        let size = text.len() * if promoted { 2 } else { 1 } + json.len();
        for _ in 0..ATTEMPTS {
            let current = self.get_one(&rkey).await?;
            let rollout_compare = match &current {
                Some(kv) => {
                    let stored = rollout_from_kv(&rkey, kv)?;
                    if !stored.rollout.state.is_over() {
                        return Err(in_progress(&stored.rollout));
                    }
                    Compare::mod_revision(rkey.as_str(), CompareOp::Equal, kv.mod_revision())
                }
                None => Compare::create_revision(rkey.as_str(), CompareOp::Equal, 0),
            };
            // A new version, or one whose earlier rollout was rolled back or aborted (taken
            // again: its record is rewritten).
            let version_compare = match self.get_version(&rollout.target).await? {
                None => Compare::create_revision(vkey.as_str(), CompareOp::Equal, 0),
                Some(stored) if again(stored.record.outcome) => {
                    Compare::mod_revision(vkey.as_str(), CompareOp::Equal, stored.mod_revision)
                }
                Some(stored) => {
                    return Err(StoreError::VersionExists {
                        version: rollout.target.clone(),
                        outcome: stored.record.outcome,
                    });
                }
            };
            let version_ops = version_ops(&url, &record, text);
            let mut compares = vec![rollout_compare, version_compare];
            compares.extend(compare_for(&ckey, config));
            let mut ops = version_ops.to_vec();
            ops.push(TxnOp::put(rkey.as_str(), json.as_str(), None));
            if promoted {
                ops.push(TxnOp::put(ckey.as_str(), text, None));
            }
            let resp = self
                .request(
                    &format!("start of the rollout of {}", rollout.target),
                    |mut c| {
                        let txn = Txn::new()
                            .when(compares.clone())
                            .and_then(ops.clone())
                            .or_else([
                                TxnOp::get(rkey.as_str(), None),
                                TxnOp::get(vkey.as_str(), None),
                                TxnOp::get(ckey.as_str(), None),
                            ]);
                        async move { c.txn(txn).await }
                    },
                )
                .await
                .map_err(|e| e.sized(size))?;
            if resp.succeeded() {
                let revision = header_revision(resp.header())?;
                self.prune_after_push(rollout).await;
                return Ok(revision);
            }
            let [stored_rollout, _, stored_config] = gets(resp.op_responses());
            if let Some(kv) = &stored_rollout {
                let stored = rollout_from_kv(&rkey, kv)?;
                if stored.rollout == *rollout {
                    // Written by an attempt whose answer was lost.
                    return Ok(stored.mod_revision);
                }
                if !stored.rollout.state.is_over() {
                    return Err(in_progress(&stored.rollout));
                }
            }
            if !matches(config, stored_config.as_ref()) {
                let current = stored_config
                    .map(|kv| crate::client::doc_from_kv(&ckey, &kv))
                    .transpose()?;
                return Err(StoreError::CasLost { current });
            }
            // The finished rollout or the version's record changed: read them again.
        }
        Err(StoreError::RolloutChanged { current: None })
    }

    /// Saves `rollout` if the stored one is what `expect` says (its `mod_revision` from
    /// [`Store::get_rollout`]); returns the new revision. A lost compare fails with
    /// [`StoreError::RolloutChanged`].
    ///
    /// When the rollout is over, the same transaction writes its target's outcome (`reason`:
    /// the state, e.g. `rolled back: gate 3: …`) and, when promoted, `config` = the target's
    /// document — unless the version's record already has that outcome (saved before).
    pub async fn save_rollout(&self, rollout: &Rollout, expect: Expect) -> Result<i64, StoreError> {
        let url = self.url().clone();
        let (rkey, ckey) = (url.rollout_key(), url.config_key());
        let vkey = url.version_key(&rollout.target);
        let json = rollout_json(&rkey, rollout)?;
        let outcome = rollout.state.outcome();
        for _ in 0..ATTEMPTS {
            let mut compares: Vec<Compare> = compare_for(&rkey, expect).into_iter().collect();
            let mut ops = vec![TxnOp::put(rkey.as_str(), json.as_str(), None)];
            let mut size = json.len();
            if rollout.state.is_over() {
                let Some(stored) = self.get_version(&rollout.target).await? else {
                    return Err(StoreError::UnknownVersion {
                        version: rollout.target.clone(),
                    });
                };
                compares.push(Compare::mod_revision(
                    vkey.as_str(),
                    CompareOp::Equal,
                    stored.mod_revision,
                ));
                if stored.record.outcome != outcome {
                    let record = with_outcome(stored.record, outcome, reason(&rollout.state));
                    ops.push(TxnOp::put(vkey.as_str(), record.to_json(), None));
                    if outcome == Outcome::Promoted {
                        let Some(text) = self.get_document(&rollout.target).await? else {
                            return Err(StoreError::UnknownVersion {
                                version: rollout.target.clone(),
                            });
                        };
                        size += text.len();
                        ops.push(TxnOp::put(ckey.as_str(), text, None));
                    }
                }
            }
            let resp = self
                .request(&format!("save of {rkey}"), |mut c| {
                    let txn = Txn::new()
                        .when(compares.clone())
                        .and_then(ops.clone())
                        .or_else([TxnOp::get(rkey.as_str(), None)]);
                    async move { c.txn(txn).await }
                })
                .await
                .map_err(|e| e.sized(size))?;
            if resp.succeeded() {
                return header_revision(resp.header());
            }
            let current = first_kv(resp.op_responses());
            if let Some(kv) = &current {
                let stored = rollout_from_kv(&rkey, kv)?;
                if stored.rollout == *rollout {
                    // Written by an attempt whose answer was lost.
                    return Ok(stored.mod_revision);
                }
            }
            if !matches(expect, current.as_ref()) {
                return Err(StoreError::RolloutChanged {
                    current: current.map(|kv| kv.mod_revision()),
                });
            }
            // The version's record changed under us: read it again.
        }
        Err(StoreError::RolloutChanged { current: None })
    }

    /// `config rollback VERSION`: makes the document of an earlier **promoted** version the
    /// stable `config` at once, in one transaction that checks that no rollout is in progress
    /// and that the version is still promoted. Returns the revision.
    ///
    /// Fails with [`StoreError::Refused`] for a version that is not promoted (or that the store
    /// does not hold), [`StoreError::RolloutInProgress`] while a rollout lasts.
    pub async fn rollback_to(&self, version: &str) -> Result<i64, StoreError> {
        let url = self.url().clone();
        let (rkey, ckey, vkey) = (
            url.rollout_key(),
            url.config_key(),
            url.version_key(version),
        );
        for _ in 0..ATTEMPTS {
            let rollout_compare = match self.get_one(&rkey).await? {
                Some(kv) => {
                    let stored = rollout_from_kv(&rkey, &kv)?;
                    if !stored.rollout.state.is_over() {
                        return Err(in_progress(&stored.rollout));
                    }
                    Compare::mod_revision(rkey.as_str(), CompareOp::Equal, kv.mod_revision())
                }
                None => Compare::create_revision(rkey.as_str(), CompareOp::Equal, 0),
            };
            let stored = self.get_version(version).await?;
            check_rollback(version, stored.as_ref().map(|s| s.record.outcome))?;
            let Some(stored) = stored else {
                return Err(StoreError::UnknownVersion {
                    version: version.to_string(),
                });
            };
            let Some(text) = self.get_document(version).await? else {
                return Err(StoreError::UnknownVersion {
                    version: version.to_string(),
                });
            };
            let compares = [
                rollout_compare,
                Compare::mod_revision(vkey.as_str(), CompareOp::Equal, stored.mod_revision),
            ];
            let resp = self
                .request(&format!("rollback to {version}"), |mut c| {
                    let txn = Txn::new().when(compares.clone()).and_then([TxnOp::put(
                        ckey.as_str(),
                        text.as_str(),
                        None,
                    )]);
                    async move { c.txn(txn).await }
                })
                .await
                .map_err(|e| e.sized(text.len()))?;
            if resp.succeeded() {
                return header_revision(resp.header());
            }
        }
        Err(StoreError::RolloutChanged { current: None })
    }
}

impl Store {
    /// Prunes the versions after `rollout` started (best effort).
    async fn prune_after_push(&self, rollout: &Rollout) {
        let mut protect = vec![rollout.target.as_str()];
        protect.extend(rollout.stable.as_deref());
        match self.prune_versions(KEPT_VERSIONS, &protect).await {
            Ok(0) => {}
            Ok(n) => log::info!("store: pruned {n} old versions"),
            Err(e) => log::warn!("store: could not prune old versions: {e}"),
        }
    }
}

/// Parses the rollout read from `key`.
fn rollout_from_kv(key: &str, kv: &KeyValue) -> Result<StoredRollout, StoreError> {
    let rollout = serde_json::from_slice(kv.value()).map_err(|e| StoreError::InvalidValue {
        key: key.to_string(),
        reason: format!("not a rollout: {e}"),
    })?;
    Ok(StoredRollout {
        rollout,
        mod_revision: kv.mod_revision(),
    })
}

fn rollout_json(key: &str, rollout: &Rollout) -> Result<String, StoreError> {
    serde_json::to_string(rollout).map_err(|e| StoreError::InvalidValue {
        key: key.to_string(),
        reason: format!("the rollout does not serialize: {e}"),
    })
}

fn in_progress(rollout: &Rollout) -> StoreError {
    StoreError::RolloutInProgress {
        target: rollout.target.clone(),
        state: rollout.state.to_string(),
    }
}

/// Whether a version with this outcome may be rolled out again (its rollout failed).
fn again(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::RolledBack | Outcome::Aborted)
}

/// What a version record says about how its rollout ended (`None` when it did not, or was
/// promoted).
fn reason(state: &State) -> Option<String> {
    matches!(state, State::RolledBack(_) | State::Aborted).then(|| state.to_string())
}

/// The compare that `key` is what `expect` says (none for [`Expect::Any`]).
fn compare_for(key: &str, expect: Expect) -> Option<Compare> {
    match expect {
        Expect::Any => None,
        Expect::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
        Expect::ModRevision(rev) => Some(Compare::mod_revision(key, CompareOp::Equal, rev)),
    }
}

/// Whether the key-value pair read (or its absence) is what `expect` says.
fn matches(expect: Expect, kv: Option<&KeyValue>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => kv.is_none(),
        Expect::ModRevision(rev) => kv.is_some_and(|kv| kv.mod_revision() == rev),
    }
}

/// The first key-value pair of each of the three `get`s of a transaction's `else` branch.
fn gets(responses: Vec<TxnOpResponse>) -> [Option<KeyValue>; 3] {
    let mut kvs = responses.into_iter().map(|op| match op {
        TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
        _ => None,
    });
    [
        kvs.next().flatten(),
        kvs.next().flatten(),
        kvs.next().flatten(),
    ]
}

/// A time in milliseconds since the epoch as RFC 3339 UTC with seconds.
fn rfc3339(ms: UnixMillis) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_500), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn expectations_match_what_was_read() {
        assert!(matches(Expect::Any, None));
        assert!(matches(Expect::Absent, None));
        assert!(!matches(Expect::ModRevision(3), None));
    }
}
