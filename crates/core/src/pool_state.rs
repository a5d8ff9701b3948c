//! One pool's routing state on one node: health windows, latency, ejection, retry budget,
//! and selection over them. Time is passed in; the edge keeps one of these behind a lock.

use crate::config::MAX_ORIGINS_PER_POOL;
use crate::config::PoolConfig;
use crate::ejection::{EjectionEvent, Ejector};
use crate::health::{HealthWindow, ProbeResult};
use crate::hedge::Hedger;
use crate::latency::{self, LiveLatency};
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
    /// EWMA of its live response-head latencies, once one is known.
    pub live_latency: Option<Duration>,
    /// The latency selection uses: probe latency plus the live penalty (see
    /// [`crate::latency`]), as of the last selection.
    pub selection_latency: Option<Duration>,
    /// Per mille of its weight it takes now (below 1000 during slow start).
    pub share: u16,
}

/// One pool's routing state as seen by this node.
#[derive(Debug, Clone)]
pub struct PoolState {
    sensitivity: Duration,
    windows: Vec<HealthWindow>,
    ejector: Ejector,
    budget: RetryBudget,
    retries_enabled: bool,
    hedger: Hedger,
    /// Live response-head latency per origin.
    live: Vec<LiveLatency>,
    /// Hedges lost in a row per origin (reset by a response head).
    losses: Vec<u32>,
    /// Losses in a row after which an origin counts as slow as `response`.
    loss_limit: u32,
    response: Duration,
    slow_start: Duration,
    /// Whether live latency adds its penalty in selection (`load_balancing.live_latency`).
    live_latency: bool,
    /// When each origin last came back (healthy and not ejected again), for slow start.
    back_since: Vec<Option<Instant>>,
    /// Kept in step with the windows and the ejector, so selection reads one slice.
    candidates: Vec<Candidate>,
}

/// What a lost hedge race meant for the losing origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossVerdict {
    /// A normal loss: no failure.
    Neutral,
    /// It has lost `failover.ejection.consecutive_failures` races in a row: recorded as
    /// slow as the response timeout in its live latency (it leaves the latency band).
    Slow,
    /// It had waited a whole response timeout: a failure for ejection, as a timeout is.
    Failure(Option<EjectionEvent>),
}

