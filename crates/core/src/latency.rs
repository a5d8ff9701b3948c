//! Live latency: a pool's recent response-head latency quantiles, and each origin's live
//! latency penalty that selection adds to its probe latency.
//!
//! The latency an origin is chosen by is `probe + penalty`, where `probe` is the mean RTT of
//! its successful probes (SPEC part 1) and
//! `penalty = max(0, live − pool_p50) × e^(−age / 2 s)`: `live` is an EWMA (α = 0.2) of the
//! origin's own response-head latencies, `pool_p50` the pool's recent median of the same, and
//! `age` the time since the origin's last live sample. An origin answering like the rest of its
//! pool keeps its probe latency; one that turns slow under real traffic is pushed out of the
//! latency band at once, and drifts back in when it gets no traffic to prove otherwise.

use std::time::{Duration, Instant};

/// Smallest latency a bucket tells apart.
const BASE_US: f64 = 50.0;
/// Growth factor between bucket bounds (each bucket is 20 % wider than the one before).
const GROWTH: f64 = 1.2;
/// Buckets: 50 µs × 1.2^80 ≈ 106 s, the last one open-ended.
const BUCKETS: usize = 80;
/// Length of one half of the window.
const HALF: Duration = Duration::from_secs(5);

/// Samples fewer than this leave a quantile unknown.
pub const MIN_SAMPLES: u64 = 20;

/// Weight of a new sample in an origin's live EWMA.
const ALPHA: f64 = 0.2;
/// Time constant of the penalty's decay when an origin gets no live samples.
const DECAY: Duration = Duration::from_secs(2);

fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= BASE_US {
        return 0;
    }
    (((us / BASE_US).ln() / GROWTH.ln()) as usize + 1).min(BUCKETS - 1)
}

/// The upper bound of bucket `i` (its value when read back).
fn bucket_upper(i: usize) -> Duration {
    Duration::from_secs_f64(BASE_US * GROWTH.powi(i as i32) / 1e6)
}

#[derive(Debug, Clone)]
struct Half {
    epoch: u64,
    counts: [u32; BUCKETS],
    total: u64,
}

impl Half {
    fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            counts: [0; BUCKETS],
            total: 0,
        }
    }
}

/// Response-head latencies of the last 5–10 s in log-spaced buckets (±10 %), two halves
/// rotated by time, so quantiles follow the present and not the whole uptime.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    start: Instant,
    halves: [Half; 2],
}

impl LatencyHistogram {
    /// An empty histogram counting time from `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            start: now,
            halves: [Half::empty(0), Half::empty(1)],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_nanos() / HALF.as_nanos()) as u64
    }

    /// Records one latency observed at `now`.
    pub fn record(&mut self, now: Instant, d: Duration) {
        let epoch = self.epoch(now);
        let h = &mut self.halves[(epoch % 2) as usize];
        if h.epoch != epoch {
            *h = Half::empty(epoch);
        }
        h.counts[bucket_of(d)] += 1;
        h.total += 1;
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Half> {
        let epoch = self.epoch(now);
        self.halves
            .iter()
            .filter(move |h| h.epoch <= epoch && h.epoch + 1 >= epoch && h.total > 0)
    }

    /// Samples in the window.
    pub fn count(&self, now: Instant) -> u64 {
        self.live(now).map(|h| h.total).sum()
    }

    /// The `q` quantile (0–1) of the window, as its bucket's upper bound; `None` with fewer
    /// than [`MIN_SAMPLES`] samples.
    pub fn quantile(&self, now: Instant, q: f64) -> Option<Duration> {
        let total = self.count(now);
        if total < MIN_SAMPLES {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for i in 0..BUCKETS {
            seen += self.live(now).map(|h| u64::from(h.counts[i])).sum::<u64>();
            if seen >= rank {
                return Some(bucket_upper(i));
            }
        }
        Some(bucket_upper(BUCKETS - 1))
    }
}

/// One origin's live latency: an EWMA of its response-head latencies and when it last moved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveLatency {
    ewma_us: f64,
    at: Option<Instant>,
}

impl LiveLatency {
    /// Records a sample.
    pub fn record(&mut self, now: Instant, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        self.ewma_us = match self.at {
            None => us,
            Some(_) => self.ewma_us + ALPHA * (us - self.ewma_us),
        };
        self.at = Some(now);
    }

