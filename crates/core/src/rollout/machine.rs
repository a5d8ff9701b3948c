//! The rollout state machine: one pushed version, its waves, its state, and every verdict so
//! far. It is plain data (serde) so the conductor keeps it in the store (`PREFIX/rollout`) and
//! any node that takes over resumes it; time is passed in as milliseconds since the UNIX epoch,
//! so bake time already spent counts across a change of conductor.
//!
//! The conductor calls [`Rollout::start`] on a push, [`Rollout::judge`] at least once a second
//! with every registered node's [`NodeReport`], and [`Rollout::command`] for `config promote`
//! and `config abort`; each answers the [`Decision`]s taken (also appended to
//! [`Rollout::log`]). Whenever the state changed (a decision, or a baseline captured:
//! [`Rollout::judged`] compares with the stored copy) the conductor stores it, then carries the decisions out:
//! [`Decision::Promote`] writes the target as `config` and the version's outcome
//! ([`State::outcome`]), [`Decision::RollBack`] and [`Decision::Abort`] set the outcome. Nodes
//! call [`Rollout::assignment`] to know what to run: the state alone decides, so a node that
//! reads it from the store needs no message from the conductor.
//!
//! Where the SPEC is silent:
//! - a wave's members are fixed when it starts: the registered nodes it matches then. A node
//!   that registers after its wave started (or passed) runs stable until the rollout ends, and
//!   one that registers before its wave starts is in it;
//! - an empty wave is skipped when its turn comes, so a region with no node left is skipped;
//! - `promote` passes the current wave at once, also when paused (the next wave starts, or the
//!   target is promoted after the last); gates 1–4 are not consulted by it;
//! - a push with no stable document, or with no registered node, is promoted at once (its
//!   plan is still checked, so a malformed `--waves` is refused);
//! - `promote` or `abort` on a rollout that has ended is an error naming its state;
//! - a push of the version already stable is refused (nothing to judge it against);
//! - after promotion every node is assigned the target (it is the stable document now), so a
//!   node that reads `rollout` before `config` changes nothing by it;
//! - `config rollback VERSION` is not a rollout: [`check_rollback`] only says whether the
//!   version may be made stable (its outcome is `promoted`).

use super::gates::{
    self, Figures, GateFailure, Judged, NodeReport, Settings, WaveVerdict, failing_gate,
};
use super::plan::{Candidate, Selector, assign, resolve_plan};
use super::{RolloutError, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why a rollout is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The wave's nodes answered fewer than `--min-requests` on the target in `3 × bake`.
    InsufficientTraffic,
    /// These nodes of the wave neither ran nor rejected the target in `3 × bake`.
    NotApplied(Vec<String>),
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseReason::InsufficientTraffic => f.write_str("insufficient traffic"),
            PauseReason::NotApplied(nodes) => write!(f, "not applied by {}", nodes.join(", ")),
        }
    }
}

/// Where a rollout stands. Its `Display` is the SPEC's state string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waves are running.
    InProgress,
    /// Waiting for `promote` or `abort`.
    Paused(PauseReason),
    /// The target became stable.
    Promoted,
    /// A gate failed; every node runs stable again.
    RolledBack(GateFailure),
    /// Stopped by hand; every node runs stable again.
    Aborted,
}

impl State {
    /// Whether the rollout has ended (promoted, rolled back or aborted).
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            State::Promoted | State::RolledBack(_) | State::Aborted
        )
    }

    /// The version outcome it stands for (`in_progress` while not over).
    pub fn outcome(&self) -> Outcome {
        match self {
            State::InProgress | State::Paused(_) => Outcome::InProgress,
            State::Promoted => Outcome::Promoted,
            State::RolledBack(_) => Outcome::RolledBack,
            State::Aborted => Outcome::Aborted,
        }
    }
}

/// A version's outcome as `versions/<version>` and `config history` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its rollout is in progress or paused.
    InProgress,
    /// It became stable.
    Promoted,
    /// A gate rolled it back.
    RolledBack,
    /// Aborted by hand.
    Aborted,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::InProgress => "in_progress",
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Aborted => "aborted",
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::InProgress => f.write_str("in progress"),
            State::Paused(r) => write!(f, "paused: {r}"),
            State::Promoted => f.write_str("promoted"),
            State::RolledBack(g) => write!(f, "rolled back: gate {}: {g}", g.number()),
            State::Aborted => f.write_str("aborted"),
        }
    }
}

