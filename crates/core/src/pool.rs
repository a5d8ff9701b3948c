//! Everything one node knows about one pool: health windows, latency, ejection, retry budget,
//! and selection over them. Time is passed in; the edge keeps one of these behind a lock.

use crate::config::PoolConfig;
use crate::ejection::{EjectionEvent, Ejector};
use crate::health::{HealthWindow, ProbeResult};
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
}

/// One pool's routing state as seen by this node.
#[derive(Debug, Clone)]
pub struct PoolBrain {
    sensitivity: Duration,
    windows: Vec<HealthWindow>,
    ejector: Ejector,
    budget: RetryBudget,
    retries_enabled: bool,
    /// Kept in step with the windows and the ejector, so selection reads one slice.
    candidates: Vec<Candidate>,
}

impl PoolBrain {
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
        })
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
        let mut b = PoolBrain::new(&three(), t);
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
        let mut b = PoolBrain::new(&three(), t);
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
        let mut b = PoolBrain::new(&three(), t);
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
        let mut b = PoolBrain::new(&p, t);
        b.record_request(t);
        assert!(!b.try_retry(t));
        let mut on = PoolBrain::new(&three(), t);
        assert!(
            on.try_retry(t),
            "the default floor allows retries without traffic"
        );
    }

    #[test]
    fn disabled_origin_is_never_selected() {
        let t = Instant::now();
        let p = pool(
            r#"{"name":"a","address":"127.0.0.1:1","enabled":false},
               {"name":"b","address":"127.0.0.1:2"}"#,
            "",
        );
        let b = PoolBrain::new(&p, t);
        for r in 0..100 {
            assert_eq!(b.select(0, r), Some(1));
        }
        assert_eq!(b.select(0b10, 0), None);
    }
}
