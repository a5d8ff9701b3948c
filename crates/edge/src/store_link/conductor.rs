//! The conductor: every node following a store campaigns to conduct rollouts; the one elected
//! judges the stored rollout at least once a second and saves what changed.
//!
//! Nothing lives only in memory: each judgement reads the rollout and every registration from
//! the store, judges with [`Rollout::judged`] and saves a changed copy by compare-and-swap, in
//! the one transaction that also writes the version's outcome (and `config` on promotion). So
//! a conductor that dies is replaced by whichever node is elected next, which resumes from the
//! store (bake time already spent counts: waves carry their start times). A lost
//! compare-and-swap (`config promote` or `config abort` meanwhile, or a conductor that was
//! deposed) is judged again from the store at the next tick. A failed read of the
//! registrations skips the judgement: an empty list would read as every node gone (gate 2).
//!
//! [`Rollout::judged`]: portico_core::rollout::Rollout::judged

use crate::metrics::Metrics;
use portico_core::rollout::{Decision, NodeReport, Rollout, UnixMillis};
use portico_store::{
    CONDUCTOR_TTL, Conductorship, Expect, NodeStatus, Role, Store, StoreError, StoreUrl,
    StoredRollout,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// How often the conductor judges the rollout (the SPEC: at least once a second; half a
/// second leaves room for a slow store request).
pub const JUDGE_INTERVAL: Duration = Duration::from_millis(500);

/// The time allowed to each store request of the conductor (below the conductor's lease TTL,
/// so a stuck request does not outlive the term by much).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts campaigning as `name` in the store of `url`, and conducting while elected, on a task
/// of the current tokio runtime. Counts the outcomes it saves in `metrics`
/// (`portico_rollouts_total`). Aborting the task drops the campaign, which revokes its lease
/// so another node takes over at once.
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn spawn_conductor(url: StoreUrl, name: String, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(run(url, name, metrics))
}

/// The conductor task of [`spawn_conductor`], for a `JoinSet`: campaigns with
/// [`CONDUCTOR_TTL`] and conducts while elected, until dropped.
pub async fn run(url: StoreUrl, name: String, metrics: Arc<Metrics>) {
    let campaign = Conductorship::campaign(url.clone(), name.clone(), CONDUCTOR_TTL);
    conduct(&url, &name, campaign.subscribe(), &metrics).await;
    // Only when the campaign's task ended; dropping it resigns.
    drop(campaign);
}

/// Conducts while `role` says [`Role::Leading`]: judges the rollout of `url` every
/// [`JUDGE_INTERVAL`], stops at once when the role changes (the lease is lost or about to be),
/// and starts again when elected again. Returns when the campaign behind `role` ends.
/// `name` names this node in the log.
pub async fn conduct(
    url: &StoreUrl,
    name: &str,
    mut role: watch::Receiver<Role>,
    metrics: &Metrics,
) {
    let mut conductor = Conductor {
        url,
        store: None,
        metrics,
        last_failure: None,
        watching: None,
    };
    loop {
        if role.wait_for(|r| *r == Role::Leading).await.is_err() {
            return;
        }
        log::info!("conductor {name}: elected, judging rollouts at {url}");
        tokio::select! {
            biased;
            lost = role.wait_for(|r| *r != Role::Leading) => {
                if lost.is_err() {
                    return;
                }
                log::info!("conductor {name}: no longer elected, stopped judging");
            }
            never = conductor.lead() => match never {},
        }
    }
}

/// The conductor's state across its terms: the store connection and what it last logged.
struct Conductor<'a> {
    url: &'a StoreUrl,
    /// The connection, made at the first judgement and kept.
    store: Option<Store>,
    metrics: &'a Metrics,
    /// The last failure logged (a failure repeated every tick is logged once).
    last_failure: Option<String>,
    /// The rollout this conductor last saw in progress or paused (target, start): when it is
    /// next seen over, its outcome is this node's to count, also when `config promote` or
    /// `config abort` saved it (the CLI writes the store, it has no metrics to count in).
    watching: Option<(String, UnixMillis)>,
}

