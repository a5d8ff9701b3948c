//! The health window (Front Door semantics) and probe latency of one origin, as seen by one node.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Expected status within the timeout; the round-trip time is a latency sample.
    Success(Duration),
    /// Anything else.
    Failure,
}

impl ProbeResult {
    /// Whether the probe succeeded.
    pub fn is_success(self) -> bool {
        matches!(self, ProbeResult::Success(_))
    }
}

/// The last `sample_size` probes of an origin. Healthy while failures among them are at most
/// `sample_size - successful_samples_required`; an origin with no probes yet is healthy.
/// Latency is the mean round-trip time of the successful probes in the window.
#[derive(Debug, Clone)]
pub struct HealthWindow {
    sample_size: usize,
    max_failures: usize,
    samples: VecDeque<ProbeResult>,
    failures: usize,
    rtt_sum: Duration,
    last: Option<(Instant, ProbeResult)>,
    /// Set for an origin added by a reload: unhealthy until its first successful probe.
    awaiting_first_success: bool,
}

impl HealthWindow {
    /// An empty window; `successful_samples_required` is capped at `sample_size`.
    pub fn new(sample_size: usize, successful_samples_required: usize) -> Self {
        let sample_size = sample_size.max(1);
        Self {
            sample_size,
            max_failures: sample_size - successful_samples_required.min(sample_size),
            samples: VecDeque::with_capacity(sample_size),
            failures: 0,
            rtt_sum: Duration::ZERO,
            last: None,
            awaiting_first_success: false,
        }
    }

    /// An empty window that is unhealthy until its first successful probe: an origin added
    /// by a reload takes no traffic before a probe has reached it. After that success the
    /// usual window rule applies.
    pub fn awaiting_first_success(sample_size: usize, successful_samples_required: usize) -> Self {
        Self {
            awaiting_first_success: true,
            ..Self::new(sample_size, successful_samples_required)
        }
    }

    /// This window under new settings: the most recent probes are kept (as many as the new
    /// size holds), with the same last probe and first-success gate.
    pub fn resized(&self, sample_size: usize, successful_samples_required: usize) -> Self {
        let mut w = Self::new(sample_size, successful_samples_required);
        let skip = self.samples.len().saturating_sub(w.sample_size);
        for &r in self.samples.iter().skip(skip) {
            match r {
                ProbeResult::Failure => w.failures += 1,
                ProbeResult::Success(rtt) => w.rtt_sum += rtt,
            }
            w.samples.push_back(r);
        }
        w.last = self.last;
        w.awaiting_first_success = self.awaiting_first_success;
        w
    }

    /// Records a probe. Returns `Some(healthy)` when the verdict flipped.
    pub fn record(&mut self, now: Instant, result: ProbeResult) -> Option<bool> {
        let before = self.is_healthy();
        if self.samples.len() == self.sample_size {
            match self.samples.pop_front() {
                Some(ProbeResult::Failure) => self.failures -= 1,
                Some(ProbeResult::Success(rtt)) => self.rtt_sum -= rtt,
                None => {}
            }
        }
        match result {
            ProbeResult::Failure => self.failures += 1,
            ProbeResult::Success(rtt) => self.rtt_sum += rtt,
        }
        self.samples.push_back(result);
        self.last = Some((now, result));
        if result.is_success() {
            self.awaiting_first_success = false;
        }
        let after = self.is_healthy();
        (before != after).then_some(after)
    }

    /// Whether failures in the window are within what the pool tolerates.
    pub fn is_healthy(&self) -> bool {
        !self.awaiting_first_success && self.failures <= self.max_failures
    }

    /// Whether the window still waits for the first successful probe (see
    /// [`Self::awaiting_first_success`]).
    pub fn is_awaiting_first_success(&self) -> bool {
        self.awaiting_first_success
    }

    /// Mean round-trip time of the successful probes in the window, if any.
    pub fn latency(&self) -> Option<Duration> {
        let successes = self.samples.len() - self.failures;
        (successes > 0).then(|| self.rtt_sum / successes as u32)
    }

    /// The last probe and when it was recorded.
    pub fn last(&self) -> Option<(Instant, ProbeResult)> {
        self.last
    }

