//! Hedged requests: which requests may be hedged, when a hedge is due, and the budget that
//! caps hedges at a share of the pool's recent requests.

use crate::config::{HedgingConfig, PoolConfig};
use crate::latency::LatencyHistogram;
use crate::retry::RetryBudget;
use std::time::{Duration, Instant};

/// The shortest adaptive hedge delay.
pub const MIN_DELAY: Duration = Duration::from_millis(5);

/// Quantile of the pool's response-head latency the adaptive delay waits for.
pub const DELAY_QUANTILE: f64 = 0.95;

/// Hedges always allowed per second of the budget window, on top of `max_percent` of the
/// pool's recent requests (when `max_percent` is above zero). Without a floor a pool at a few
/// requests per second has a budget of a fraction of a hedge: a hanging origin would cost
/// each request that meets it a whole response timeout until it has lost enough races to
/// leave the latency band. One a second is 0.2 % of the load at 500 requests per second.
pub const MIN_HEDGES_PER_SECOND: u32 = 1;

/// Whether a request may be hedged at all: GET, HEAD or OPTIONS without a body.
pub fn hedgeable(method: &str, has_body: bool) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS") && !has_body
}

/// The result of a hedge, as the `result` label of `portico_hedges_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeResult {
    /// The hedge's response head came first.
    Won,
    /// The first attempt's response head came first; the hedge was cancelled.
    Lost,
    /// A hedge was due but the budget (or no other origin) did not allow it.
    Denied,
}

impl HedgeResult {
    /// Every result, for pre-registering metric labels.
    pub const ALL: [HedgeResult; 3] = [HedgeResult::Won, HedgeResult::Lost, HedgeResult::Denied];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            HedgeResult::Won => "won",
            HedgeResult::Lost => "lost",
            HedgeResult::Denied => "denied",
        }
    }
}

/// One pool's hedging state: its recent response-head latencies and its hedge budget.
#[derive(Debug, Clone)]
pub struct Hedger {
    config: HedgingConfig,
    /// Delay used while too few live samples are known: a tenth of the response timeout.
    fallback: Duration,
    heads: LatencyHistogram,
    budget: RetryBudget,
}

impl Hedger {
    /// Fresh state for `pool`, counting time from `now`. The budget counts over the pool's
    /// retry budget window.
    pub fn new(pool: &PoolConfig, now: Instant) -> Self {
        let config = pool.failover.hedging;
        Self {
            config,
            fallback: (pool.timeouts.response / 10).max(MIN_DELAY),
            heads: LatencyHistogram::new(now),
            budget: RetryBudget::with_ratio(
                config.max_ratio,
                if config.max_ratio > 0.0 {
                    MIN_HEDGES_PER_SECOND
                } else {
                    0
                },
                pool.failover.retries.budget_window,
                now,
            ),
        }
    }

    /// Whether hedging is on for the pool.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Counts a client request towards the budget.
    pub fn record_request(&mut self, now: Instant) {
        self.budget.record_request(now);
    }

    /// Records how long an attempt waited for its response head.
    pub fn record_head(&mut self, now: Instant, waited: Duration) {
        self.heads.record(now, waited);
    }

    /// The pool's recent median response-head latency, once enough samples are known.
    pub fn median(&self, now: Instant) -> Option<Duration> {
        self.heads.quantile(now, 0.5)
    }

    /// The pool's recent `q` quantile of response-head latency, once enough samples are known.
    pub fn quantile(&self, now: Instant, q: f64) -> Option<Duration> {
        self.heads.quantile(now, q)
    }

    /// How long after an attempt started a hedge is due: the configured delay, or the
    /// pool's recent 95th percentile (at least [`MIN_DELAY`]); while fewer than
    /// [`crate::latency::MIN_SAMPLES`] samples are known, a tenth of `response_ms`.
    pub fn delay(&self, now: Instant) -> Duration {
        match self.config.delay {
            Some(d) => d,
            None => self
                .heads
                .quantile(now, DELAY_QUANTILE)
                .map_or(self.fallback, |p| p.max(MIN_DELAY)),
        }
    }

    /// Spends one hedge if the budget allows it.
    pub fn try_hedge(&mut self, now: Instant) -> bool {
        self.config.enabled && self.budget.try_spend(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const MS: Duration = Duration::from_millis(1);

    fn pool(hedging: &str) -> PoolConfig {
        let text = format!(
            r#"{{"pools":[{{"name":"p","timeouts":{{"response_ms":500}},
                "failover":{{"hedging":{hedging}}},
                "origins":[{{"name":"a","address":"127.0.0.1:1"}}]}}],
                "routes":[{{"name":"r","pool":"p"}}]}}"#
        );
        parse(&text).unwrap().pools.remove(0)
    }

    #[test]
    fn only_bodiless_safe_methods_are_hedged() {
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(hedgeable(m, false));
            assert!(!hedgeable(m, true));
        }
        for m in ["POST", "PUT", "DELETE", "PATCH"] {
            assert!(!hedgeable(m, false));
        }
    }

    #[test]
    fn adaptive_delay_is_the_p95_with_a_floor_and_a_fallback() {
        let t = Instant::now();
        let mut h = Hedger::new(&pool("{}"), t);
        assert!(h.enabled());
        // Nothing known: a tenth of the 500 ms response timeout.
        assert_eq!(h.delay(t), MS * 50);
        for i in 0..100 {
            h.record_head(t, if i < 90 { MS } else { MS * 40 });
        }
        let d = h.delay(t);
        assert!(d >= MS * 40 && d <= MS * 48, "{d:?}");
        // Fast pool: the 5 ms floor.
        let mut h = Hedger::new(&pool("{}"), t);
        for _ in 0..100 {
            h.record_head(t, MS);
        }
        assert_eq!(h.delay(t), MIN_DELAY);
        assert!(h.median(t).unwrap() <= MS * 6 / 5);
    }

    #[test]
    fn a_fixed_delay_wins_and_disabled_never_hedges() {
        let t = Instant::now();
        let h = Hedger::new(&pool(r#"{"delay_ms": 12}"#), t);
        assert_eq!(h.delay(t), MS * 12);
        let mut h = Hedger::new(&pool(r#"{"enabled": false}"#), t);
        for _ in 0..100 {
            h.record_request(t);
        }
        assert!(!h.try_hedge(t));
    }

    #[test]
    fn hedges_are_capped_at_max_percent_of_recent_requests_plus_a_floor() {
        let t = Instant::now();
        // The default retry budget window is 10 s: a floor of 10 hedges.
        let floor = MIN_HEDGES_PER_SECOND as usize * 10;
        let mut h = Hedger::new(&pool(r#"{"max_percent": 10}"#), t);
        let granted = (0..50).filter(|_| h.try_hedge(t)).count();
        assert_eq!(granted, floor, "no requests: the floor alone");
        for _ in 0..100 {
            h.record_request(t);
        }
        let granted = (0..50).filter(|_| h.try_hedge(t)).count();
        assert_eq!(
            granted, 10,
            "10 % of 100 requests on top of the spent floor"
        );
        for _ in 0..10 {
            h.record_request(t);
        }
        assert!(h.try_hedge(t));
        assert!(!h.try_hedge(t));
        // The floor comes back as the window moves on.
        let later = t + Duration::from_secs(11);
        assert_eq!((0..50).filter(|_| h.try_hedge(later)).count(), floor);
        // max_percent 0: no floor either.
        let mut h = Hedger::new(&pool(r#"{"max_percent": 0}"#), t);
        for _ in 0..100 {
            h.record_request(t);
        }
        assert!(!h.try_hedge(t));
    }
}
