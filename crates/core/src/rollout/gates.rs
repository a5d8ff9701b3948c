//! What nodes report during a rollout, the gate settings, and gates 1–5 judged from those
//! reports (pure: a function of the reports, the wave's members and the time).
//!
//! **What a node reports** ([`NodeReport`], in its registration, at least once a second while a
//! rollout is in progress): the version it runs, the process start time, the last version it
//! rejected (with the errors), and per version it ran its [`Figures`] — requests, errors and
//! p99 of response time, counted *since the node last switched to that version* (a version
//! run twice, e.g. pushed again after a rollback, starts from zero). An error is what the SPEC
//! calls one (status ≥ 500, or Portico's own route/rule refusal ≥ 400; 400, 408, 413, 414 and
//! 431 are not).
//!
//! **How baselines are captured.** Cumulative counters cannot say what a node did in the 60 s
//! before it switched, and nodes publish often only once a rollout is under way, so the
//! conductor cannot difference snapshots taken before the push. The node therefore keeps a
//! rolling window of its last [`BASELINE_WINDOW_MS`] (requests, errors, latency histogram) on
//! the version it runs and, when it switches, freezes that window as its [`SwitchBaseline`]
//! (the version it switched *to*, and the figures of the one it left), published until its
//! next switch. The rollout copies a member's baseline into its own stored state the first
//! time it sees the member running the target (a baseline naming another version counts as
//! "served nothing before"), so a later switch, restart or conductor change cannot alter it.
//!
//! **The gates**, per started wave (a wave that passed is still judged by gates 1–4 while the
//! rollout lasts: its nodes still run the target):
//! 1. a member reports it rejected the target → roll back;
//! 2. a member's registration is gone (its lease ran out) or its process start time changed
//!    (it restarted) → roll back;
//! 3. errors: the members on the target, summed, against the same members' baselines, summed;
//!    fails when `errors/requests > baseline_errors/baseline_requests + max_error_increase`
//!    with at least `min_errors` errors (a baseline with no requests has ratio 0);
//! 4. latency, per member (a p99 cannot be summed): fails when a member's p99 on the target
//!    exceeds `1.5 × baseline p99 + 50 ms`, judged only when both its baseline and its target
//!    figures have at least `max(min_requests, 20)` answers;
//! 5. the current wave passes when every member runs the target, `bake` has passed since the
//!    wave started and the members answered at least `min_requests` requests on it. It is
//!    paused `insufficient traffic` when [`pause_after`] has passed since the wave started and
//!    every member runs the target but traffic is short, and `not applied: <nodes>` when by then
//!    some members still run neither the target nor rejected it.
//!
//! Where the SPEC is silent:
//! - gate 2 is judged on the registration's presence (etcd expires the lease: no clock skew
//!   between nodes matters), not on the age of its `updated_at`;
//! - gate 3 sums the wave (as the SPEC says, "the wave's nodes"); gate 4 is per node, and needs
//!   at least 20 answers on each side whatever `--min-requests` says ([`MIN_LATENCY_ANSWERS`],
//!   as for the pool's live quantiles): a p99 of three answers is the slowest of three, and one
//!   cold connection after a switch would roll back every `--min-requests 0` push;
//! - the pause comes at `max(3 × bake, 30 s)` ([`PAUSE_FLOOR_MS`]): with `--bake 0` a wave would
//!   otherwise be paused at its first judgement, before any traffic could arrive;
//! - a paused wave stays paused when traffic comes (the SPEC: "until `promote` or `abort`"),
//!   and gates 1–4 keep judging it.

use super::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The window before a switch that a baseline covers.
pub const BASELINE_WINDOW_MS: u64 = 60_000;
/// Fewest answers on each side for the latency gate to judge a node.
pub const MIN_LATENCY_ANSWERS: u64 = crate::latency::MIN_SAMPLES;
/// The earliest an insufficient-traffic pause comes, whatever the bake.
pub const PAUSE_FLOOR_MS: u64 = 30_000;
/// Latency gate: the target's p99 may be this many times the baseline's …
pub const LATENCY_FACTOR: f64 = 1.5;
/// … plus this many milliseconds.
pub const LATENCY_SLACK_MS: f64 = 50.0;

