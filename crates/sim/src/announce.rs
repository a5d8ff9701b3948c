//! Anycast announcement of one edge node: withdrawn after it has been unhealthy for the
//! withdrawal delay (BGP with BFD), announced again as soon as it is healthy.

use std::time::{Duration, Instant};

/// Whether one node is announced to the clients of every region.
#[derive(Debug, Clone)]
pub struct Announcement {
    withdraw_after: Duration,
    unhealthy_since: Option<Instant>,
    announced: bool,
}

impl Announcement {
    /// A node starts announced.
    pub fn new(withdraw_after: Duration) -> Self {
        Announcement {
            withdraw_after,
            unhealthy_since: None,
            announced: true,
        }
    }

    /// Records one health check (`/healthz` 200 = healthy; 503, an error or no answer = not).
    /// Returns `Some(announced)` when the announcement changes.
    pub fn record(&mut self, now: Instant, healthy: bool) -> Option<bool> {
        let before = self.announced;
        if healthy {
            self.unhealthy_since = None;
            self.announced = true;
        } else {
            let since = *self.unhealthy_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.withdraw_after {
                self.announced = false;
            }
        }
        (before != self.announced).then_some(self.announced)
    }

    /// Whether clients are sent to this node.
    pub fn announced(&self) -> bool {
        self.announced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdraws_only_after_the_delay_and_returns_at_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut a = Announcement::new(Duration::from_millis(1000));
        assert_eq!(a.record(ms(0), true), None);
        assert_eq!(
            a.record(ms(100), false),
            None,
            "first failure starts the clock"
        );
        assert_eq!(a.record(ms(600), false), None);
        assert!(a.announced());
        assert_eq!(
            a.record(ms(1100), false),
            Some(false),
            "1000 ms after the first failure"
        );
        assert_eq!(a.record(ms(1200), false), None);
        assert_eq!(a.record(ms(1300), true), Some(true));
    }

    #[test]
    fn a_healthy_check_resets_the_clock() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut a = Announcement::new(Duration::from_millis(1000));
        a.record(ms(0), false);
        a.record(ms(900), true);
        assert_eq!(a.record(ms(1000), false), None);
        assert_eq!(a.record(ms(1900), false), None);
        assert_eq!(a.record(ms(2000), false), Some(false));
    }

    #[test]
    fn zero_delay_withdraws_on_the_first_failure() {
        let mut a = Announcement::new(Duration::ZERO);
        assert_eq!(a.record(Instant::now(), false), Some(false));
    }
}
