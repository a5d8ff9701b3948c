//! A node's side of the gates: what it counts per version it runs and the baseline it freezes
//! when it switches, ready to publish as the figures and baseline of its [`NodeReport`].
//!
//! - Per version, requests, errors and p99 of response time *since the node last switched to
//!   it* (a version run again starts from zero); the versions it left keep their frozen
//!   figures in the report, the newest [`KEPT_VERSIONS`] of them.
//! - A rolling window of the last [`BASELINE_WINDOW_MS`] on the running version, in one-second
//!   slots each with a latency histogram: the last 60 whole seconds and the current one. At a switch the
//!   window becomes the [`SwitchBaseline`] (figures of the version left, over the 60 s before
//!   the switch, or since the node switched to it if that is shorter) and a new window starts.
//! - A p99 is the upper bound of its histogram bucket (buckets 20 % wide, as for live latency),
//!   unknown below 20 answers.
//!
//! An answer is an error per the SPEC ([`is_error`]): status ≥ 500, or a refusal Portico wrote
//! itself for a route or rule reason (no route matched, a rule's `respond`/`rate_limit` with
//! status ≥ 400); client-caused refusals (400, 408, 413, 414, 431) are not.
//!
//! [`NodeReport`]: super::NodeReport
//! [`BASELINE_WINDOW_MS`]: super::gates::BASELINE_WINDOW_MS

use super::UnixMillis;
use super::gates::{BASELINE_WINDOW_MS, Figures, SwitchBaseline};
use crate::latency::{BUCKETS, MIN_SAMPLES, bucket_of, bucket_upper};
use std::collections::BTreeMap;
use std::time::Duration;

/// How many versions a node keeps figures for, the running one included.
pub const KEPT_VERSIONS: usize = 4;

/// Slots of the rolling window, one a second: 60 whole seconds and the current one.
const SLOTS: usize = (BASELINE_WINDOW_MS / 1000) as usize + 1;

/// Whether an answer counts as an error for the gates: `status` ≥ 500, or ≥ 400 when Portico
/// wrote it itself for a route or rule reason (`route_or_rule`: no route matched, a rule's
/// `respond` or `rate_limit`). Client-caused refusals are not errors: pass `false` for them.
pub fn is_error(status: u16, route_or_rule: bool) -> bool {
    status >= 500 || (route_or_rule && status >= 400)
}

/// Requests, errors and a latency histogram.
#[derive(Debug, Clone)]
struct Tally {
    requests: u64,
    errors: u64,
    buckets: [u64; BUCKETS],
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: 0,
            errors: 0,
            buckets: [0; BUCKETS],
        }
    }

    /// An answer, its latency already in `bucket` (one logarithm per answer, not one per tally).
    fn record(&mut self, error: bool, bucket: usize) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.buckets[bucket] += 1;
    }

    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }

    fn figures(&self) -> Figures {
        let total: u64 = self.buckets.iter().sum();
        let p99_ms = (total >= MIN_SAMPLES).then(|| {
            let rank = (total * 99).div_ceil(100).max(1);
            let mut seen = 0;
            let i = self
                .buckets
                .iter()
                .position(|&c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(BUCKETS - 1);
            bucket_upper(i).as_secs_f64() * 1000.0
        });
        Figures {
            requests: self.requests,
            errors: self.errors,
            p99_ms,
        }
    }
}

/// One second of the window.
#[derive(Debug, Clone)]
struct Slot {
    second: u64,
    tally: Tally,
}

/// What a node counts for the rollout gates.
#[derive(Debug, Clone)]
pub struct VersionCounters {
    running: String,
    since_switch: Tally,
    window: Vec<Slot>,
    left: Vec<(String, Figures)>,
    baseline: Option<SwitchBaseline>,
}

impl VersionCounters {
    /// Counters for a node that starts running `version`.
    pub fn new(version: &str) -> Self {
        Self {
            running: version.to_string(),
            since_switch: Tally::new(),
            window: Vec::new(),
            left: Vec::new(),
            baseline: None,
        }
    }

    /// The version it counts for now.
    pub fn running(&self) -> &str {
        &self.running
    }

    /// An answer at `now` on the running version.
    pub fn record(&mut self, now: UnixMillis, error: bool, latency: Duration) {
        let bucket = bucket_of(latency);
        self.since_switch.record(error, bucket);
        let second = now / 1000;
        let i = (second % SLOTS as u64) as usize;
        if self.window.len() < SLOTS {
            self.window.resize_with(SLOTS, || Slot {
                second: u64::MAX,
                tally: Tally::new(),
            });
        }
        let slot = &mut self.window[i];
        if slot.second != second {
            slot.second = second;
            slot.tally = Tally::new();
        }
        slot.tally.record(error, bucket);
    }

    /// The running version's figures over the window ending at `now`.
    pub fn window(&self, now: UnixMillis) -> Figures {
        let second = now / 1000;
        let mut t = Tally::new();
        for s in &self.window {
            if s.second <= second && second - s.second < SLOTS as u64 {
                t.add(&s.tally);
            }
        }
        t.figures()
    }

    /// The node switches to `to` at `now`: the window becomes the baseline, the running
    /// version's figures are frozen, and `to` starts from zero. Switching to the running
    /// version changes nothing.
    pub fn switch(&mut self, to: &str, now: UnixMillis) {
        if to == self.running {
            return;
        }
        self.baseline = Some(SwitchBaseline {
            to: to.to_string(),
            figures: self.window(now),
        });
        let left = std::mem::replace(&mut self.running, to.to_string());
        let figures = std::mem::replace(&mut self.since_switch, Tally::new()).figures();
        self.left.retain(|(v, _)| *v != left && v != to);
        self.left.push((left, figures));
        let excess = self.left.len().saturating_sub(KEPT_VERSIONS - 1);
        self.left.drain(..excess);
        self.window.clear();
    }

    /// Figures per version to publish: the running one since the switch, and the ones left.
    pub fn figures(&self) -> BTreeMap<String, Figures> {
        let mut out: BTreeMap<String, Figures> = self.left.iter().cloned().collect();
        out.insert(self.running.clone(), self.since_switch.figures());
        out
    }

    /// The baseline frozen at the last switch.
    pub fn baseline(&self) -> Option<&SwitchBaseline> {
        self.baseline.as_ref()
    }
}
