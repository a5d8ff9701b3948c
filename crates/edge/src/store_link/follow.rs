//! Which version this node runs: it follows `PREFIX/config` (the stable document) and
//! `PREFIX/rollout`, and runs the rollout's target while it is a member of a started wave of a
//! rollout in progress or paused, else the stable document (SPEC "Health-gated rollout"). Every
//! change goes through the one pipeline ([`apply`]): live, no request dropped.
//!
//! - The target's document is read from `PREFIX/documents/<version>` when the node is
//!   assigned it; a read that fails (store unreachable) is tried again every second.
//! - A target that does not prepare or apply here is **rejected**: the node keeps running the
//!   stable document and reports the rejection with its errors (gate 1 rolls back) while that
//!   rollout lasts. It is not tried again within the same rollout; a later rollout of the same
//!   version tries again.
//! - A stable revision that does not prepare here is logged and shown in `/status` as before
//!   rollouts; the node keeps what it runs and tries the next revision.
//! - **The cache** (`--cache`) holds the last *stable* document this node ran, written when
//!   it applied it or, when it ran it already (a promoted target it ran in its wave), when
//!   the store made it stable. Never a target while its rollout lasts: a node that restarts
//!   without the store comes back on the last document that was both good here and judged
//!   good (promoted or pushed stable), as every node outside the rollout, not on a target its
//!   gates might still roll back.

use super::StoreLink;
use crate::config::reload::apply;
use crate::state::{NodeState, ReloadSource};
use portico_core::config::{ConfigErrors, fingerprint};
use portico_core::rollout::{Rejection, Rollout, State, UnixMillis};
use portico_store::{Store, StoreEvent, StoredDoc, StoredRollout};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often a failed read of the target is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What the node should run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// The stable document (none yet: keep what runs).
    Stable,
    /// The rollout's target: this version, of the rollout started then.
    Target(String, UnixMillis),
    /// What runs: the rollout was promoted but the `config` watch has not yet delivered the
    /// promoted document (both were written in one transaction, the two watches deliver them
    /// apart) — running the stable document in hand would take the node back to the old one.
    Keep,
}

/// The version the rollout assigns node `name` (SPEC): the target while it is a member of a
/// started wave and the rollout is in progress or paused; else the stable document — also
/// once promoted, when `config` holds the target (after a later `config rollback` the stable
/// document is no longer the promoted target). `rollout` comes with its `mod_revision`;
/// `stable` is the `mod_revision` of the stable document in hand: one older than a promotion
/// is the document the promotion replaced, so the node keeps what it runs until the new one
/// arrives.
fn want(rollout: Option<(&Rollout, i64)>, stable: Option<i64>, name: &str) -> Want {
    match rollout {
        Some((r, _)) if !r.state.is_over() && r.wave_of(name).is_some() => {
            Want::Target(r.target.clone(), r.started_at_ms)
        }
        Some((r, revision))
            if r.state == State::Promoted && stable.is_none_or(|s| s < revision) =>
        {
            Want::Keep
        }
        _ => Want::Stable,
    }
}

/// The follow loop's state.
struct Follower {
    link: Arc<StoreLink>,
    node: Arc<NodeState>,
    /// The stable document, as last read.
    stable: Option<StoredDoc>,
    /// The rollout, as last read, and its `mod_revision`.
    rollout: Option<(Rollout, i64)>,
    /// The stable revision that failed to apply here (not tried again).
    failed_stable: Option<i64>,
    /// The target rejected here, and the start of its rollout.
    rejected: Option<(String, UnixMillis)>,
    /// The stable version written to the cache.
    cached: Option<String>,
    /// A connection for reading targets, made when first needed.
    store: Option<Store>,
}