    /// The EWMA, `None` before the first sample.
    pub fn value(&self) -> Option<Duration> {
        self.at.map(|_| Duration::from_secs_f64(self.ewma_us / 1e6))
    }

    /// How much slower than `pool_p50` this origin answers, fading with the age of its last
    /// sample (see the module doc).
    pub fn penalty(&self, now: Instant, pool_p50: Option<Duration>) -> Duration {
        let (Some(at), Some(p50)) = (self.at, pool_p50) else {
            return Duration::ZERO;
        };
        let excess = self.ewma_us - p50.as_secs_f64() * 1e6;
        if excess <= 0.0 {
            return Duration::ZERO;
        }
        let age = now.saturating_duration_since(at).as_secs_f64();
        Duration::from_secs_f64(excess * (-age / DECAY.as_secs_f64()).exp() / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn buckets_are_monotone_and_within_twenty_percent() {
        let mut last = 0;
        for us in (1..200_000).step_by(37) {
            let d = Duration::from_micros(us);
            let b = bucket_of(d);
            assert!(b >= last);
            last = b;
            if us as f64 > BASE_US && b < BUCKETS - 1 {
                let upper = bucket_upper(b).as_secs_f64() * 1e6;
                assert!(
                    upper >= us as f64 * 0.999,
                    "{us} µs in bucket up to {upper}"
                );
                assert!(
                    upper <= us as f64 * GROWTH * 1.001,
                    "{us} µs in bucket up to {upper}"
                );
            }
        }
        assert_eq!(bucket_of(Duration::from_secs(10_000)), BUCKETS - 1);
        assert_eq!(bucket_of(Duration::ZERO), 0);
    }

    #[test]
    fn quantiles_need_enough_samples_then_follow_the_data() {
        let t = Instant::now();
        let mut h = LatencyHistogram::new(t);
        for _ in 0..19 {
            h.record(t, MS);
        }
        assert_eq!(h.quantile(t, 0.95), None);
        h.record(t, MS);
        let p = h.quantile(t, 0.95).unwrap();
        assert!(p >= MS && p <= MS * 6 / 5, "{p:?}");
        // 90 fast, 10 slow: the median is fast, the 95th percentile slow.
        let mut h = LatencyHistogram::new(t);
        for i in 0..100 {
            h.record(t, if i % 10 == 0 { MS * 300 } else { MS });
        }
        assert!(h.quantile(t, 0.5).unwrap() < MS * 2);
        assert!(h.quantile(t, 0.95).unwrap() >= MS * 300);
        assert!(h.quantile(t, 0.89).unwrap() < MS * 2);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let t = Instant::now();
        let mut h = LatencyHistogram::new(t);
        for _ in 0..50 {
            h.record(t, MS * 100);
        }
        // Still there in the next half, gone two halves on.
        assert_eq!(h.count(t + HALF), 50);
        assert_eq!(h.count(t + HALF * 2), 0);
        for _ in 0..50 {
            h.record(t + HALF * 2, MS);
        }
        assert!(h.quantile(t + HALF * 2, 0.99).unwrap() < MS * 2);
        // A half reused after a gap starts empty.
        h.record(t + HALF * 4, MS);
        assert_eq!(h.count(t + HALF * 4), 1);
    }

    #[test]
    fn penalty_is_the_excess_over_the_pool_median_and_fades() {
        let t = Instant::now();
        let mut l = LiveLatency::default();
        assert_eq!(l.penalty(t, Some(MS)), Duration::ZERO);
        l.record(t, MS * 101);
        assert_eq!(l.value(), Some(MS * 101));
        let p = l.penalty(t, Some(MS));
        assert!((p.as_secs_f64() - 0.100).abs() < 1e-6, "{p:?}");
        // No pool median known: no penalty.
        assert_eq!(l.penalty(t, None), Duration::ZERO);
        // Faster than the pool: no penalty.
        assert_eq!(l.penalty(t, Some(MS * 200)), Duration::ZERO);
        // One time constant later: e^-1 of it.
        let p = l.penalty(t + DECAY, Some(MS));
        assert!((p.as_secs_f64() - 0.100 / std::f64::consts::E).abs() < 1e-6);
        // Good samples pull the EWMA back down by α each.
        l.record(t, MS);
        assert!((l.value().unwrap().as_secs_f64() - 0.081).abs() < 1e-6);
    }
}
