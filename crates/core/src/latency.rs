//! Live latency: a pool's recent response-head latency quantiles, and each origin's live
//! latency penalty that selection adds to its probe latency.
//!
//! The latency an origin is chosen by is `probe + penalty`, where `probe` is the mean RTT of
//! its successful probes (SPEC part 1). Live latency catches what probes miss: an origin that
//! answers real requests markedly slower than its probes predict. So the penalty compares each
//! origin with *its own* prediction, never with the other origins — an origin farther away
//! than the fastest is what the latency band exists to tolerate:
//!
//! - `live` is an EWMA (α = 0.2) of the origin's response-head latencies (a response timeout
//!   counts as `response_ms`, a lost hedge race as what it waited);
//! - `excess = live − probe` is how much slower than its probes the origin answers;
//! - `offset` is the pool's common excess: the lower median of `excess` over the origins with
//!   a live sample in the last [`OFFSET_MAX_AGE`], never below zero. Real requests may take
//!   longer than probes everywhere (a `GET` that renders against a `HEAD`): that is nobody's
//!   fault and shifts every origin alike. Pooled keep-alive requests skip the connect a probe
//!   pays, so live is often *faster* than probes: that is never held against an origin (the
//!   floor at zero). The lower median means an origin is judged by the healthy ones as long
//!   as at most half of those with fresh samples misbehave (with two origins, by the better);
//! - `penalty = max(0, excess − offset) × e^(−age / 2 s)`, `age` the time since the origin's
//!   last live sample.
//!
//! An origin whose live latency matches what its probes predict keeps its probe latency,
//! whatever its distance, and takes its weight's share of the band; one that turns slow under
//! real traffic (or hangs) is pushed out of the band at once, and drifts back in when it gets
//! no traffic to prove otherwise.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Smallest latency a bucket tells apart.
const BASE_US: f64 = 50.0;
/// Growth factor between bucket bounds (each bucket is 20 % wider than the one before).
const GROWTH: f64 = 1.2;
/// Buckets: 50 µs × 1.2^80 ≈ 106 s, the last one open-ended.
pub(crate) const BUCKETS: usize = 80;
/// Length of one half of the window.
const HALF: Duration = Duration::from_secs(5);

/// Samples fewer than this leave a quantile unknown.
pub const MIN_SAMPLES: u64 = 20;

/// Weight of a new sample in an origin's live EWMA.
const ALPHA: f64 = 0.2;
/// Time constant of the penalty's decay when an origin gets no live samples.
const DECAY: Duration = Duration::from_secs(2);
/// Live samples older than this leave the pool's common offset.
pub const OFFSET_MAX_AGE: Duration = Duration::from_secs(10);

pub(crate) fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= BASE_US {
        return 0;
    }
    (((us / BASE_US).ln() / GROWTH.ln()) as usize + 1).min(BUCKETS - 1)
}

/// The upper bound of bucket `i` (its value when read back), from a table computed once: a
/// hedging pool reads one on every request.
pub(crate) fn bucket_upper(i: usize) -> Duration {
    static UPPER: LazyLock<[Duration; BUCKETS]> = LazyLock::new(|| {
        std::array::from_fn(|i| Duration::from_secs_f64(BASE_US * GROWTH.powi(i as i32) / 1e6))
    });
    UPPER[i.min(BUCKETS - 1)]
}

/// Size of a half's Fenwick tree: the power of two above [`BUCKETS`], so a quantile is found
/// by halving steps from the top.
const TREE: usize = 128;

/// One half of the window: its bucket counts as a Fenwick (binary indexed) tree, so a
/// quantile takes seven steps instead of a walk over the buckets (a hedging pool asks for
/// its 95th percentile on every request), and a sample seven increments.
#[derive(Debug, Clone)]
struct Half {
    epoch: u64,
    /// `tree[i]` (1-based) counts buckets `i − lowbit(i) .. i` (0-based, end exclusive).
    tree: [u32; TREE],
    total: u64,
}

impl Half {
    fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            tree: [0; TREE],
            total: 0,
        }
    }

    /// Counts one sample in bucket `b`.
    fn add(&mut self, b: usize) {
        let mut i = b + 1;
        while i < TREE {
            self.tree[i] += 1;
            i += i & i.wrapping_neg();
        }
        self.total += 1;
    }
}