/// Follows the store for `node` until the task is aborted.
pub(super) async fn follow(link: Arc<StoreLink>, node: Arc<NodeState>) {
    let url = link.url.clone();
    let (mut configs, _config_follower) = portico_store::follow(url.clone());
    let (mut rollouts, _rollout_follower) = portico_store::follow_rollout(url.clone());
    let mut f = Follower {
        cached: None,
        link,
        node,
        stable: None,
        rollout: None,
        failed_stable: None,
        rejected: None,
        store: None,
    };
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut connected = true;
    loop {
        tokio::select! {
            event = configs.recv() => match event {
                None => return,
                Some(StoreEvent::Document(doc)) => {
                    f.failed_stable = None;
                    f.stable = Some(doc);
                }
                Some(StoreEvent::Connected) => {
                    if !connected {
                        log::info!("store {url}: connected again, following {}", url.config_key());
                    }
                    connected = true;
                    continue;
                }
                Some(StoreEvent::Disconnected { reason }) => {
                    if connected {
                        log::warn!(
                            "store {url}: lost ({reason}); serving the running config {} and retrying",
                            f.node.snapshot().config.version
                        );
                    }
                    connected = false;
                    continue;
                }
                Some(StoreEvent::Deleted) => {
                    log::warn!(
                        "store {url}: {} was deleted; keeping the running config {}",
                        url.config_key(),
                        f.node.snapshot().config.version
                    );
                    continue;
                }
            },
            event = rollouts.recv() => match event {
                None => return,
                Some(StoreEvent::Document(doc)) => match StoredRollout::from_doc(&doc) {
                    Ok(stored) => f.set_rollout(Some((stored.rollout, stored.mod_revision))),
                    Err(e) => {
                        log::warn!("store {url}: {e}; following the stable document");
                        f.set_rollout(None);
                    }
                },
                Some(StoreEvent::Deleted) => f.set_rollout(None),
                Some(StoreEvent::Connected | StoreEvent::Disconnected { .. }) => continue,
            },
            _ = retry.tick() => {}
        }
        f.converge().await;
    }
}

impl Follower {
    /// A new revision of the rollout. A rejection is reported only while the rollout it
    /// belongs to lasts: once that rollout is over (its verdict keeps the errors) or another
    /// one started, the report drops it, so a version pushed again (the missing file now
    /// installed) is judged on this node's new attempt, not on the old rejection.
    fn set_rollout(&mut self, rollout: Option<(Rollout, i64)>) {
        let in_progress = rollout.as_ref().is_some_and(|(r, _)| !r.state.is_over());
        self.node.metrics.set_rollout_in_progress(in_progress);
        let stale = self.rejected.is_some()
            && match &rollout {
                None => true,
                Some((r, _)) => {
                    r.state.is_over()
                        || self.rejected.as_ref() != Some(&(r.target.clone(), r.started_at_ms))
                }
            };
        if stale {
            self.rejected = None;
        }
        self.link.update(|f| {
            f.rollout = rollout.as_ref().map(|(r, _)| r.clone());
            if stale {
                f.rejected = None;
            }
        });
        self.rollout = rollout;
    }

    /// Brings the node to what it should run, and caches the stable document once it runs it.
    async fn converge(&mut self) {
        let want = want(
            self.rollout.as_ref().map(|(r, revision)| (r, *revision)),
            self.stable.as_ref().map(|d| d.mod_revision),
            &self.link.name,
        );
        let stable = match &want {
            Want::Keep => false,
            Want::Target(version, started)
                if self.rejected.as_ref() != Some(&(version.clone(), *started)) =>
            {
                if self.node.snapshot().config.version != *version {
                    self.run_target(version, *started).await;
                }
                false
            }
            _ => true,
        };
        if stable {
            self.run_stable().await;
        }
        self.cache();
    }

    async fn run_stable(&mut self) {
        let Some(doc) = &self.stable else {
            return;
        };
        if self.failed_stable == Some(doc.mod_revision)
            || fingerprint(&doc.text) == self.node.snapshot().config.version
        {
            return;
        }
        if apply(&self.node, &doc.text, ReloadSource::Store)
            .await
            .is_err()
        {
            self.failed_stable = Some(doc.mod_revision);
        }
    }

    /// Reads the target's document and applies it; a document that fails here is rejected.
    async fn run_target(&mut self, version: &str, started: UnixMillis) {
        let read = match &self.store {
            Some(store) => store.get_document(version).await,
            None => match self.link.connect().await {
                Ok(store) => {
                    let read = store.get_document(version).await;
                    self.store = Some(store);
                    read
                }
                Err(e) => Err(e),
            },
        };
        let text = match read {
            Ok(Some(text)) => text,
            Ok(None) => {
                let why = format!("the store holds no document for version {version}");
                log::error!("rollout of {version}: {why}; running the stable document");
                self.reject(version, started, vec![why]);
                return;
            }
            Err(e) => {
                log::warn!("rollout of {version}: cannot read its document ({e}); trying again");
                self.store = None;
                return;
            }
        };
        match apply(&self.node, &text, ReloadSource::Store).await {
            Ok(_) => {
                log::info!("rollout: this node runs the target {version}");
                self.link.update(|f| {
                    if f.rejected.as_ref().is_some_and(|r| r.version == version) {
                        f.rejected = None;
                    }
                });
            }
            Err(errors) => {
                log::error!(
                    "rollout of {version}: rejected here ({} error{}); running the stable document",
                    errors.0.len(),
                    if errors.0.len() == 1 { "" } else { "s" }
                );
                self.reject(version, started, lines(&errors));
            }
        }
    }

