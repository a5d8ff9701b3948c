//! Passive ejection (outlier detection): consecutive live failures take an origin out for a
//! while; it comes back once that time has passed and a probe succeeds.

use crate::config::EjectionConfig;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
struct Outlier {
    consecutive_failures: u32,
    /// Set while ejected: the earliest time the origin may return.
    ejected_until: Option<Instant>,
    /// Ejections in the current streak; the n-th lasts n × base.
    streak: u32,
    /// When the origin last returned, to forget old streaks.
    returned_at: Option<Instant>,
}

/// What a recorded outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionEvent {
    /// The origin was ejected until the given time (then it waits for a good probe).
    Ejected {
        /// End of the ejection time.
        until: Instant,
        /// How long this ejection lasts.
        duration: Duration,
    },
    /// The origin came back after its ejection time and a successful probe.
    Returned,
}

/// Outlier state of every origin of one pool.
#[derive(Debug, Clone)]
pub struct Ejector {
    policy: EjectionConfig,
    origins: Vec<Outlier>,
    /// Enabled origins; disabled ones never take part.
    enabled: Vec<bool>,
}

impl Ejector {
    /// State for a pool whose origins are enabled as given.
    pub fn new(policy: EjectionConfig, enabled: Vec<bool>) -> Self {
        Self {
            policy,
            origins: vec![Outlier::default(); enabled.len()],
            enabled,
        }
    }

    /// State for a pool after a reload: origin `i` of the new pool takes over the outlier
    /// state of origin `carried[i]` of `old` (an ejected origin stays ejected, with its
    /// streak); origins without one start clean. The new policy applies from now on.
    pub fn carried(
        policy: EjectionConfig,
        enabled: Vec<bool>,
        old: &Ejector,
        carried: &[Option<usize>],
    ) -> Self {
        let origins = (0..enabled.len())
            .map(|i| {
                carried
                    .get(i)
                    .copied()
                    .flatten()
                    .and_then(|o| old.origins.get(o).cloned())
                    .unwrap_or_default()
            })
            .collect();
        Self {
            policy,
            origins,
            enabled,
        }
    }

    /// Whether `idx` is ejected.
    pub fn is_ejected(&self, idx: usize) -> bool {
        self.origins
            .get(idx)
            .is_some_and(|o| o.ejected_until.is_some())
    }

    /// How many origins are ejected now.
    pub fn ejected_count(&self) -> usize {
        self.origins
            .iter()
            .filter(|o| o.ejected_until.is_some())
            .count()
    }

    /// The most origins that may be ejected at once: the configured share of the enabled ones,
    /// at least one, and never all of them.
    pub fn max_ejected(&self) -> usize {
        let n = self.enabled.iter().filter(|&&e| e).count();
        let share = n * self.policy.max_ejected_percent as usize / 100;
        share.max(1).min(n.saturating_sub(1))
    }

    /// Records the outcome of a live request to `idx` (`success` false for a connect error,
    /// a timeout or a 5xx). Ejects the origin when the failures in a row reach the threshold
    /// and the pool can spare it.
    pub fn record(&mut self, now: Instant, idx: usize, success: bool) -> Option<EjectionEvent> {
        if !self.policy.enabled || !self.enabled.get(idx).copied().unwrap_or(false) {
            return None;
        }
        let max_ejected = self.max_ejected();
        let ejected = self.ejected_count();
        let policy = self.policy;
        let o = &mut self.origins[idx];
        if success {
            o.consecutive_failures = 0;
            return None;
        }
        o.consecutive_failures = o.consecutive_failures.saturating_add(1);
        if o.ejected_until.is_some()
            || o.consecutive_failures < policy.consecutive_failures
            || ejected >= max_ejected
        {
            return None;
        }
        // A streak is forgotten once the origin stayed in for the longest ejection time.
        if o.returned_at
            .is_some_and(|r| now.saturating_duration_since(r) >= policy.max_ejection)
        {
            o.streak = 0;
        }
        o.streak = o.streak.saturating_add(1);
        let duration = policy
            .base_ejection
            .saturating_mul(o.streak)
            .min(policy.max_ejection);
        let until = now + duration;
        o.ejected_until = Some(until);
        o.consecutive_failures = 0;
        Some(EjectionEvent::Ejected { until, duration })
    }