/// The rollout's gate settings (`config push` flags), SPEC defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--bake`: how long each wave runs before it may pass, in milliseconds (default 60 s).
    pub bake_ms: u64,
    /// `--min-requests`: requests a wave's nodes must answer on the target before it passes,
    /// and the least the latency gate judges (default 100).
    pub min_requests: u64,
    /// `--max-error-increase`: how far the error ratio may rise above the baseline's
    /// (default 0.01, one percentage point).
    pub max_error_increase: f64,
    /// `--min-errors`: the error gate fails only with at least this many errors (default 10).
    pub min_errors: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bake_ms: 60_000,
            min_requests: 100,
            max_error_increase: 0.01,
            min_errors: 10,
        }
    }
}

impl Settings {
    /// Refuses a negative or non-finite `max_error_increase`.
    pub fn check(&self) -> Result<(), super::RolloutError> {
        if self.max_error_increase.is_finite() && self.max_error_increase >= 0.0 {
            Ok(())
        } else {
            Err(super::RolloutError::BadErrorIncrease(
                self.max_error_increase,
            ))
        }
    }
}

/// When a wave short of traffic (or of nodes applying) is paused: `max(3 × bake, 30 s)` after
/// it started.
pub fn pause_after(settings: &Settings) -> u64 {
    settings.bake_ms.saturating_mul(3).max(PAUSE_FLOOR_MS)
}

/// A node's figures on one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Requests answered.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// p99 of response time in milliseconds (`None`: too few answers to tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

impl Figures {
    /// Errors per request (0 with no requests).
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// A node's figures over the window before its last switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchBaseline {
    /// The version it switched to.
    pub to: String,
    /// Its figures over the [`BASELINE_WINDOW_MS`] before the switch, on the version it left.
    pub figures: Figures,
}

/// A version a node refused to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The version.
    pub version: String,
    /// Why: validation or build errors, one per line as the node printed them.
    pub errors: Vec<String>,
    /// The start of the rollout it was rejected in ([`crate::rollout::Rollout::started_at_ms`]):
    /// a rejection left over from an earlier rollout of the same version (pushed again once
    /// the cause was fixed) does not fail the new one. 0: not said (counts for any rollout).
    #[serde(default)]
    pub rollout_started_at_ms: UnixMillis,
}

impl Rejection {
    /// Whether it rejects `target` in the rollout started at `rollout_started_at_ms`.
    pub fn rejects(&self, target: &str, rollout_started_at_ms: UnixMillis) -> bool {
        self.version == target
            && (self.rollout_started_at_ms == 0
                || self.rollout_started_at_ms == rollout_started_at_ms)
    }
}

/// What a registered node says about itself: the rollout's part of its registration (`name`,
/// `region`, `version` and `healthy` are the registration's fields of the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Whether it considers itself healthy.
    pub healthy: bool,
    /// The version it runs.
    pub version: String,
    /// When its process started (a restart changes it; 0 from a node that does not say).
    #[serde(default)]
    pub started_at_ms: UnixMillis,
    /// The last version it rejected, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// Figures per version, each since the node last switched to it.
    #[serde(default)]
    pub versions: BTreeMap<String, Figures>,
    /// Its figures before its last switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<SwitchBaseline>,
}

impl NodeReport {
    /// Its figures on `version` (zeros when it reports none).
    pub fn figures(&self, version: &str) -> Figures {
        self.versions.get(version).copied().unwrap_or_default()
    }

    /// Whether it rejected `version`.
    pub fn rejects(&self, version: &str) -> bool {
        self.rejected.as_ref().is_some_and(|r| r.version == version)
    }
}

/// Why gate 2 judged a member lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lost {
    /// Its registration is gone: it stopped renewing its lease.
    Gone,
    /// Its process start time changed.
    Restarted,
}

/// A failed gate and the figures that failed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum GateFailure {
    /// Gate 1: a node rejected the target.
    Rejected {
        /// The node.
        node: String,
        /// Its errors.
        errors: Vec<String>,
    },
    /// Gate 2: a node stopped renewing its registration or restarted.
    NodeLost {
        /// The node.
        node: String,
        /// Which.
        why: Lost,
    },
    /// Gate 3: the wave's error ratio rose too far above its baseline.
    ErrorRatio {
        /// Summed figures of the wave's nodes on the target.
        target: Figures,
        /// Summed baselines of the same nodes.
        baseline: Figures,
        /// The allowed increase.
        max_increase: f64,
    },
    /// Gate 4: a node's p99 on the target exceeded 1.5 × its baseline p99 + 50 ms.
    Latency {
        /// The node.
        node: String,
        /// Its figures on the target.
        target: Figures,
        /// Its baseline.
        baseline: Figures,
    },
}

