//! One pool's routing state on one node: health windows, latency, ejection, retry budget,
//! and selection over them. Time is passed in; the edge keeps one of these behind a lock.

use crate::config::PoolConfig;
use crate::ejection::{EjectionEvent, Ejector};
use crate::health::{HealthWindow, ProbeResult};
use crate::reload::PoolPlan;
use crate::retry::RetryBudget;
use crate::selection::{self, Candidate};
use std::time::{Duration, Instant};

/// What a probe changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeEvents {
    /// `Some(healthy)` when the health window's verdict flipped.
    pub health: Option<bool>,
    /// The origin came back from ejection.
    pub returned: bool,
}

/// A read-out of one origin for `/status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginState {
    /// Verdict of the health window.
    pub healthy: bool,
    /// Mean probe round-trip time in the window.
    pub latency: Option<Duration>,
    /// Taken out by passive ejection.
    pub ejected: bool,
    /// The last probe and when it was recorded.
    pub last_probe: Option<(Instant, ProbeResult)>,
    /// Failed and total probes in the window.
    pub window: (usize, usize),
    /// Added by a reload and not yet reached by a successful probe.
    pub awaiting_first_success: bool,
}

/// One pool's routing state as seen by this node.
#[derive(Debug, Clone)]
pub struct PoolState {
    sensitivity: Duration,
    windows: Vec<HealthWindow>,
    ejector: Ejector,
    budget: RetryBudget,
    retries_enabled: bool,
    /// Kept in step with the windows and the ejector, so selection reads one slice.
    candidates: Vec<Candidate>,
}

impl PoolState {
    /// Fresh state for a pool: every origin healthy, no latency known, nothing ejected.
    pub fn new(pool: &PoolConfig, now: Instant) -> Self {
        let lb = pool.load_balancing;
        let candidates: Vec<Candidate> = pool
            .origins
            .iter()
            .map(|o| Candidate {
                priority: o.priority,
                weight: o.weight,
                latency: None,
                enabled: o.enabled,
                healthy: true,
                ejected: false,
            })
            .collect();
        Self {
            sensitivity: lb.latency_sensitivity,
            windows: pool
                .origins
                .iter()
                .map(|_| HealthWindow::new(lb.sample_size, lb.successful_samples_required))
                .collect(),
            ejector: Ejector::new(
                pool.failover.ejection,
                pool.origins.iter().map(|o| o.enabled).collect(),
            ),
            budget: RetryBudget::new(&pool.failover.retries, now),
            retries_enabled: pool.failover.retries.enabled,
            candidates,
        }
    }

    /// State for `pool` after a reload, taking over from `old` (the same pool's state under the
    /// running config) what `plan` says carries: each kept origin's health window (resized to
    /// the new `sample_size`), latency and ejection state, and the retry budget when the retry
    /// settings are unchanged. Origins new to the pool are unhealthy until their first good
    /// probe (selection still falls back to them when no origin is healthy).
    pub fn carried(
        pool: &PoolConfig,
        old: Option<(&PoolState, &PoolConfig)>,
        plan: &PoolPlan,
        now: Instant,
    ) -> Self {
        let mut state = Self::new(pool, now);
        let lb = pool.load_balancing;
        let Some((old, old_config)) = old else {
            for w in &mut state.windows {
                *w = HealthWindow::awaiting_first_success(
                    lb.sample_size,
                    lb.successful_samples_required,
                );
            }
            state.refresh_all();
            return state;
        };
        for (i, w) in state.windows.iter_mut().enumerate() {
            *w = match plan.carried.get(i).copied().flatten() {
                Some(o) => old.windows[o].resized(lb.sample_size, lb.successful_samples_required),
                None => HealthWindow::awaiting_first_success(
                    lb.sample_size,
                    lb.successful_samples_required,
                ),
            };
        }
        state.ejector = Ejector::carried(
            pool.failover.ejection,
            pool.origins.iter().map(|o| o.enabled).collect(),
            &old.ejector,
            &plan.carried,
        );
        if old_config.failover.retries == pool.failover.retries {
            state.budget = old.budget.clone();
        }
        state.refresh_all();
        state
    }

    /// Number of origins.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether the pool has no origins.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The current candidates, index for index with the pool's origins.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Picks an origin not in `exclude` (a bit per origin index); see [`selection::band`].
    pub fn select(&self, exclude: u64, rand: u64) -> Option<usize> {
        selection::select(&self.candidates, self.sensitivity, exclude, rand)
    }

