//! Anycast announcement of one edge node: withdrawn once it has been unhealthy for the withdrawal delay (BGP with BFD), announced again as soon as it is healthy.

use std::time::{Duration, Instant};

/// Whether one node is announced to the clients of every region. A pure state machine: time
/// is passed in, nothing here reads the clock.
#[derive(Debug, Clone)]
pub struct Announcement {
    withdraw_after: Duration,
    unhealthy_since: Option<Instant>,
}

impl Announcement {
    /// A node starts announced.
    pub fn new(withdraw_after: Duration) -> Self {
        Announcement {
            withdraw_after,
            unhealthy_since: None,
        }
    }

    /// Records one health check at `now` (`/healthz` 200 = healthy; 503, an error or no
    /// answer = not). The first failure after a success starts the withdrawal clock; a
    /// success stops it and announces the node again at once.
    pub fn record(&mut self, now: Instant, healthy: bool) {
        if healthy {
            self.unhealthy_since = None;
        } else if self.unhealthy_since.is_none() {
            self.unhealthy_since = Some(now);
        }
    }

    /// Whether clients are sent to this node at `now`: healthy at the last check, or
    /// unhealthy for less than the withdrawal delay.
    pub fn announced(&self, now: Instant) -> bool {
        match self.unhealthy_since {
            None => true,
            Some(since) => now.saturating_duration_since(since) < self.withdraw_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdraws_exactly_at_the_delay_and_returns_at_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut a = Announcement::new(Duration::from_millis(1000));
        a.record(ms(0), true);
        assert!(a.announced(ms(0)));
        a.record(ms(100), false);
        assert!(a.announced(ms(100)), "first failure only starts the clock");
        a.record(ms(600), false);
        assert!(a.announced(ms(600)));
        assert!(a.announced(ms(1099)));
        assert!(!a.announced(ms(1100)), "1000 ms after the first failure");
        a.record(ms(1200), false);
        assert!(
            !a.announced(ms(1250)),
            "later failures do not restart the clock"
        );
        a.record(ms(1300), true);
        assert!(
            a.announced(ms(1300)),
            "announced again on the first success"
        );
    }

    #[test]
    fn a_healthy_check_resets_the_clock() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut a = Announcement::new(Duration::from_millis(1000));
        a.record(ms(0), false);
        a.record(ms(900), true);
        a.record(ms(1000), false);
        assert!(a.announced(ms(1900)));
        a.record(ms(1900), false);
        assert!(a.announced(ms(1999)));
        assert!(!a.announced(ms(2000)));
    }

    #[test]
    fn zero_delay_withdraws_on_the_first_failure() {
        let t0 = Instant::now();
        let mut a = Announcement::new(Duration::ZERO);
        a.record(t0, false);
        assert!(!a.announced(t0));
    }

    #[test]
    fn a_new_node_is_announced_forever_without_checks() {
        let t0 = Instant::now();
        let a = Announcement::new(Duration::from_millis(10));
        assert!(a.announced(t0 + Duration::from_secs(3600)));
    }
}