/// How a wave passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassedBy {
    /// Gate 5: baked with enough traffic.
    Gates {
        /// Requests its nodes answered on the target.
        requests: u64,
        /// How long it ran.
        elapsed_ms: u64,
    },
    /// `config promote` by this author.
    Hand {
        /// Who.
        author: String,
    },
}

/// A step the rollout took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// Wave `wave` starts: these nodes now run the target.
    StartWave {
        /// Index into [`Rollout::waves`].
        wave: usize,
        /// Its members.
        nodes: Vec<String>,
    },
    /// Wave `wave` had no node when its turn came.
    SkipWave {
        /// Index into [`Rollout::waves`].
        wave: usize,
    },
    /// Wave `wave` passed.
    PassWave {
        /// Index into [`Rollout::waves`].
        wave: usize,
        /// How.
        by: PassedBy,
    },
    /// Wave `wave` is paused.
    Pause {
        /// Index into [`Rollout::waves`].
        wave: usize,
        /// Why.
        reason: PauseReason,
    },
    /// The target becomes the stable document.
    Promote,
    /// A gate failed on wave `wave`: every node back to stable.
    RollBack {
        /// Index into [`Rollout::waves`].
        wave: usize,
        /// The gate and its figures.
        failure: GateFailure,
    },
    /// Aborted by hand: every node back to stable.
    Abort {
        /// Who.
        author: String,
    },
}

/// A decision and when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When.
    pub at_ms: UnixMillis,
    /// What.
    #[serde(flatten)]
    pub decision: Decision,
}

/// A node of a started wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its process start time when the wave started (gate 2 watches it).
    pub started_at_ms: UnixMillis,
    /// When the rollout first saw it run the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at_ms: Option<UnixMillis>,
    /// Its figures before it switched, captured then (see [`gates`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Figures>,
}

/// One wave of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// Which nodes it takes.
    pub selector: Selector,
    /// When it started (`None`: not yet, or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<UnixMillis>,
    /// When it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_at_ms: Option<UnixMillis>,
    /// Whether it was skipped (no node when its turn came).
    #[serde(default)]
    pub skipped: bool,
    /// Its nodes, fixed when it started.
    #[serde(default)]
    pub members: Vec<Member>,
}

impl Wave {
    fn new(selector: Selector) -> Self {
        Self {
            selector,
            started_at_ms: None,
            passed_at_ms: None,
            skipped: false,
            members: Vec::new(),
        }
    }
}

/// A member's figures as the gates see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberFigures {
    /// Its name.
    pub name: String,
    /// The version it runs (`None`: its registration is gone).
    pub version: Option<String>,
    /// Its figures on the target.
    pub target: Figures,
    /// Its baseline, once captured.
    pub baseline: Option<Figures>,
}

/// What the gates see of a started wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveFigures {
    /// Index into [`Rollout::waves`].
    pub wave: usize,
    /// Its members.
    pub members: Vec<MemberFigures>,
    /// The members on the target, summed (gate 3's and gate 5's figures).
    pub target: Figures,
    /// Their baselines, summed.
    pub baseline: Figures,
    /// Time since the wave started.
    pub elapsed_ms: u64,
    /// Members not yet running the target.
    pub pending: Vec<String>,
}

/// What a push asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The pushed version.
    pub target: String,
    /// The stable version (`None`: the store has no stable document).
    pub stable: Option<String>,
    /// `--waves` (`None`: the default plan).
    pub waves: Option<Vec<Selector>>,
    /// `--canary`.
    pub canary: Option<String>,
    /// The gate settings.
    pub settings: Settings,
    /// `--author`.
    pub author: String,
}

/// A command from the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `config promote`: pass the current wave now.
    Promote {
        /// Who.
        author: String,
    },
    /// `config abort`: roll back now.
    Abort {
        /// Who.
        author: String,
    },
}

/// What a node should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The stable document (`PREFIX/config`).
    Stable,
    /// The rollout's target.
    Target,
}

/// One rollout: the whole state the conductor stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The pushed version.
    pub target: String,
    /// The stable version when it was pushed (`None`: none).
    #[serde(default)]
    pub stable: Option<String>,
    /// Who pushed it.
    pub author: String,
    /// The gate settings.
    pub settings: Settings,
    /// When it was pushed.
    pub started_at_ms: UnixMillis,
    /// The plan, wave by wave.
    pub waves: Vec<Wave>,
    /// The wave in progress (or paused), while the rollout lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<usize>,
    /// Where it stands.
    pub state: State,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<UnixMillis>,
    /// Every decision so far, oldest first.
    #[serde(default)]
    pub log: Vec<Record>,
}

