//! Exponential backoff for reconnecting: 100 ms doubling to 2 s, with a little jitter.

use std::time::Duration;

/// The first delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest delay between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Delays between reconnection attempts: [`BACKOFF_MIN`], doubling up to [`BACKOFF_MAX`];
/// [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// Starts at [`BACKOFF_MIN`].
    pub(crate) fn new() -> Self {
        Backoff { next: BACKOFF_MIN }
    }

    /// The delay to wait now (plus up to 10% jitter, so that many nodes do not retry in step);
    /// doubles the next one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let jitter_ms = fastrand::u64(0..=(base.as_millis() as u64 / 10));
        base + Duration::from_millis(jitter_ms)
    }

    /// Back to [`BACKOFF_MIN`] after a success.
    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        for base in [100u64, 200, 400, 800, 1600, 2000, 2000, 2000] {
            let d = b.next_delay();
            let base = Duration::from_millis(base);
            assert!(d >= base && d <= base + base / 10, "{d:?} for {base:?}");
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(111));
    }
}