impl PoolState {
    /// Fresh state for a pool: every origin healthy, no latency known, nothing ejected.
    pub fn new(pool: &PoolConfig, now: Instant) -> Self {
        let lb = &pool.load_balancing;
        let candidates: Vec<Candidate> = pool
            .origins
            .iter()
            .map(|o| Candidate {
                priority: o.priority,
                weight: o.weight,
                share: 1000,
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
            hedger: Hedger::new(pool, now),
            live: vec![LiveLatency::default(); pool.origins.len()],
            losses: vec![0; pool.origins.len()],
            loss_limit: pool.failover.ejection.consecutive_failures.max(1),
            response: pool.timeouts.response,
            slow_start: lb.slow_start,
            live_latency: lb.live_latency,
            back_since: vec![None; pool.origins.len()],
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
        let lb = &pool.load_balancing;
        let Some((old, old_config)) = old else {
            for w in &mut state.windows {
                *w = HealthWindow::awaiting_first_success(
                    lb.sample_size,
                    lb.successful_samples_required,
                );
            }
            state.refresh_all(now);
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
        if old_config.failover.hedging == pool.failover.hedging
            && old_config.failover.retries.budget_window == pool.failover.retries.budget_window
            && old_config.timeouts == pool.timeouts
        {
            state.hedger = old.hedger.clone();
        }
        for (i, o) in plan.carried.iter().enumerate() {
            if let Some(o) = *o {
                state.live[i] = old.live[o];
                state.back_since[i] = old.back_since[o];
                // Refreshing below must not read "came back" into a carried state.
                state.candidates[i].healthy = old.candidates[o].healthy;
                state.candidates[i].ejected = old.candidates[o].ejected;
            }
        }
        state.refresh_all(now);
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

    /// Picks an origin not in `exclude` (a bit per origin index) as of `now`; see
    /// [`selection::band`]. Latencies carry their live penalty and weights their slow-start
    /// share as of `now`.
    pub fn select(&mut self, now: Instant, exclude: u64, rand: u64) -> Option<usize> {
        self.refresh_at(now);
        selection::select(&self.candidates, self.sensitivity, exclude, rand)
    }

    /// [`Self::select`] with step 0 of selection: `pinned` (session affinity) while it holds
    /// its pin; see [`selection::pin_holds`].
    pub fn select_pinned(
        &mut self,
        now: Instant,
        exclude: u64,
        pinned: Option<usize>,
        rand: u64,
    ) -> Option<usize> {
        self.refresh_at(now);
        selection::select_pinned(&self.candidates, self.sensitivity, exclude, pinned, rand)
    }

    /// The origins [`Self::select`] chose among at its last call (or since the last probe).
    pub fn band(&self, exclude: u64) -> u64 {
        selection::band(&self.candidates, self.sensitivity, exclude)
    }

    /// The pool's hedging state.
    pub fn hedger(&self) -> &Hedger {
        &self.hedger
    }

    /// Whether hedging is on and the budget allows one more hedge now (spending it if so).
    pub fn try_hedge(&mut self, now: Instant) -> bool {
        self.hedger.try_hedge(now)
    }

    /// Records that origin `idx` sent a response head after `waited`.
    pub fn record_head(&mut self, now: Instant, idx: usize, waited: Duration) {
        if idx >= self.live.len() {
            return;
        }
        self.hedger.record_head(now, waited);
        self.live[idx].record(now, waited);
        self.losses[idx] = 0;
    }

    /// Records that origin `idx` timed out (no response head within `response_ms`): a live
    /// sample as slow as the timeout.
    pub fn record_timeout(&mut self, now: Instant, idx: usize) {
        if let Some(l) = self.live.get_mut(idx) {
            l.record(now, self.response);
        }
    }

    /// Records that origin `idx` lost a hedge race after waiting `waited` without a response
    /// head. A loser that had waited a whole response timeout is a failure for ejection, as a
    /// timeout would have been. Otherwise the loss means something only when the origin was
    /// [`latency::overdue`]: later than its own probes (plus the pool's common offset)
    /// predict. Then what it waited is a lower bound of its live latency, and
    /// `consecutive_failures` overdue losses in a row count as slow as the response timeout
    /// (it leaves the latency band). A loss inside its prediction (the hedge delay follows the
    /// pool's fastest answers, so an origin farther away loses such races) changes nothing.
    pub fn record_lost(&mut self, now: Instant, idx: usize, waited: Duration) -> LossVerdict {
        if idx >= self.live.len() {
            return LossVerdict::Neutral;
        }
        if waited >= self.response {
            self.live[idx].record(now, self.response);
            self.losses[idx] = 0;
            return LossVerdict::Failure(self.record_outcome(now, idx, false));
        }
        let expected =
            self.windows[idx].latency().unwrap_or(Duration::ZERO) + self.live_offset(now);
        if !latency::overdue(waited, expected) {
            return LossVerdict::Neutral;
        }
        self.losses[idx] += 1;
        if self.losses[idx] >= self.loss_limit {
            self.losses[idx] = 0;
            self.live[idx].reset(now, self.response);
            return LossVerdict::Slow;
        }
        self.live[idx].record_at_least(now, waited);
        LossVerdict::Neutral
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
        self.refresh(idx, now);
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
            self.refresh(idx, now);
        }
        event
    }

    /// Counts a new client request towards the retry and hedge budgets.
    pub fn record_request(&mut self, now: Instant) {
        self.budget.record_request(now);
        self.hedger.record_request(now);
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
            live_latency: self.live[idx].value(),
            selection_latency: self.candidates[idx].latency,
            share: self.candidates[idx].share,
        })
    }

    fn refresh_all(&mut self, now: Instant) {
        for i in 0..self.candidates.len() {
            self.refresh(i, now);
        }
    }

    /// Takes origin `idx`'s health and ejection from the window and the ejector; an origin
    /// that was out (unhealthy or ejected) and is back starts its slow start at `now`.
    fn refresh(&mut self, idx: usize, now: Instant) {
        let w = &self.windows[idx];
        let c = &mut self.candidates[idx];
        let was_in = c.healthy && !c.ejected;
        c.healthy = w.is_healthy();
        c.latency = w.latency();
        c.ejected = self.ejector.is_ejected(idx);
        if !was_in && c.healthy && !c.ejected && !self.slow_start.is_zero() {
            self.back_since[idx] = Some(now);
        }
    }

    /// Puts each origin's live penalty into its latency and its slow-start share into its
    /// candidate, as of `now` (selection does this itself; read-outs call it first).
    pub fn refresh_at(&mut self, now: Instant) {
        let offset = self.live_latency.then(|| self.live_offset(now));
        for (i, c) in self.candidates.iter_mut().enumerate() {
            let probe = self.windows[i].latency();
            c.latency = probe.map(|l| {
                l + offset.map_or(Duration::ZERO, |o| self.live[i].penalty(now, probe, o))
            });
            c.share = match self.back_since[i] {
                Some(since) => {
                    let ramp =
                        slow_start_share(now.saturating_duration_since(since), self.slow_start);
                    if ramp >= 1000 {
                        self.back_since[i] = None;
                    }
                    ramp
                }
                None => 1000,
            };
        }
    }

    /// The pool's common offset between live and probe latency as of `now` (see
    /// [`crate::latency`]), over the origins with a fresh live sample and a probe latency.
    pub fn live_offset(&self, now: Instant) -> Duration {
        let mut excesses = [0f64; MAX_ORIGINS_PER_POOL];
        let mut n = 0;
        for (l, w) in self.live.iter().zip(&self.windows) {
            if n == excesses.len() {
                break;
            }
            if let Some(e) = l.fresh_excess_us(now, w.latency()) {
                excesses[n] = e;
                n += 1;
            }
        }
        latency::common_offset(&mut excesses[..n])
    }
}

/// Slow start: per mille of its weight an origin takes `since` after coming back, ramping
/// linearly from 100 (a tenth) to 1000 over `ramp`.
pub fn slow_start_share(since: Duration, ramp: Duration) -> u16 {
    if ramp.is_zero() || since >= ramp {
        return 1000;
    }
    let f = since.as_secs_f64() / ramp.as_secs_f64();
    (100.0 + 900.0 * f).round().clamp(100.0, 1000.0) as u16
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
        assert_eq!(b.select(t, 0, 12345), Some(3));
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
        let mut b = PoolState::new(&p, t);
        for r in 0..100 {
            assert_eq!(b.select(t, 0, r), Some(1));
        }
        assert_eq!(b.select(t, 0b10, 0), None);
    }