    /// The origins [`Self::select`] would choose among.
    pub fn band(&self, exclude: u64) -> u64 {
        selection::band(&self.candidates, self.sensitivity, exclude)
    }

    /// Records a probe of origin `idx`.
    pub fn record_probe(&mut self, now: Instant, idx: usize, result: ProbeResult) -> ProbeEvents {
        let Some(window) = self.windows.get_mut(idx) else {
            return ProbeEvents::default();
        };
        let health = window.record(now, result);
        let returned = matches!(
            self.ejector.record_probe(now, idx, result.is_success()),
            Some(EjectionEvent::Returned)
        );
        self.refresh(idx);
        ProbeEvents { health, returned }
    }

    /// Records the outcome of a live request to origin `idx`.
    pub fn record_outcome(
        &mut self,
        now: Instant,
        idx: usize,
        success: bool,
    ) -> Option<EjectionEvent> {
        if idx >= self.candidates.len() {
            return None;
        }
        let event = self.ejector.record(now, idx, success);
        if event.is_some() {
            self.refresh(idx);
        }
        event
    }

    /// Counts a new request towards the retry budget.
    pub fn record_request(&mut self, now: Instant) {
        self.budget.record_request(now);
    }

    /// Whether retries are on and the budget allows one more now (spending it if so).
    pub fn try_retry(&mut self, now: Instant) -> bool {
        self.retries_enabled && self.budget.try_spend(now)
    }

    /// How many origins are ejected.
    pub fn ejected_count(&self) -> usize {
        self.ejector.ejected_count()
    }

    /// A read-out of origin `idx`.
    pub fn origin(&self, idx: usize) -> Option<OriginState> {
        let w = self.windows.get(idx)?;
        Some(OriginState {
            healthy: w.is_healthy(),
            latency: w.latency(),
            ejected: self.ejector.is_ejected(idx),
            last_probe: w.last(),
            window: w.counts(),
            awaiting_first_success: w.is_awaiting_first_success(),
        })
    }

    fn refresh_all(&mut self) {
        for i in 0..self.candidates.len() {
            self.refresh(i);
        }
    }

    fn refresh(&mut self, idx: usize) {
        let w = &self.windows[idx];
        let c = &mut self.candidates[idx];
        c.healthy = w.is_healthy();
        c.latency = w.latency();
        c.ejected = self.ejector.is_ejected(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const MS: Duration = Duration::from_millis(1);

    fn pool(origins: &str, extra: &str) -> PoolConfig {
        let text = format!(
            r#"{{"pools":[{{"name":"p","origins":[{origins}]{extra}}}],
                "routes":[{{"name":"r","pool":"p"}}]}}"#
        );
        parse(&text).unwrap().pools.remove(0)
    }

    fn three() -> PoolConfig {
        pool(
            r#"{"name":"fast","address":"127.0.0.1:1","weight":50},
               {"name":"mid","address":"127.0.0.1:2","weight":50},
               {"name":"slow","address":"127.0.0.1:3","weight":50},
               {"name":"backup","address":"127.0.0.1:4","priority":2}"#,
            "",
        )
    }

    #[test]
    fn probes_shape_the_band() {
        let t = Instant::now();
        let mut b = PoolState::new(&three(), t);
        assert_eq!(b.band(0), 0b0111);
        b.record_probe(t, 0, ProbeResult::Success(MS));
        b.record_probe(t, 1, ProbeResult::Success(MS * 20));
        b.record_probe(t, 2, ProbeResult::Success(MS * 120));
        assert_eq!(b.band(0), 0b0011);
        assert_eq!(b.origin(1).unwrap().latency, Some(MS * 20));
    }

    #[test]
    fn primary_priority_fails_over_to_backup_and_back() {
        let t = Instant::now();
        let mut b = PoolState::new(&three(), t);
        for idx in 0..3 {
            b.record_probe(t, idx, ProbeResult::Failure);
            let events = b.record_probe(t, idx, ProbeResult::Failure);
            assert_eq!(events.health, Some(false));
        }
        assert_eq!(b.band(0), 0b1000);
        assert_eq!(b.select(0, 12345), Some(3));
        // Three good probes bring the fast one back (window F F S S S → S S S after 3 of 4).
        for _ in 0..2 {
            assert_eq!(b.record_probe(t, 0, ProbeResult::Success(MS)).health, None);
        }
        assert_eq!(
            b.record_probe(t, 0, ProbeResult::Success(MS)).health,
            Some(true)
        );
        assert_eq!(b.band(0), 0b0001);
    }