    /// Records a probe of `idx`: an ejected origin whose time is over returns on a success.
    pub fn record_probe(
        &mut self,
        now: Instant,
        idx: usize,
        success: bool,
    ) -> Option<EjectionEvent> {
        let o = self.origins.get_mut(idx)?;
        match o.ejected_until {
            Some(until) if success && now >= until => {
                o.ejected_until = None;
                o.returned_at = Some(now);
                Some(EjectionEvent::Returned)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> EjectionConfig {
        EjectionConfig {
            enabled: true,
            consecutive_failures: 3,
            base_ejection: S * 10,
            max_ejection: S * 25,
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let t = Instant::now();
        let mut e = Ejector::new(policy(), vec![true, true]);
        assert_eq!(e.record(t, 0, false), None);
        assert_eq!(e.record(t, 0, false), None);
        assert_eq!(e.record(t, 0, true), None);
        assert_eq!(e.record(t, 0, false), None);
        assert_eq!(e.record(t, 0, false), None);
        assert_eq!(
            e.record(t, 0, false),
            Some(EjectionEvent::Ejected {
                until: t + S * 10,
                duration: S * 10
            })
        );
        assert!(e.is_ejected(0));
        assert!(!e.is_ejected(1));
    }

    #[test]
    fn returns_only_after_the_time_and_a_good_probe() {
        let t = Instant::now();
        let mut e = Ejector::new(policy(), vec![true, true]);
        for _ in 0..3 {
            e.record(t, 0, false);
        }
        assert_eq!(e.record_probe(t + S * 5, 0, true), None); // too early
        assert_eq!(e.record_probe(t + S * 10, 0, false), None); // time over, probe failed
        assert!(e.is_ejected(0));
        assert_eq!(
            e.record_probe(t + S * 15, 0, true),
            Some(EjectionEvent::Returned)
        );
        assert!(!e.is_ejected(0));
    }

    #[test]
    fn repeated_ejections_grow_up_to_the_maximum() {
        let mut t = Instant::now();
        let mut e = Ejector::new(policy(), vec![true, true]);
        let mut durations = Vec::new();
        for _ in 0..4 {
            let mut event = None;
            for _ in 0..3 {
                event = e.record(t, 0, false);
            }
            let Some(EjectionEvent::Ejected { duration, until }) = event else {
                panic!("expected an ejection, got {event:?}");
            };
            durations.push(duration);
            t = until;
            assert_eq!(e.record_probe(t, 0, true), Some(EjectionEvent::Returned));
        }
        assert_eq!(durations, vec![S * 10, S * 20, S * 25, S * 25]);
    }

    #[test]
    fn streak_is_forgotten_after_staying_in_for_the_maximum() {
        let t = Instant::now();
        let mut e = Ejector::new(policy(), vec![true, true]);
        for _ in 0..3 {
            e.record(t, 0, false);
        }
        let back = t + S * 10;
        e.record_probe(back, 0, true);
        let later = back + S * 25;
        let mut event = None;
        for _ in 0..3 {
            event = e.record(later, 0, false);
        }
        assert_eq!(
            event,
            Some(EjectionEvent::Ejected {
                until: later + S * 10,
                duration: S * 10
            })
        );
    }

    #[test]
    fn never_ejects_past_the_share_and_keeps_one_origin() {
        let t = Instant::now();
        let mut e = Ejector::new(policy(), vec![true, true]);
        for _ in 0..3 {
            e.record(t, 0, false);
        }
        for _ in 0..10 {
            assert_eq!(e.record(t, 1, false), None);
        }
        assert_eq!(e.ejected_count(), 1);

        let single = Ejector::new(policy(), vec![true]);
        assert_eq!(single.max_ejected(), 0);
        let mut single = single;
        for _ in 0..10 {
            assert_eq!(single.record(t, 0, false), None);
        }

        // 10% of 5 origins rounds down to 0, but one may always go.
        let p = EjectionConfig {
            max_ejected_percent: 10,
            ..policy()
        };
        assert_eq!(Ejector::new(p, vec![true; 5]).max_ejected(), 1);
        // 100% still keeps one.
        let p = EjectionConfig {
            max_ejected_percent: 100,
            ..policy()
        };
        assert_eq!(Ejector::new(p, vec![true; 5]).max_ejected(), 4);
        // Disabled origins do not count.
        let p = EjectionConfig {
            max_ejected_percent: 100,
            ..policy()
        };
        assert_eq!(Ejector::new(p, vec![true, false, true]).max_ejected(), 1);
    }

    #[test]
    fn disabled_policy_and_disabled_origins_never_eject() {
        let t = Instant::now();
        let mut off = Ejector::new(
            EjectionConfig {
                enabled: false,
                ..policy()
            },
            vec![true, true],
        );
        for _ in 0..10 {
            assert_eq!(off.record(t, 0, false), None);
        }
        let mut e = Ejector::new(policy(), vec![false, true, true]);
        for _ in 0..10 {
            assert_eq!(e.record(t, 0, false), None);
        }
    }

    #[test]
    fn carried_state_follows_the_origin_to_its_new_position() {
        let t = Instant::now();
        let mut old = Ejector::new(policy(), vec![true, true, true]);
        for _ in 0..3 {
            old.record(t, 1, false);
        }
        old.record(t, 2, false);
        assert!(old.is_ejected(1));
        // New pool: [new origin, old #1, old #2]; old #0 was removed.
        let mut new = Ejector::carried(policy(), vec![true; 3], &old, &[None, Some(1), Some(2)]);
        assert!(!new.is_ejected(0));
        assert!(
            new.is_ejected(1),
            "an ejected origin stays ejected across a reload"
        );
        assert_eq!(new.ejected_count(), 1);
        // Old #2 had one failure in a row: two more eject it only if the share allows (50 % of 3 = 1).
        assert_eq!(new.record(t, 2, false), None);
        assert_eq!(new.record(t, 2, false), None);
        // Its return still needs the time over and a good probe.
        assert_eq!(new.record_probe(t, 1, true), None);
        assert_eq!(
            new.record_probe(t + S * 10, 1, true),
            Some(EjectionEvent::Returned)
        );
        // The streak came along: the next ejection of that origin lasts twice as long.
        for _ in 0..2 {
            new.record(t + S * 11, 1, false);
        }
        assert_eq!(
            new.record(t + S * 11, 1, false),
            Some(EjectionEvent::Ejected {
                until: t + S * 31,
                duration: S * 20
            })
        );
    }
}