    fn two(extra: &str) -> PoolConfig {
        pool(
            r#"{"name":"a","address":"127.0.0.1:1"},{"name":"b","address":"127.0.0.1:2"}"#,
            extra,
        )
    }

    /// How many of `n` draws at `now` pick origin 0.
    fn picks_of_a(s: &mut PoolState, now: Instant, n: u64) -> u64 {
        let mut r = 1;
        (0..n)
            .filter(|_| {
                r = selection::next_rand(r);
                s.select(now, 0, r) == Some(0)
            })
            .count() as u64
    }

    #[test]
    fn slow_start_ramps_the_share_of_an_origin_that_comes_back() {
        let t = Instant::now();
        let mut s = PoolState::new(&two(r#","load_balancing":{"slow_start_ms":10000}"#), t);
        for i in 0..2 {
            s.record_probe(t, i, ProbeResult::Success(MS));
        }
        // Without a comeback, no ramp: half and half.
        let even = picks_of_a(&mut s, t, 2000);
        assert!((900..1100).contains(&even), "{even}");
        // a goes down (two failures of four) and comes back with three good probes.
        s.record_probe(t, 0, ProbeResult::Failure);
        s.record_probe(t, 0, ProbeResult::Failure);
        assert_eq!(s.band(0), 0b10);
        let back = t + Duration::from_secs(1);
        for _ in 0..2 {
            s.record_probe(back, 0, ProbeResult::Success(MS));
        }
        assert_eq!(
            s.record_probe(back, 0, ProbeResult::Success(MS)).health,
            Some(true)
        );
        // At once: a tenth of its weight (100 of 1100 draws ≈ 9 %).
        let first = picks_of_a(&mut s, back, 2000);
        assert!((100..280).contains(&first), "{first}");
        assert_eq!(s.origin(0).unwrap().share, 100);
        // Halfway: 550 per mille (≈ 35 %).
        let half = picks_of_a(&mut s, back + Duration::from_secs(5), 2000);
        assert!((580..820).contains(&half), "{half}");
        // Done: its whole weight again.
        let done = picks_of_a(&mut s, back + Duration::from_secs(10), 2000);
        assert!((900..1100).contains(&done), "{done}");
        assert_eq!(s.origin(0).unwrap().share, 1000);
    }

    #[test]
    fn slow_start_is_off_by_default() {
        let t = Instant::now();
        let mut s = PoolState::new(&two(""), t);
        for _ in 0..5 {
            s.record_outcome(t, 0, false);
        }
        assert!(s.origin(0).unwrap().ejected);
        let until = t + Duration::from_secs(10);
        assert!(s.record_probe(until, 0, ProbeResult::Success(MS)).returned);
        let n = picks_of_a(&mut s, until, 2000);
        assert!((900..1100).contains(&n), "{n}");
    }

    #[test]
    fn slow_live_answers_push_an_origin_out_of_the_band_before_its_next_probe() {
        let t = Instant::now();
        let mut s = PoolState::new(&two(""), t);
        for i in 0..2 {
            s.record_probe(t, i, ProbeResult::Success(MS));
        }
        for _ in 0..30 {
            s.record_head(t, 1, MS);
        }
        // Answering like the pool: no penalty.
        s.record_head(t, 0, MS);
        s.select(t, 0, 0);
        assert_eq!(s.band(0), 0b11);
        // a turns slow under real traffic: 300 ms heads against a 1 ms pool median.
        for _ in 0..3 {
            s.record_head(t, 0, MS * 300);
        }
        s.select(t, 0, 0);
        assert_eq!(s.band(0), 0b10);
        let a = s.origin(0).unwrap();
        assert!(a.selection_latency.unwrap() > MS * 50, "{a:?}");
        assert_eq!(a.latency, Some(MS), "the probe latency itself is unchanged");
        // Without traffic to prove it, the penalty fades and a is back in the band.
        s.select(t + Duration::from_secs(20), 0, 0);
        assert_eq!(s.band(0), 0b11);
    }

    /// A far origin losing a race before its own probes say it would answer is not held
    /// against it; losing past that (overdue), five times in a row, is.
    #[test]
    fn only_overdue_lost_races_count_against_an_origin() {
        let t = Instant::now();
        let mut s = PoolState::new(&two(""), t);
        s.record_probe(t, 0, ProbeResult::Success(MS));
        s.record_probe(t, 1, ProbeResult::Success(MS * 40));
        s.record_head(t, 0, MS);
        s.record_head(t, 1, MS * 40);
        for _ in 0..10 {
            assert_eq!(s.record_lost(t, 1, MS * 20), LossVerdict::Neutral);
        }
        s.refresh_at(t);
        let b = s.origin(1).unwrap();
        assert_eq!(b.live_latency, Some(MS * 40), "an early loss is no sample");
        assert_eq!(b.selection_latency, Some(MS * 40), "and no penalty");
        assert_eq!(s.band(0), 0b11);
        // Overdue: 45 ms against the 40 ms its probes predict.
        for _ in 0..4 {
            assert_eq!(s.record_lost(t, 1, MS * 45), LossVerdict::Neutral);
        }
        assert_eq!(s.record_lost(t, 1, MS * 45), LossVerdict::Slow);
        s.refresh_at(t);
        assert_eq!(s.origin(1).unwrap().live_latency, Some(s.response));
        assert_eq!(s.band(0), 0b01);
    }

    #[test]
    fn live_latency_can_be_turned_off() {
        let t = Instant::now();
        let mut s = PoolState::new(&two(r#","load_balancing":{"live_latency":false}"#), t);
        for i in 0..2 {
            s.record_probe(t, i, ProbeResult::Success(MS));
        }
        for _ in 0..30 {
            s.record_head(t, 1, MS);
        }
        for _ in 0..3 {
            s.record_head(t, 0, MS * 300);
        }
        s.select(t, 0, 0);
        assert_eq!(s.band(0), 0b11, "probe latency alone decides");
        assert_eq!(s.origin(0).unwrap().selection_latency, Some(MS));
        assert!(
            s.origin(0).unwrap().live_latency.unwrap() > MS * 100,
            "still measured"
        );
    }
}