    #[test]
    fn ejection_removes_from_band_until_time_and_probe() {
        let t = Instant::now();
        let mut b = PoolState::new(&three(), t);
        for _ in 0..4 {
            assert_eq!(b.record_outcome(t, 0, false), None);
        }
        let Some(EjectionEvent::Ejected { until, .. }) = b.record_outcome(t, 0, false) else {
            panic!("fifth failure ejects with the default policy");
        };
        assert_eq!(b.band(0), 0b0110);
        assert_eq!(b.ejected_count(), 1);
        assert!(!b.record_probe(t, 0, ProbeResult::Success(MS)).returned);
        assert!(b.record_probe(until, 0, ProbeResult::Success(MS)).returned);
        assert_eq!(b.band(0), 0b0111);
    }

    #[test]
    fn retries_can_be_turned_off() {
        let t = Instant::now();
        let p = pool(
            r#"{"name":"a","address":"127.0.0.1:1"}"#,
            r#","failover":{"retries":{"enabled":false}}"#,
        );
        let mut b = PoolState::new(&p, t);
        b.record_request(t);
        assert!(!b.try_retry(t));
        let mut on = PoolState::new(&three(), t);
        assert!(
            on.try_retry(t),
            "the default floor allows retries without traffic"
        );
    }

    #[test]
    fn a_reload_carries_kept_origins_and_gates_new_ones() {
        let t = Instant::now();
        let old_cfg = three();
        let mut old = PoolState::new(&old_cfg, t);
        old.record_probe(t, 0, ProbeResult::Success(MS * 3));
        old.record_probe(t, 1, ProbeResult::Failure);
        old.record_probe(t, 1, ProbeResult::Failure);
        for _ in 0..5 {
            old.record_outcome(t, 2, false);
        }
        assert!(old.origin(2).unwrap().ejected);
        // New pool: slow, mid, fast, a new origin; backup removed.
        let new_cfg = pool(
            r#"{"name":"slow","address":"127.0.0.1:3","weight":50},
               {"name":"mid","address":"127.0.0.1:2","weight":50},
               {"name":"fast","address":"127.0.0.1:1","weight":50},
               {"name":"fresh","address":"127.0.0.1:5","weight":50}"#,
            r#","load_balancing":{"sample_size":2,"successful_samples_required":1}"#,
        );
        let plan = PoolPlan {
            old: Some(0),
            carried: vec![Some(2), Some(1), Some(0), None],
            dropped: vec!["backup".into()],
            unchanged: false,
        };
        let mut s = PoolState::carried(&new_cfg, Some((&old, &old_cfg)), &plan, t);
        let slow = s.origin(0).unwrap();
        assert!(slow.ejected, "an ejected origin stays ejected");
        let mid = s.origin(1).unwrap();
        assert!(
            !mid.healthy,
            "two failures of two: still unhealthy in a window of 2 of 1"
        );
        let fast = s.origin(2).unwrap();
        assert_eq!((fast.healthy, fast.latency), (true, Some(MS * 3)));
        let fresh = s.origin(3).unwrap();
        assert!(
            !fresh.healthy,
            "a new origin waits for its first good probe"
        );
        assert_eq!(s.band(0), 0b0100);
        assert_eq!(
            s.record_probe(t, 3, ProbeResult::Success(MS * 4)).health,
            Some(true)
        );
        assert_eq!(s.band(0), 0b1100);
    }

    #[test]
    fn a_pool_added_by_a_reload_still_serves_before_its_first_probe() {
        let t = Instant::now();
        let p = three();
        let plan = PoolPlan {
            old: None,
            carried: vec![None; 4],
            dropped: Vec::new(),
            unchanged: false,
        };
        let s = PoolState::carried(&p, None, &plan, t);
        assert!((0..4).all(|i| !s.origin(i).unwrap().healthy));
        // No origin is healthy: selection falls back to every enabled origin, priority first.
        assert_eq!(s.band(0), 0b0111);
    }

    #[test]
    fn disabled_origin_is_never_selected() {
        let t = Instant::now();
        let p = pool(
            r#"{"name":"a","address":"127.0.0.1:1","enabled":false},
               {"name":"b","address":"127.0.0.1:2"}"#,
            "",
        );
        let b = PoolState::new(&p, t);
        for r in 0..100 {
            assert_eq!(b.select(0, r), Some(1));
        }
        assert_eq!(b.select(0b10, 0), None);
    }
}