impl GateFailure {
    /// The gate's number in the SPEC (1–4).
    pub fn number(&self) -> u8 {
        match self {
            GateFailure::Rejected { .. } => 1,
            GateFailure::NodeLost { .. } => 2,
            GateFailure::ErrorRatio { .. } => 3,
            GateFailure::Latency { .. } => 4,
        }
    }
}

fn pct(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}

fn ms(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"))
}

impl fmt::Display for GateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateFailure::Rejected { node, errors } => {
                write!(f, "{node} rejected the target: {}", errors.join("; "))
            }
            GateFailure::NodeLost {
                node,
                why: Lost::Gone,
            } => {
                write!(f, "{node} stopped renewing its registration")
            }
            GateFailure::NodeLost {
                node,
                why: Lost::Restarted,
            } => write!(f, "{node} restarted"),
            GateFailure::ErrorRatio {
                target,
                baseline,
                max_increase,
            } => write!(
                f,
                "error ratio {} ({} errors in {} requests) > baseline {} ({} in {}) + {}",
                pct(target.ratio()),
                target.errors,
                target.requests,
                pct(baseline.ratio()),
                baseline.errors,
                baseline.requests,
                pct(*max_increase)
            ),
            GateFailure::Latency {
                node,
                target,
                baseline,
            } => write!(
                f,
                "{node} p99 {} over {} requests > 1.5 × baseline {} over {} + 50 ms",
                ms(target.p99_ms),
                target.requests,
                ms(baseline.p99_ms),
                baseline.requests
            ),
        }
    }
}

/// A member of a started wave, as the gates see it.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its process start time when its wave started.
    pub started_at_ms: UnixMillis,
    /// Its baseline, once captured (it runs the target).
    pub baseline: Option<Figures>,
    /// Its report now (`None`: registration gone).
    pub report: Option<&'a NodeReport>,
}

/// Gates 1 and 2 for one member: rejected the target (in the rollout started at `rollout`),
/// or lost.
pub fn node_gates(m: &Judged<'_>, target: &str, rollout: UnixMillis) -> Option<GateFailure> {
    let Some(r) = m.report else {
        return Some(GateFailure::NodeLost {
            node: m.name.to_string(),
            why: Lost::Gone,
        });
    };
    if let Some(rej) = r
        .rejected
        .as_ref()
        .filter(|rej| rej.rejects(target, rollout))
    {
        return Some(GateFailure::Rejected {
            node: m.name.to_string(),
            errors: rej.errors.clone(),
        });
    }
    if r.started_at_ms != m.started_at_ms {
        return Some(GateFailure::NodeLost {
            node: m.name.to_string(),
            why: Lost::Restarted,
        });
    }
    None
}