impl Conductor<'_> {
    /// Judges every [`JUDGE_INTERVAL`], for ever (the caller drops it when the term ends).
    async fn lead(&mut self) -> std::convert::Infallible {
        let mut ticker = tokio::time::interval(JUDGE_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.tick().await {
                Ok(()) => {
                    if self.last_failure.take().is_some() {
                        log::info!("conductor: the store at {} answers again", self.url);
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    if self.last_failure.as_deref() != Some(e.as_str()) {
                        log::warn!("conductor: judgement skipped: {e}");
                        self.last_failure = Some(e);
                    }
                }
            }
        }
    }

    /// One judgement: reads the rollout, and when it is in progress or paused judges it
    /// ([`judge`]); counts the outcome it saved, or the one saved by the CLI since it last
    /// saw the rollout in progress.
    async fn tick(&mut self) -> Result<(), StoreError> {
        let store = match &self.store {
            Some(store) => store,
            None => self
                .store
                .insert(Store::connect(self.url, REQUEST_TIMEOUT).await?),
        };
        let Some(stored) = store.get_rollout().await? else {
            return Ok(());
        };
        let key = (stored.rollout.target.clone(), stored.rollout.started_at_ms);
        if stored.rollout.state.is_over() {
            if self.watching.take_if(|w| *w == key).is_some() {
                // Ended by the CLI (promote, abort) since the last judgement.
                self.metrics.count_rollout(stored.rollout.state.outcome());
            }
            return Ok(());
        }
        self.watching = Some(key);
        let now = portico_store::unix_millis(SystemTime::now());
        match judge(store, &stored, now).await? {
            Judgement::Unchanged => {}
            Judgement::Lost => log::info!(
                "conductor: the rollout of {} changed while it was judged; judging it again",
                stored.rollout.target
            ),
            Judgement::Saved(next, decisions) => {
                log_decisions(&next, &decisions);
                if next.state.is_over() {
                    self.watching = None;
                    self.metrics.count_rollout(next.state.outcome());
                }
            }
        }
        Ok(())
    }
}

/// What a judgement came to.
#[derive(Debug, Clone, PartialEq)]
enum Judgement {
    /// Nothing changed: nothing written.
    Unchanged,
    /// The judged rollout was saved, with these decisions.
    Saved(Box<Rollout>, Vec<Decision>),
    /// The stored rollout changed since it was read (`config promote` or `abort`, or another
    /// conductor): nothing written; the next tick judges what is stored then.
    Lost,
}

/// Judges `stored` (as read from `store`) at `now` against every registration read now, and
/// saves the judged copy by compare-and-swap against the revision it was read at when it
/// changed. A failed read of the registrations fails the judgement (an empty list would read
/// as every node gone).
async fn judge(
    store: &Store,
    stored: &StoredRollout,
    now: UnixMillis,
) -> Result<Judgement, StoreError> {
    let reports: Vec<NodeReport> = store
        .node_statuses()
        .await?
        .iter()
        .map(NodeStatus::report)
        .collect();
    let Some((next, decisions)) = stored.rollout.judged(&reports, now) else {
        return Ok(Judgement::Unchanged);
    };
    match store
        .save_rollout(&next, Expect::ModRevision(stored.mod_revision))
        .await
    {
        Ok(_) => Ok(Judgement::Saved(Box::new(next), decisions)),
        Err(StoreError::RolloutChanged { .. }) => Ok(Judgement::Lost),
        Err(e) => Err(e),
    }
}