/// The first bucket at which the samples of `halves`, counted from the lowest bucket, reach
/// `rank` (at most their total), found by descending their Fenwick trees together.
fn bucket_of_rank(halves: &[&Half], rank: u64) -> usize {
    let mut pos = 0;
    let mut seen = 0u64;
    let mut step = TREE / 2;
    while step > 0 {
        let next = pos + step;
        if next < TREE {
            let here: u64 = halves.iter().map(|h| u64::from(h.tree[next])).sum();
            if seen + here < rank {
                pos = next;
                seen += here;
            }
        }
        step /= 2;
    }
    // `pos` buckets hold fewer than `rank` samples: bucket `pos` (0-based) reaches it.
    pos.min(BUCKETS - 1)
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
        h.add(bucket_of(d));
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Half> {
        let epoch = self.epoch(now);
        self.halves
            .iter()
            .filter(move |h| h.epoch <= epoch && h.epoch + 1 >= epoch && h.total > 0)
    }

    /// The halves in the window at `now`, looked up once.
    fn live_halves(&self, now: Instant) -> ([&Half; 2], usize) {
        let mut out = [&self.halves[0]; 2];
        let mut n = 0;
        for h in self.live(now) {
            out[n] = h;
            n += 1;
        }
        (out, n)
    }

    /// Samples in the window.
    pub fn count(&self, now: Instant) -> u64 {
        self.live(now).map(|h| h.total).sum()
    }

    /// The `q` quantile (0–1) of the window, as its bucket's upper bound; `None` with fewer
    /// than [`MIN_SAMPLES`] samples.
    pub fn quantile(&self, now: Instant, q: f64) -> Option<Duration> {
        let (halves, n) = self.live_halves(now);
        let live = &halves[..n];
        let total: u64 = live.iter().map(|h| h.total).sum();
        if total < MIN_SAMPLES {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        Some(bucket_upper(bucket_of_rank(live, rank)))
    }
}

/// One origin's live latency: an EWMA of its response-head latencies and when it last moved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveLatency {
    ewma_us: f64,
    at: Option<Instant>,
}

impl LiveLatency {
    /// Records a sample. The earlier estimate's weight fades with its age like the penalty
    /// does: a sample right after the last one moves the EWMA by α, one after a long silence
    /// mostly replaces it (`α' = 1 − (1 − α)·e^(−age / 2 s)`), so an origin that was found
    /// slow and has recovered is believed again at its first answer.
    pub fn record(&mut self, now: Instant, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        self.ewma_us = match self.at {
            None => us,
            Some(at) => {
                let age = now.saturating_duration_since(at).as_secs_f64();
                let alpha = 1.0 - (1.0 - ALPHA) * (-age / DECAY.as_secs_f64()).exp();
                self.ewma_us + alpha * (us - self.ewma_us)
            }
        };
        self.at = Some(now);
    }

    /// Records that the origin was still at least `waited` slow at `now` (it lost a hedge
    /// race): a lower bound, so it raises the EWMA to `waited` when above it and otherwise
    /// only renews the estimate's age (its penalty stops fading).
    pub fn record_at_least(&mut self, now: Instant, waited: Duration) {
        match self.value() {
            Some(v) if v >= waited => self.at = Some(now),
            _ => self.record(now, waited),
        }
    }

    /// The EWMA, `None` before the first sample.
    pub fn value(&self) -> Option<Duration> {
        self.at.map(|_| Duration::from_secs_f64(self.ewma_us / 1e6))
    }

    /// Replaces the EWMA with `d`, as if every recent sample had been `d` (an origin found
    /// as slow as the response timeout is not averaged back in by its earlier answers).
    pub fn reset(&mut self, now: Instant, d: Duration) {
        self.ewma_us = d.as_secs_f64() * 1e6;
        self.at = Some(now);
    }

    /// `live − probe` in µs, when the origin has a live sample no older than
    /// [`OFFSET_MAX_AGE`] and a probe latency.
    pub fn fresh_excess_us(&self, now: Instant, probe: Option<Duration>) -> Option<f64> {
        let at = self.at?;
        let probe = probe?;
        (now.saturating_duration_since(at) <= OFFSET_MAX_AGE)
            .then_some(self.ewma_us - probe.as_secs_f64() * 1e6)
    }

    /// How much slower than its probes predict this origin answers, beyond the pool's common
    /// `offset`, fading with the age of its last sample (see the module doc). No penalty
    /// without a live sample or a probe latency.
    pub fn penalty(&self, now: Instant, probe: Option<Duration>, offset: Duration) -> Duration {
        let (Some(at), Some(probe)) = (self.at, probe) else {
            return Duration::ZERO;
        };
        let excess = self.ewma_us - (probe + offset).as_secs_f64() * 1e6;
        if excess <= 0.0 {
            return Duration::ZERO;
        }
        let age = now.saturating_duration_since(at).as_secs_f64();
        Duration::from_secs_f64(excess * (-age / DECAY.as_secs_f64()).exp() / 1e6)
    }
}

/// The pool's common offset between live and probe latency (see the module doc): the lower
/// median of `excesses` (µs), never below zero; zero when there are none. Reorders the slice.
pub fn common_offset(excesses: &mut [f64]) -> Duration {
    if excesses.is_empty() {
        return Duration::ZERO;
    }
    let mid = (excesses.len() - 1) / 2;
    let (_, m, _) = excesses.select_nth_unstable_by(mid, f64::total_cmp);
    Duration::from_secs_f64(m.max(0.0) / 1e6)
}

/// Whether an attempt that has waited `waited` without a response head is later than its
/// origin's `expected` latency (probe latency plus the pool's common offset) predicts, by more
/// than [`OVERDUE_SLACK`]. Losing a hedge race before that says nothing about the origin: the
/// hedge delay follows the pool's fastest answers, not this origin's.
pub fn overdue(waited: Duration, expected: Duration) -> bool {
    waited > expected + OVERDUE_SLACK
}