fn candidates(nodes: &[NodeReport]) -> Vec<Candidate<'_>> {
    nodes
        .iter()
        .map(|n| Candidate {
            name: &n.name,
            region: &n.region,
            healthy: n.healthy,
        })
        .collect()
}

impl Rollout {
    /// Starts the rollout of a push given the registered nodes: resolves the plan and starts
    /// its first non-empty wave. Promoted at once with no stable document or no node.
    pub fn start(
        push: Push,
        nodes: &[NodeReport],
        now: UnixMillis,
    ) -> Result<(Self, Vec<Decision>), RolloutError> {
        push.settings.check()?;
        if push.stable.as_deref() == Some(push.target.as_str()) {
            return Err(RolloutError::AlreadyStable(push.target));
        }
        let cands = candidates(nodes);
        let plan = resolve_plan(&cands, push.waves.as_deref(), push.canary.as_deref())?;
        let mut r = Rollout {
            target: push.target,
            stable: push.stable,
            author: push.author,
            settings: push.settings,
            started_at_ms: now,
            waves: plan
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(Wave::new)
                .collect(),
            current: None,
            state: State::InProgress,
            ended_at_ms: None,
            log: Vec::new(),
        };
        let mut out = Vec::new();
        if r.stable.is_none() || plan.is_none() {
            r.promote(now, &mut out);
        } else {
            r.advance(0, nodes, now, &mut out);
        }
        Ok((r, out))
    }