    /// Failed and total probes in the window.
    pub fn counts(&self) -> (usize, usize) {
        (self.failures, self.samples.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeResult::{Failure, Success};

    const MS: Duration = Duration::from_millis(1);

    fn ok(ms: u64) -> ProbeResult {
        Success(MS * ms as u32)
    }

    #[test]
    fn new_origin_is_healthy_with_unknown_latency() {
        let w = HealthWindow::new(4, 3);
        assert!(w.is_healthy());
        assert_eq!(w.latency(), None);
        assert_eq!(w.last(), None);
    }

    #[test]
    fn front_door_window_4_of_3() {
        // Healthy while failures among the last 4 are at most 1.
        let t = Instant::now();
        let mut w = HealthWindow::new(4, 3);
        assert_eq!(w.record(t, Failure), None); // F: 1 failure
        assert!(w.is_healthy());
        assert_eq!(w.record(t, ok(10)), None); // F S
        assert_eq!(w.record(t, Failure), Some(false)); // F S F: 2 failures
        assert_eq!(w.record(t, ok(10)), None); // F S F S
        assert_eq!(w.record(t, ok(10)), Some(true)); // S F S S: first F left the window
        assert_eq!(w.record(t, ok(10)), None); // F S S S
        assert_eq!(w.record(t, ok(10)), None); // S S S S
        assert!(w.is_healthy());
    }

    #[test]
    fn dead_origin_needs_three_good_probes_to_return() {
        let t = Instant::now();
        let mut w = HealthWindow::new(4, 3);
        for _ in 0..4 {
            w.record(t, Failure);
        }
        assert!(!w.is_healthy());
        assert_eq!(w.record(t, ok(5)), None); // F F F S
        assert_eq!(w.record(t, ok(5)), None); // F F S S
        assert_eq!(w.record(t, ok(5)), Some(true)); // F S S S
    }

    #[test]
    fn latency_is_mean_of_successes_in_window() {
        let t = Instant::now();
        let mut w = HealthWindow::new(3, 1);
        w.record(t, ok(10));
        w.record(t, ok(20));
        assert_eq!(w.latency(), Some(MS * 15));
        w.record(t, Failure);
        assert_eq!(w.latency(), Some(MS * 15));
        w.record(t, ok(60)); // 10 leaves: 20, F, 60
        assert_eq!(w.latency(), Some(MS * 40));
        w.record(t, Failure); // F, 60, F
        w.record(t, Failure); // 60, F, F
        assert_eq!(w.latency(), Some(MS * 60));
        w.record(t, Failure);
        assert_eq!(w.latency(), None);
        assert_eq!(w.counts(), (3, 3));
    }

    #[test]
    fn sample_size_one_follows_the_last_probe() {
        let t = Instant::now();
        let mut w = HealthWindow::new(1, 1);
        assert_eq!(w.record(t, Failure), Some(false));
        assert_eq!(w.record(t, ok(1)), Some(true));
    }

    #[test]
    fn an_origin_added_by_a_reload_waits_for_its_first_good_probe() {
        let t = Instant::now();
        let mut w = HealthWindow::awaiting_first_success(4, 3);
        assert!(!w.is_healthy());
        assert_eq!(w.record(t, Failure), None); // F: still waiting
        assert!(w.is_awaiting_first_success());
        assert_eq!(w.record(t, ok(7)), Some(true)); // F S: one failure is tolerated
        assert!(!w.is_awaiting_first_success());
        assert_eq!(w.latency(), Some(MS * 7));
        assert_eq!(w.record(t, Failure), Some(false)); // F S F: the usual rule from here
    }

    #[test]
    fn resizing_keeps_the_most_recent_probes() {
        let t = Instant::now();
        let mut w = HealthWindow::new(4, 3);
        for r in [ok(10), Failure, ok(20), ok(30)] {
            w.record(t, r);
        }
        let small = w.resized(2, 1);
        assert_eq!(small.counts(), (0, 2));
        assert_eq!(small.latency(), Some(MS * 25));
        assert_eq!(small.last(), w.last());
        let big = w.resized(6, 6);
        assert_eq!(big.counts(), (1, 4));
        assert!(!big.is_healthy(), "6 of 6 required tolerates no failure");
        let same = w.resized(4, 3);
        assert_eq!((same.counts(), same.latency()), (w.counts(), w.latency()));
        let pending = HealthWindow::awaiting_first_success(4, 3).resized(2, 2);
        assert!(pending.is_awaiting_first_success());
    }

    #[test]
    fn last_probe_is_remembered_with_its_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut w = HealthWindow::new(4, 3);
        w.record(t0, ok(3));
        w.record(t1, Failure);
        assert_eq!(w.last(), Some((t1, Failure)));
    }
}