    fn reject(&mut self, version: &str, started: UnixMillis, errors: Vec<String>) {
        self.rejected = Some((version.to_string(), started));
        let rejection = Rejection {
            version: version.to_string(),
            errors,
            rollout_started_at_ms: started,
        };
        self.link.update(|f| f.rejected = Some(rejection));
    }

    /// Writes the stable document to the cache once this node runs it (see the module doc).
    fn cache(&mut self) {
        let (Some(path), Some(doc)) = (&self.link.cache, &self.stable) else {
            return;
        };
        let version = fingerprint(&doc.text);
        if self.cached.as_ref() == Some(&version) || self.node.snapshot().config.version != version
        {
            return;
        }
        match super::write_cache(path, &doc.text) {
            Ok(()) => self.cached = Some(version),
            Err(e) => log::warn!("cannot write the config cache {}: {e}", path.display()),
        }
    }
}

/// Each error as the node printed it: `path: message`.
fn lines(errors: &ConfigErrors) -> Vec<String> {
    errors.0.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rollout::{NodeReport, Push, Settings};
    use std::collections::BTreeMap;

    fn report(name: &str, region: &str) -> NodeReport {
        NodeReport {
            name: name.into(),
            region: region.into(),
            healthy: true,
            version: "v1".into(),
            started_at_ms: 1,
            rejected: None,
            versions: BTreeMap::new(),
            baseline: None,
        }
    }

    #[test]
    fn only_members_of_started_waves_run_the_target_while_the_rollout_lasts() {
        let nodes = [report("a", "eu"), report("b", "eu"), report("c", "us")];
        let push = Push {
            target: "v2".into(),
            stable: Some("v1".into()),
            waves: None,
            canary: None,
            settings: Settings::default(),
            author: "t".into(),
        };
        let (mut r, _) = Rollout::start(push, &nodes, 1_000).expect("starts");
        assert_eq!(
            want(Some((&r, 5)), Some(4), "a"),
            Want::Target("v2".into(), 1_000)
        );
        assert_eq!(
            want(Some((&r, 5)), Some(4), "b"),
            Want::Stable,
            "its wave has not started"
        );
        assert_eq!(
            want(Some((&r, 5)), Some(4), "late"),
            Want::Stable,
            "joined mid-rollout"
        );
        assert_eq!(want(None, Some(4), "a"), Want::Stable);
        r.command(
            portico_core::rollout::Command::Abort { author: "t".into() },
            &nodes,
            2_000,
        )
        .expect("abort");
        assert_eq!(
            want(Some((&r, 5)), Some(4), "a"),
            Want::Stable,
            "aborted: back on stable"
        );
    }

    /// The promotion writes `rollout` and `config` in one transaction (revision 7); the two
    /// watches deliver them apart. Seeing `promoted` with the old stable document (revision 4)
    /// in hand must not take the node back to it; once `config` is at least that revision
    /// (the target, or a later `config rollback`), the node runs it.
    #[test]
    fn a_promotion_seen_before_its_config_keeps_what_runs() {
        let nodes = [report("a", "eu")];
        let push = Push {
            target: "v2".into(),
            stable: Some("v1".into()),
            waves: None,
            canary: None,
            settings: Settings::default(),
            author: "t".into(),
        };
        let (mut r, _) = Rollout::start(push, &nodes, 1_000).expect("starts");
        r.command(
            portico_core::rollout::Command::Promote { author: "t".into() },
            &nodes,
            2_000,
        )
        .expect("promote");
        assert_eq!(r.state, State::Promoted);
        assert_eq!(want(Some((&r, 7)), Some(4), "a"), Want::Keep);
        assert_eq!(want(Some((&r, 7)), None, "a"), Want::Keep);
        assert_eq!(want(Some((&r, 7)), Some(7), "a"), Want::Stable);
        assert_eq!(
            want(Some((&r, 7)), Some(9), "a"),
            Want::Stable,
            "config rollback VERSION after the promotion: run config"
        );
    }
}