/// The members running the target: (their figures on it, their baseline).
fn on_target<'a>(
    members: &'a [Judged<'a>],
    target: &'a str,
) -> impl Iterator<Item = (&'a str, Figures, Figures)> + 'a {
    members.iter().filter_map(move |m| {
        let r = m.report?;
        (r.version == target).then(|| (m.name, r.figures(target), m.baseline.unwrap_or_default()))
    })
}

/// Sums figures (requests and errors; the p99 is left unknown).
pub fn sum(figures: impl Iterator<Item = Figures>) -> Figures {
    figures.fold(Figures::default(), |a, f| Figures {
        requests: a.requests.saturating_add(f.requests),
        errors: a.errors.saturating_add(f.errors),
        p99_ms: None,
    })
}

/// Whether `target` exceeds `baseline` by more than `increase` — exactly `increase` more is
/// not more, whatever the rounding of the two ratios (18 → 28 errors in 1000 is +1 point).
fn exceeds(target: f64, baseline: f64, increase: f64) -> bool {
    target > baseline + increase + 1e-9
}

/// Gate 3 for a wave's members.
pub fn error_gate(members: &[Judged<'_>], target: &str, s: &Settings) -> Option<GateFailure> {
    let t = sum(on_target(members, target).map(|(_, t, _)| t));
    let b = sum(on_target(members, target).map(|(_, _, b)| b));
    (t.errors >= s.min_errors && exceeds(t.ratio(), b.ratio(), s.max_error_increase)).then_some(
        GateFailure::ErrorRatio {
            target: t,
            baseline: b,
            max_increase: s.max_error_increase,
        },
    )
}

/// Gate 4 for a wave's members.
pub fn latency_gate(members: &[Judged<'_>], target: &str, s: &Settings) -> Option<GateFailure> {
    let least = s.min_requests.max(MIN_LATENCY_ANSWERS);
    on_target(members, target).find_map(|(name, t, b)| {
        let (Some(tp), Some(bp)) = (t.p99_ms, b.p99_ms) else {
            return None;
        };
        let judged = t.requests >= least && b.requests >= least;
        (judged && tp > LATENCY_FACTOR * bp + LATENCY_SLACK_MS).then(|| GateFailure::Latency {
            node: name.to_string(),
            target: t,
            baseline: b,
        })
    })
}

/// Gates 1–4 for a wave's members of the rollout of `target` started at `rollout`, in that
/// order: the first that fails.
pub fn failing_gate(
    members: &[Judged<'_>],
    target: &str,
    rollout: UnixMillis,
    s: &Settings,
) -> Option<GateFailure> {
    members
        .iter()
        .find_map(|m| node_gates(m, target, rollout))
        .or_else(|| error_gate(members, target, s))
        .or_else(|| latency_gate(members, target, s))
}

/// Gate 5's figures for the current wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Members not yet running the target.
    pub pending: Vec<String>,
    /// Requests the members answered on the target.
    pub requests: u64,
    /// Time since the wave started.
    pub elapsed_ms: u64,
}

/// What gate 5 says of the current wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveVerdict {
    /// Not yet: keep baking.
    Baking,
    /// It passes.
    Passes,
    /// Pause: the wave's traffic is short at [`pause_after`].
    InsufficientTraffic,
    /// Pause: these members still run neither the target nor rejected it at [`pause_after`].
    NotApplied(Vec<String>),
}

/// Gate 5's figures for the current wave's members, `started_at_ms` its start.
pub fn progress(
    members: &[Judged<'_>],
    target: &str,
    started_at_ms: UnixMillis,
    now: UnixMillis,
) -> Progress {
    Progress {
        pending: members
            .iter()
            .filter(|m| m.report.is_none_or(|r| r.version != target))
            .map(|m| m.name.to_string())
            .collect(),
        requests: sum(on_target(members, target).map(|(_, t, _)| t)).requests,
        elapsed_ms: now.saturating_sub(started_at_ms),
    }
}

/// Gate 5 from the current wave's progress.
pub fn wave_gate(p: &Progress, s: &Settings) -> WaveVerdict {
    let late = p.elapsed_ms >= pause_after(s);
    if !p.pending.is_empty() {
        return if late {
            WaveVerdict::NotApplied(p.pending.clone())
        } else {
            WaveVerdict::Baking
        };
    }
    if p.requests < s.min_requests {
        return if late {
            WaveVerdict::InsufficientTraffic
        } else {
            WaveVerdict::Baking
        };
    }
    if p.elapsed_ms >= s.bake_ms {
        WaveVerdict::Passes
    } else {
        WaveVerdict::Baking
    }
}

#[cfg(test)]
mod exceeds_tests {
    use super::exceeds;

    #[test]
    fn exactly_the_increase_is_not_more_whatever_the_rounding() {
        // 18 → 28 in 1000 and 6 → 7 in 100 are exactly one point: plain `>` said more.
        assert!(!exceeds(28.0 / 1000.0, 18.0 / 1000.0, 0.01));
        assert!(!exceeds(7.0 / 100.0, 6.0 / 100.0, 0.01));
        assert!(exceeds(29.0 / 1000.0, 18.0 / 1000.0, 0.01));
        assert!(!exceeds(0.0, 0.0, 0.0));
        assert!(exceeds(0.001, 0.0, 0.0));
    }
}