/// Logs each decision saved, and the state once the rollout ended.
fn log_decisions(rollout: &Rollout, decisions: &[Decision]) {
    for d in decisions {
        let what = serde_json::to_string(d).unwrap_or_else(|_| format!("{d:?}"));
        log::info!("conductor: rollout of {}: {what}", rollout.target);
    }
    if rollout.state.is_over() {
        log::info!("conductor: rollout of {} {}", rollout.target, rollout.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rollout::{Command, Push, Rejection, Settings, State};

    fn unreachable() -> StoreUrl {
        "etcd://127.0.0.1:1/conductor".parse().unwrap()
    }

    /// A campaign that ends (its task killed) ends the conductor, even while it was leading:
    /// a stale `Leading` never keeps it judging.
    #[tokio::test]
    async fn the_conductor_ends_with_its_campaign_even_while_leading() {
        let metrics = Metrics::new("eu", "v1");
        let url = unreachable();
        for last in [Role::Leading, Role::Candidate] {
            let (role, rx) = watch::channel(Role::Leading);
            let ended = async {
                conduct(&url, "n1", rx, &metrics).await;
            };
            let stop = async {
                tokio::task::yield_now().await;
                role.send_replace(last.clone());
                drop(role);
            };
            let (done, ()) =
                tokio::join!(tokio::time::timeout(Duration::from_secs(30), ended), stop);
            assert!(
                done.is_ok(),
                "still conducting after the campaign ended ({last:?})"
            );
        }
        assert_eq!(
            metrics.rollouts.with_label_values(&["rolled_back"]).get(),
            0
        );
    }

    /// Registers a node of `region` on `v1` whose report says it rejects `rejects`; the
    /// registration lasts as long as the sender returned.
    fn node(
        url: &StoreUrl,
        name: &str,
        region: &str,
        rejects: Option<&str>,
    ) -> (NodeStatus, watch::Sender<NodeStatus>) {
        let mut status = NodeStatus::new(portico_store::NodeRecord {
            name: name.into(),
            region: region.into(),
            version: "v1".into(),
            healthy: true,
            admin: "http://127.0.0.1:9".into(),
            updated_at: portico_store::now_rfc3339(),
        });
        status.started_at_ms = 1;
        status.rejected = rejects.map(|v| Rejection {
            version: v.into(),
            errors: vec!["rejected by the test".into()],
            rollout_started_at_ms: 0,
        });
        let (records, rx) = watch::channel(status.clone());
        let _task = portico_store::register(url.clone(), name.into(), Duration::from_secs(10), rx);
        (status, records)
    }

    /// `config promote` saved between the conductor's read and its save wins: the stale
    /// judgement writes nothing; the next one judges what is stored then.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_saved_between_read_and_save_wins_and_is_judged_next() {
        let (etcd, _dir) = portico_test_support::etcd(1);
        let url = etcd.url("lost-cas");
        let store = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
        // The canary rejects the target; us-a is in the last wave.
        let nodes = [
            node(&url, "eu-a", "eu", Some("v2")),
            node(&url, "us-a", "us", None),
        ];
        portico_test_support::poll("both registered", Duration::from_secs(30), || async {
            (store.node_statuses().await.ok()?.len() == 2).then_some(())
        })
        .await;
        let reports: Vec<NodeReport> = nodes.iter().map(|(n, _)| n.report()).collect();
        let now = portico_store::unix_millis(SystemTime::now());
        let push = Push {
            target: "v2".into(),
            stable: Some("v1".into()),
            waves: None,
            canary: None,
            settings: Settings::default(),
            author: "ops@test".into(),
        };
        let (rollout, _) = Rollout::start(push, &reports, now).unwrap();
        store.put_config("v1 doc", Expect::Any).await.unwrap();
        store
            .start_rollout(&rollout, "v2 doc", "test", Expect::Any)
            .await
            .unwrap();
        let stale = store.get_rollout().await.unwrap().unwrap();

        let mut promoted = stale.rollout.clone();
        let by_hand = Command::Promote {
            author: "ops@test".into(),
        };
        promoted.command(by_hand, &reports, now + 1).unwrap();
        store
            .save_rollout(&promoted, Expect::ModRevision(stale.mod_revision))
            .await
            .unwrap();
        assert_eq!(
            judge(&store, &stale, now + 2).await.unwrap(),
            Judgement::Lost
        );
        let fresh = store.get_rollout().await.unwrap().unwrap();
        assert_eq!(fresh.rollout, promoted, "the stale judgement wrote nothing");

        // Judged again from the store: the promotion stands, and gate 1 still judges the
        // canary's wave.
        let Judgement::Saved(saved, decisions) = judge(&store, &fresh, now + 3).await.unwrap()
        else {
            panic!("nothing saved");
        };
        assert!(
            matches!(decisions[..], [Decision::RollBack { wave: 0, .. }]),
            "{decisions:?}"
        );
        assert_eq!(store.get_rollout().await.unwrap().unwrap().rollout, *saved);
        let kinds: Vec<&Decision> = saved.log.iter().map(|r| &r.decision).collect();
        assert!(
            matches!(
                kinds[..],
                [
                    Decision::StartWave { wave: 0, .. },
                    Decision::PassWave { wave: 0, .. },
                    Decision::SkipWave { wave: 1 },
                    Decision::StartWave { wave: 2, .. },
                    Decision::RollBack { wave: 0, .. },
                ]
            ),
            "{kinds:?}"
        );
        assert!(matches!(saved.state, State::RolledBack(_)));
    }

    /// Outcomes other than an end are not counted.
    #[test]
    fn only_ends_are_counted() {
        let metrics = Metrics::new("eu", "v1");
        metrics.count_rollout(portico_core::rollout::Outcome::InProgress);
        metrics.count_rollout(portico_core::rollout::Outcome::RolledBack);
        let text = String::from_utf8(metrics.encode()).unwrap();
        assert!(
            text.contains("portico_rollouts_total{outcome=\"rolled_back\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("portico_rollouts_total{outcome=\"promoted\"} 0"),
            "{text}"
        );
        assert!(!text.contains("outcome=\"in_progress\""), "{text}");
    }
}