/// Slack of [`overdue`]: jitter of a steady origin's answers stays inside it.
pub const OVERDUE_SLACK: Duration = Duration::from_millis(1);

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

    proptest::proptest! {
        /// The Fenwick descent finds what a walk over the buckets finds: the first bucket
        /// at which the samples of both halves, counted from the lowest, reach the rank.
        #[test]
        fn a_quantile_is_the_first_bucket_reaching_its_rank(
            a in proptest::collection::vec(0..BUCKETS, 0..300),
            b in proptest::collection::vec(0..BUCKETS, 0..300),
            q in 0.0..=1.0f64,
        ) {
            let (mut ha, mut hb) = (Half::empty(0), Half::empty(1));
            let mut counts = [0u64; BUCKETS];
            for &x in &a {
                ha.add(x);
                counts[x] += 1;
            }
            for &x in &b {
                hb.add(x);
                counts[x] += 1;
            }
            let total = (a.len() + b.len()) as u64;
            proptest::prop_assume!(total > 0);
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            let walked = (0..BUCKETS)
                .find(|&i| {
                    seen += counts[i];
                    seen >= rank
                })
                .unwrap_or(BUCKETS - 1);
            proptest::prop_assert_eq!(bucket_of_rank(&[&ha, &hb], rank), walked);
            let one: Vec<usize> = a.iter().chain(&b).copied().collect();
            let mut h = Half::empty(0);
            for &x in &one {
                h.add(x);
            }
            proptest::prop_assert_eq!(bucket_of_rank(&[&h], rank), walked);
        }
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
    fn penalty_is_the_excess_over_the_own_probes_and_fades() {
        let t = Instant::now();
        let probe = Some(MS);
        let mut l = LiveLatency::default();
        assert_eq!(l.penalty(t, probe, Duration::ZERO), Duration::ZERO);
        l.record(t, MS * 101);
        assert_eq!(l.value(), Some(MS * 101));
        let p = l.penalty(t, probe, Duration::ZERO);
        assert!((p.as_secs_f64() - 0.100).abs() < 1e-6, "{p:?}");
        // No probe latency known: no penalty.
        assert_eq!(l.penalty(t, None, Duration::ZERO), Duration::ZERO);
        // The pool's common offset is nobody's fault.
        let p = l.penalty(t, probe, MS * 40);
        assert!((p.as_secs_f64() - 0.060).abs() < 1e-6, "{p:?}");
        // As slow as its probes predict, however far: no penalty.
        assert_eq!(l.penalty(t, Some(MS * 101), Duration::ZERO), Duration::ZERO);
        assert_eq!(l.penalty(t, Some(MS * 200), Duration::ZERO), Duration::ZERO);
        // One time constant later: e^-1 of it.
        let p = l.penalty(t + DECAY, probe, Duration::ZERO);
        assert!((p.as_secs_f64() - 0.100 / std::f64::consts::E).abs() < 1e-6);
        // Good samples pull the EWMA back down by α each.
        l.record(t, MS);
        assert!((l.value().unwrap().as_secs_f64() - 0.081).abs() < 1e-6);
        // A reset forgets the earlier samples.
        l.reset(t, MS * 500);
        assert_eq!(l.value(), Some(MS * 500));
    }

    #[test]
    fn only_fresh_samples_with_a_probe_latency_count_towards_the_offset() {
        let t = Instant::now();
        let mut l = LiveLatency::default();
        assert_eq!(l.fresh_excess_us(t, Some(MS)), None);
        l.record(t, MS * 31);
        assert_eq!(l.fresh_excess_us(t, None), None);
        let e = l
            .fresh_excess_us(t + OFFSET_MAX_AGE, Some(MS * 30))
            .unwrap();
        assert!((e - 1000.0).abs() < 1e-6, "{e}");
        assert_eq!(l.fresh_excess_us(t + OFFSET_MAX_AGE + MS, Some(MS)), None);
    }

    #[test]
    fn overdue_is_later_than_predicted_by_more_than_the_slack() {
        assert!(!overdue(MS * 20, MS * 40));
        assert!(!overdue(MS * 41, MS * 40));
        assert!(overdue(MS * 41 + Duration::from_micros(1), MS * 40));
        assert!(overdue(MS * 5, Duration::ZERO));
    }

    #[test]
    fn common_offset_is_the_lower_median_floored_at_zero() {
        assert_eq!(common_offset(&mut []), Duration::ZERO);
        // Two origins: the better one's excess (a hanging one does not move it).
        assert_eq!(common_offset(&mut [500_000.0, 2_000.0]), MS * 2);
        assert_eq!(common_offset(&mut [3_000.0, 1_000.0, 2_000.0]), MS * 2);
        assert_eq!(common_offset(&mut [4e3, 1e3, 3e3, 2e3]), MS * 2);
        // Live faster than probes (no connect on pooled connections) is never an offset.
        assert_eq!(common_offset(&mut [-30_000.0, -1_000.0]), Duration::ZERO);
    }
}