    /// Judges the rollout at `now` given every registered node's report: gates 1–4 on every
    /// started wave (the first failure rolls back), then gate 5 on the current one (pass and
    /// start the next wave or promote; or pause). Nothing once it has ended.
    ///
    /// `nodes` must be the complete set read from the store: a member missing from it is a node
    /// that stopped renewing its registration (gate 2), so a failed read must skip the
    /// judgement, never pass an empty list.
    pub fn judge(&mut self, nodes: &[NodeReport], now: UnixMillis) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.state.is_over() {
            return out;
        }
        let by_name: BTreeMap<&str, &NodeReport> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        self.capture_baselines(&by_name, now);
        let failed = self.waves.iter().enumerate().find_map(|(i, wave)| {
            wave.started_at_ms?;
            let members = judged(wave, &by_name);
            failing_gate(&members, &self.target, self.started_at_ms, &self.settings).map(|f| (i, f))
        });
        if let Some((i, failure)) = failed {
            self.rollback(i, failure, now, &mut out);
            return out;
        }
        let (Some(i), State::InProgress) = (self.current, &self.state) else {
            return out;
        };
        let Some(wave) = self.waves.get(i) else {
            return out;
        };
        let judged = judged(wave, &by_name);
        let p = gates::progress(
            &judged,
            &self.target,
            wave.started_at_ms.unwrap_or(now),
            now,
        );
        match gates::wave_gate(&p, &self.settings) {
            WaveVerdict::Baking => {}
            WaveVerdict::Passes => {
                let by = PassedBy::Gates {
                    requests: p.requests,
                    elapsed_ms: p.elapsed_ms,
                };
                self.pass(i, by, nodes, now, &mut out);
            }
            WaveVerdict::InsufficientTraffic => {
                self.pause(i, PauseReason::InsufficientTraffic, now, &mut out);
            }
            WaveVerdict::NotApplied(pending) => {
                self.pause(i, PauseReason::NotApplied(pending), now, &mut out);
            }
        }
        out
    }

    /// What the conductor stores after judging the stored rollout at `now`: the judged copy and
    /// its decisions when anything changed (a decision, or a member's baseline captured), else
    /// `None` (nothing to write). `nodes` as for [`Rollout::judge`]: the complete set read.
    pub fn judged(
        &self,
        nodes: &[NodeReport],
        now: UnixMillis,
    ) -> Option<(Rollout, Vec<Decision>)> {
        let mut next = self.clone();
        let decisions = next.judge(nodes, now);
        (next != *self).then_some((next, decisions))
    }

    /// Carries out `config promote` or `config abort` at `now`, `nodes` the registered nodes
    /// (the next wave's members come from them).
    pub fn command(
        &mut self,
        cmd: Command,
        nodes: &[NodeReport],
        now: UnixMillis,
    ) -> Result<Vec<Decision>, RolloutError> {
        if self.state.is_over() {
            return Err(RolloutError::Over {
                target: self.target.clone(),
                state: self.state.to_string(),
            });
        }
        let mut out = Vec::new();
        match cmd {
            Command::Promote { author } => match self.current {
                Some(i) => self.pass(i, PassedBy::Hand { author }, nodes, now, &mut out),
                None => self.promote(now, &mut out),
            },
            Command::Abort { author } => {
                self.state = State::Aborted;
                self.current = None;
                self.ended_at_ms = Some(now);
                self.record(now, Decision::Abort { author }, &mut out);
            }
        }
        Ok(out)
    }

    /// What the node named `node` should run: the target while it is a member of a started
    /// wave of a rollout in progress or paused, and after promotion; else the stable document.
    pub fn assignment(&self, node: &str) -> Assignment {
        match self.state {
            State::Promoted => Assignment::Target,
            State::RolledBack(_) | State::Aborted => Assignment::Stable,
            State::InProgress | State::Paused(_) => match self.wave_of(node) {
                Some(_) => Assignment::Target,
                None => Assignment::Stable,
            },
        }
    }

    /// The version the node named `node` should run (`None`: stable, and there is none).
    pub fn version_for(&self, node: &str) -> Option<&str> {
        match self.assignment(node) {
            Assignment::Target => Some(&self.target),
            Assignment::Stable => self.stable.as_deref(),
        }
    }

    /// The plan as `config push` prints it: each wave's selector and nodes — its members once
    /// started, else the registered nodes it would take now (skipped waves: none).
    pub fn preview(&self, nodes: &[NodeReport]) -> Vec<(Selector, Vec<String>)> {
        let selectors: Vec<Selector> = self.waves.iter().map(|w| w.selector.clone()).collect();
        let free: Vec<NodeReport> = nodes
            .iter()
            .filter(|n| self.member(&n.name).is_none())
            .cloned()
            .collect();
        let assigned = assign(&selectors, &candidates(&free));
        self.waves
            .iter()
            .zip(assigned)
            .map(|(w, predicted)| {
                let names = if w.started_at_ms.is_some() {
                    w.members.iter().map(|m| m.name.clone()).collect()
                } else if w.skipped {
                    Vec::new()
                } else {
                    predicted
                };
                (w.selector.clone(), names)
            })
            .collect()
    }

    /// The started wave the node named `node` is a member of.
    pub fn wave_of(&self, node: &str) -> Option<usize> {
        self.waves
            .iter()
            .position(|w| w.started_at_ms.is_some() && w.members.iter().any(|m| m.name == node))
    }

    /// The rollout's member record for `node`.
    pub fn member(&self, node: &str) -> Option<&Member> {
        self.waves
            .iter()
            .flat_map(|w| &w.members)
            .find(|m| m.name == node)
    }

    /// What the gates see of started wave `wave` at `now` (for `config rollout` and
    /// `/status`): each member's figures on the target and baseline, the sums, gate 5's
    /// progress. `None` for a wave that has not started.
    pub fn wave_figures(
        &self,
        wave: usize,
        nodes: &[NodeReport],
        now: UnixMillis,
    ) -> Option<WaveFigures> {
        let w = self.waves.get(wave)?;
        let started_at_ms = w.started_at_ms?;
        let by_name: BTreeMap<&str, &NodeReport> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let judged = judged(w, &by_name);
        let on_target = |m: &&Judged<'_>| m.report.is_some_and(|r| r.version == self.target);
        let progress = gates::progress(&judged, &self.target, started_at_ms, now);
        Some(WaveFigures {
            wave,
            members: judged
                .iter()
                .map(|m| MemberFigures {
                    name: m.name.to_string(),
                    version: m.report.map(|r| r.version.clone()),
                    target: m
                        .report
                        .map(|r| r.figures(&self.target))
                        .unwrap_or_default(),
                    baseline: m.baseline,
                })
                .collect(),
            target: gates::sum(
                judged
                    .iter()
                    .filter(on_target)
                    .filter_map(|m| m.report.map(|r| r.figures(&self.target))),
            ),
            baseline: gates::sum(
                judged
                    .iter()
                    .filter(on_target)
                    .map(|m| m.baseline.unwrap_or_default()),
            ),
            elapsed_ms: progress.elapsed_ms,
            pending: progress.pending,
        })
    }

    fn record(&mut self, now: UnixMillis, decision: Decision, out: &mut Vec<Decision>) {
        self.log.push(Record {
            at_ms: now,
            decision: decision.clone(),
        });
        out.push(decision);
    }

    fn capture_baselines(&mut self, by_name: &BTreeMap<&str, &NodeReport>, now: UnixMillis) {
        for wave in self.waves.iter_mut().filter(|w| w.started_at_ms.is_some()) {
            for m in wave.members.iter_mut().filter(|m| m.baseline.is_none()) {
                let Some(r) = by_name.get(m.name.as_str()) else {
                    continue;
                };
                if r.version != self.target || r.started_at_ms != m.started_at_ms {
                    continue;
                }
                m.applied_at_ms = Some(now);
                m.baseline = Some(
                    r.baseline
                        .as_ref()
                        .filter(|b| b.to == self.target)
                        .map(|b| b.figures)
                        .unwrap_or_default(),
                );
            }
        }
    }

    /// Starts the first non-empty wave from `from`, skipping empty ones; promotes after the last.
    fn advance(
        &mut self,
        from: usize,
        nodes: &[NodeReport],
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        let selectors: Vec<Selector> = self.waves.iter().map(|w| w.selector.clone()).collect();
        let assigned = assign(&selectors, &candidates(nodes));
        for i in from..self.waves.len() {
            // A node already in an earlier wave (re-registered in another region) stays there.
            let mut names = assigned.get(i).cloned().unwrap_or_default();
            names.retain(|n| self.member(n).is_none());
            if names.is_empty() {
                self.waves[i].skipped = true;
                self.record(now, Decision::SkipWave { wave: i }, out);
                continue;
            }
            let members = names
                .iter()
                .filter_map(|name| nodes.iter().find(|n| &n.name == name))
                .map(|n| Member {
                    name: n.name.clone(),
                    region: n.region.clone(),
                    started_at_ms: n.started_at_ms,
                    applied_at_ms: None,
                    baseline: None,
                })
                .collect();
            let wave = &mut self.waves[i];
            wave.started_at_ms = Some(now);
            wave.members = members;
            self.current = Some(i);
            self.state = State::InProgress;
            self.record(
                now,
                Decision::StartWave {
                    wave: i,
                    nodes: names,
                },
                out,
            );
            return;
        }
        self.promote(now, out);
    }

    fn pass(
        &mut self,
        i: usize,
        by: PassedBy,
        nodes: &[NodeReport],
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        if let Some(w) = self.waves.get_mut(i) {
            w.passed_at_ms = Some(now);
        }
        self.record(now, Decision::PassWave { wave: i, by }, out);
        self.advance(i + 1, nodes, now, out);
    }

    fn pause(&mut self, i: usize, reason: PauseReason, now: UnixMillis, out: &mut Vec<Decision>) {
        self.state = State::Paused(reason.clone());
        self.record(now, Decision::Pause { wave: i, reason }, out);
    }

    fn promote(&mut self, now: UnixMillis, out: &mut Vec<Decision>) {
        self.state = State::Promoted;
        self.current = None;
        self.ended_at_ms = Some(now);
        self.record(now, Decision::Promote, out);
    }

    fn rollback(
        &mut self,
        i: usize,
        failure: GateFailure,
        now: UnixMillis,
        out: &mut Vec<Decision>,
    ) {
        self.state = State::RolledBack(failure.clone());
        self.current = None;
        self.ended_at_ms = Some(now);
        self.record(now, Decision::RollBack { wave: i, failure }, out);
    }
}

/// A started wave's members with their reports now.
fn judged<'a>(wave: &'a Wave, by_name: &BTreeMap<&str, &'a NodeReport>) -> Vec<Judged<'a>> {
    wave.members
        .iter()
        .map(|m| Judged {
            name: &m.name,
            started_at_ms: m.started_at_ms,
            baseline: m.baseline,
            report: by_name.get(m.name.as_str()).copied(),
        })
        .collect()
}

/// Checks `config rollback VERSION`: only a version whose outcome is `promoted` may become
/// stable again at once (it was baked before); `outcome` is `None` for a version the store
/// does not hold.
pub fn check_rollback(version: &str, outcome: Option<Outcome>) -> Result<(), RolloutError> {
    match outcome {
        Some(Outcome::Promoted) => Ok(()),
        other => Err(RolloutError::NotPromoted {
            version: version.to_string(),
            outcome: other.map_or_else(|| "unknown".to_string(), |o| o.to_string()),
        }),
    }
}
