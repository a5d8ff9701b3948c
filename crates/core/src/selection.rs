//! Origin selection: healthy first, then lowest priority, then the latency band, then weight.
//!
//! Step 0, for pools with session affinity: a request pinned to an origin (by its affinity
//! cookie) goes there while the origin [holds its pin](pin_holds) — enabled, healthy, not
//! ejected, not tried yet by this request, and of the best priority present; the latency band
//! and the weights do not apply to it. Otherwise the steps below run as usual and the caller
//! re-pins the client to whichever origin answers ([`select_pinned`]).

use std::time::Duration;

/// What selection needs to know about one origin right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// 1–5, lower wins.
    pub priority: u8,
    /// Share of traffic among the origins of the band.
    pub weight: u32,
    /// Per mille of its weight the origin takes now: below 1000 while it ramps up after
    /// coming back (slow start), 1000 otherwise.
    pub share: u16,
    /// Mean probe round-trip time; `None` until a probe succeeded (counts as inside the band).
    pub latency: Option<Duration>,
    /// Disabled origins are never selected.
    pub enabled: bool,
    /// Verdict of the health window.
    pub healthy: bool,
    /// Taken out by passive ejection.
    pub ejected: bool,
}

/// Iterates over the set bits of a mask, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

/// The origins a request may go to, as a bit mask over `candidates` (at most 64):
/// 1. enabled origins not in `exclude` (tried already) that are healthy and not ejected;
///    when there is none, every enabled origin not in `exclude` (a pool is never emptied by
///    its probes alone);
/// 2. only the lowest priority value among them;
/// 3. only those whose latency is at most the fastest known latency + `sensitivity`
///    (an origin without a latency sample yet stays in).
pub fn band(candidates: &[Candidate], sensitivity: Duration, exclude: u64) -> u64 {
    let mut available = 0u64;
    let mut preferred = 0u64;
    for (i, c) in candidates.iter().enumerate().take(64) {
        if exclude & (1 << i) != 0 || !c.enabled {
            continue;
        }
        available |= 1 << i;
        if c.healthy && !c.ejected {
            preferred |= 1 << i;
        }
    }
    let tier = if preferred != 0 { preferred } else { available };
    // One pass for the lowest priority present, the origins that have it, and the fastest
    // known latency among them (this runs per request).
    let mut top = u8::MAX;
    let mut same = 0u64;
    let mut fastest: Option<Duration> = None;
    for i in bits(tier) {
        let c = &candidates[i];
        if c.priority < top {
            top = c.priority;
            same = 0;
            fastest = None;
        }
        if c.priority == top {
            same |= 1 << i;
            if let Some(l) = c.latency {
                fastest = Some(fastest.map_or(l, |f| f.min(l)));
            }
        }
    }
    let Some(fastest) = fastest else {
        return same;
    };
    let limit = fastest.saturating_add(sensitivity);
    bits(same)
        .filter(|&i| candidates[i].latency.is_none_or(|l| l <= limit))
        .fold(0u64, |m, i| m | 1 << i)
}

/// The weight an origin is drawn by: `weight` × `share` (per mille), at least 1.
fn drawn_weight(c: &Candidate) -> u64 {
    (u64::from(c.weight.max(1)) * u64::from(c.share.min(1000))).max(1)
}

/// Picks one origin of the [`band`] in proportion to weight × share, using `rand` (uniform
/// over u64).
pub fn select(
    candidates: &[Candidate],
    sensitivity: Duration,
    exclude: u64,
    rand: u64,
) -> Option<usize> {
    let band = band(candidates, sensitivity, exclude);
    let total: u64 = bits(band).map(|i| drawn_weight(&candidates[i])).sum();
    if total == 0 {
        return None;
    }
    let mut point = rand % total;
    for i in bits(band) {
        let w = drawn_weight(&candidates[i]);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

/// Step 0: whether a request pinned to origin `pinned` goes there. It does while the origin
/// is not in `exclude`, enabled, healthy, not ejected, and of the lowest priority value among
/// the origins that are all of those (a better-priority origin coming back takes the pinned
/// clients of a failover origin home). Latency and weight do not move a pin. An index out of
/// range (a pin to an origin since removed) never holds.
pub fn pin_holds(candidates: &[Candidate], pinned: usize, exclude: u64) -> bool {
    let usable = |i: usize, c: &Candidate| {
        i < 64 && exclude & (1 << i) == 0 && c.enabled && c.healthy && !c.ejected
    };
    let Some(pin) = candidates.get(pinned).filter(|c| usable(pinned, c)) else {
        return false;
    };
    candidates
        .iter()
        .enumerate()
        .take(64)
        .all(|(i, c)| !usable(i, c) || c.priority >= pin.priority)
}

/// [`select`] with step 0: `pinned` when it [holds](pin_holds), else the weighted pick of the
/// band (to which the caller re-pins the client).
pub fn select_pinned(
    candidates: &[Candidate],
    sensitivity: Duration,
    exclude: u64,
    pinned: Option<usize>,
    rand: u64,
) -> Option<usize> {
    match pinned {
        Some(p) if pin_holds(candidates, p, exclude) => Some(p),
        _ => select(candidates, sensitivity, exclude, rand),
    }
}

/// A new uniform value derived from `x` (SplitMix64 step), for drawing several picks from one seed.
pub fn next_rand(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn c(priority: u8, weight: u32, latency_ms: Option<u64>) -> Candidate {
        Candidate {
            priority,
            weight,
            share: 1000,
            latency: latency_ms.map(|l| MS * l as u32),
            enabled: true,
            healthy: true,
            ejected: false,
        }
    }

    #[test]
    fn latency_band_keeps_origins_within_sensitivity_of_fastest() {
        let cands = [c(1, 50, Some(1)), c(1, 50, Some(21)), c(1, 50, Some(121))];
        assert_eq!(band(&cands, MS * 50, 0), 0b011);
        assert_eq!(band(&cands, MS * 20, 0), 0b011); // 21 <= 1 + 20
        assert_eq!(band(&cands, MS * 19, 0), 0b001);
        assert_eq!(band(&cands, Duration::ZERO, 0), 0b001);
        assert_eq!(band(&cands, MS * 120, 0), 0b111);
    }

    #[test]
    fn priority_comes_before_latency() {
        let cands = [c(2, 50, Some(1)), c(1, 50, Some(100)), c(1, 50, Some(300))];
        assert_eq!(band(&cands, MS * 50, 0), 0b010);
    }

    #[test]
    fn unhealthy_and_ejected_and_disabled_are_skipped() {
        let mut cands = [
            c(1, 50, Some(1)),
            c(1, 50, Some(2)),
            c(2, 50, Some(3)),
            c(1, 50, Some(1)),
        ];
        cands[0].healthy = false;
        cands[1].ejected = true;
        cands[3].enabled = false;
        assert_eq!(band(&cands, MS * 50, 0), 0b0100);
    }

    #[test]
    fn no_healthy_origin_falls_back_to_all_enabled_by_priority() {
        let mut cands = [
            c(2, 50, Some(1)),
            c(1, 50, None),
            c(1, 50, Some(5)),
            c(1, 50, Some(1)),
        ];
        for x in &mut cands {
            x.healthy = false;
        }
        cands[3].enabled = false;
        assert_eq!(band(&cands, MS * 50, 0), 0b0110);
    }

    #[test]
    fn unknown_latency_stays_in_band() {
        let cands = [c(1, 50, Some(1)), c(1, 50, None), c(1, 50, Some(500))];
        assert_eq!(band(&cands, MS * 10, 0), 0b011);
        let fresh = [c(1, 50, None), c(1, 50, None)];
        assert_eq!(band(&fresh, Duration::ZERO, 0), 0b11);
    }

    #[test]
    fn excluded_origins_are_not_candidates_and_band_is_recomputed() {
        let cands = [c(1, 50, Some(1)), c(1, 50, Some(40)), c(1, 50, Some(80))];
        assert_eq!(band(&cands, MS * 50, 0), 0b011);
        // With the fastest tried, the band starts from the next fastest.
        assert_eq!(band(&cands, MS * 50, 0b001), 0b110);
        assert_eq!(band(&cands, MS * 50, 0b111), 0);
        assert_eq!(select(&cands, MS * 50, 0b111, 7), None);
    }

    #[test]
    fn tried_healthy_origins_fall_back_to_unhealthy_ones() {
        let mut cands = [c(1, 50, Some(1)), c(1, 50, Some(1))];
        cands[1].healthy = false;
        assert_eq!(band(&cands, MS * 50, 0), 0b01);
        assert_eq!(band(&cands, MS * 50, 0b01), 0b10);
    }

    #[test]
    fn weighted_pick_walks_cumulative_weights() {
        // Weights count in thousandths (weight × share per mille): 1000 and 3000 here.
        let cands = [c(1, 1, Some(1)), c(1, 3, Some(1))];
        assert_eq!(select(&cands, MS, 0, 0), Some(0));
        assert_eq!(select(&cands, MS, 0, 999), Some(0));
        assert_eq!(select(&cands, MS, 0, 1000), Some(1));
        assert_eq!(select(&cands, MS, 0, 3999), Some(1));
        assert_eq!(select(&cands, MS, 0, 4000), Some(0));
    }

    #[test]
    fn a_share_below_full_scales_the_weight() {
        // Equal weights, the second at a tenth of its share (slow start): 1000 to 100.
        let mut cands = [c(1, 10, Some(1)), c(1, 10, Some(1))];
        cands[1].share = 100;
        let picks: Vec<_> = (0..11_000u64)
            .step_by(1000)
            .map(|r| select(&cands, MS, 0, r))
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == Some(1)).count(), 1);
        assert_eq!(picks.iter().filter(|p| **p == Some(0)).count(), 10);
        // A zero share still leaves the origin drawable (weight at least 1).
        cands[1].share = 0;
        assert_eq!(select(&cands, MS, 0, 10_000), Some(1));
    }

    /// The band as the selection rules state it, step by step (the reference for `band`).
    fn band_by_the_rules(candidates: &[Candidate], sensitivity: Duration, exclude: u64) -> u64 {
        let usable = |i: usize, c: &Candidate| exclude & (1 << i) == 0 && c.enabled;
        let healthy: Vec<usize> = (0..candidates.len().min(64))
            .filter(|&i| {
                usable(i, &candidates[i]) && candidates[i].healthy && !candidates[i].ejected
            })
            .collect();
        let tier: Vec<usize> = if healthy.is_empty() {
            (0..candidates.len().min(64))
                .filter(|&i| usable(i, &candidates[i]))
                .collect()
        } else {
            healthy
        };
        let Some(top) = tier.iter().map(|&i| candidates[i].priority).min() else {
            return 0;
        };
        let tier: Vec<usize> = tier
            .into_iter()
            .filter(|&i| candidates[i].priority == top)
            .collect();
        let fastest = tier.iter().filter_map(|&i| candidates[i].latency).min();
        tier.into_iter()
            .filter(|&i| match (fastest, candidates[i].latency) {
                (Some(f), Some(l)) => l <= f.saturating_add(sensitivity),
                _ => true,
            })
            .fold(0, |m, i| m | 1 << i)
    }

    proptest::proptest! {
        #[test]
        fn band_follows_the_rules(
            raw in proptest::collection::vec(
                (1u8..=3, 1u32..=5, proptest::option::of(0u64..=40), proptest::bool::weighted(0.9),
                 proptest::bool::weighted(0.7), proptest::bool::weighted(0.1)),
                0..70,
            ),
            sensitivity in 0u64..=20,
            exclude in proptest::num::u64::ANY,
        ) {
            let cands: Vec<Candidate> = raw
                .iter()
                .map(|&(priority, weight, latency, enabled, healthy, ejected)| Candidate {
                    priority,
                    weight,
                    share: 1000,
                    latency: latency.map(Duration::from_millis),
                    enabled,
                    healthy,
                    ejected,
                })
                .collect();
            let s = MS * sensitivity as u32;
            for ex in [0, exclude] {
                proptest::prop_assert_eq!(band(&cands, s, ex), band_by_the_rules(&cands, s, ex));
            }
        }
    }

    #[test]
    fn a_pin_holds_outside_the_latency_band_and_against_weight() {
        // The pinned origin is slow and light: selection alone would never pick it.
        let cands = [c(1, 1000, Some(1)), c(1, 1, Some(500))];
        assert_eq!(band(&cands, MS * 10, 0), 0b01);
        assert!(pin_holds(&cands, 1, 0));
        for r in [0, 1, 999, u64::MAX] {
            assert_eq!(select_pinned(&cands, MS * 10, 0, Some(1), r), Some(1));
        }
    }

    #[test]
    fn a_pin_breaks_when_its_origin_is_down_or_tried_or_outranked_or_gone() {
        let base = [c(1, 50, Some(1)), c(1, 50, Some(1)), c(2, 50, Some(1))];
        let broken = |f: &dyn Fn(&mut [Candidate; 3]), pinned: usize, exclude: u64| {
            let mut cands = base;
            f(&mut cands);
            !pin_holds(&cands, pinned, exclude)
        };
        assert!(!broken(&|_| {}, 1, 0));
        assert!(broken(&|x| x[1].ejected = true, 1, 0));
        assert!(broken(&|x| x[1].healthy = false, 1, 0));
        assert!(broken(&|x| x[1].enabled = false, 1, 0));
        assert!(broken(&|_| {}, 1, 0b010), "tried by this request");
        assert!(broken(&|_| {}, 2, 0), "a better priority is present");
        assert!(broken(&|_| {}, 3, 0), "the origin was removed");
        // The failover origin holds its pin while the better ones are down.
        assert!(!broken(
            &|x| {
                x[0].healthy = false;
                x[1].ejected = true
            },
            2,
            0
        ));
        // A broken pin falls back to plain selection.
        let mut cands = base;
        cands[1].ejected = true;
        assert_eq!(select_pinned(&cands, MS, 0, Some(1), 7), Some(0));
        assert_eq!(
            select_pinned(&cands, MS, 0, None, 7),
            select(&cands, MS, 0, 7)
        );
    }

    #[test]
    fn no_pin_holds_in_a_pool_without_a_healthy_origin() {
        let mut cands = [c(1, 50, Some(1)), c(1, 50, Some(1))];
        cands[0].healthy = false;
        cands[1].healthy = false;
        assert!(!pin_holds(&cands, 0, 0));
        // Selection still answers (the pool is never emptied by its probes alone).
        assert!(select_pinned(&cands, MS, 0, Some(0), 3).is_some());
    }

    proptest::proptest! {
        #[test]
        fn a_pin_is_step_zero_of_selection(
            raw in proptest::collection::vec(
                (1u8..=3, 1u32..=5, proptest::option::of(0u64..=40), proptest::bool::weighted(0.9),
                 proptest::bool::weighted(0.7), proptest::bool::weighted(0.1)),
                0..70,
            ),
            pinned in proptest::option::of(0usize..80),
            exclude in proptest::num::u64::ANY,
            rand in proptest::num::u64::ANY,
        ) {
            let cands: Vec<Candidate> = raw
                .iter()
                .map(|&(priority, weight, latency, enabled, healthy, ejected)| Candidate {
                    priority,
                    weight,
                    share: 1000,
                    latency: latency.map(Duration::from_millis),
                    enabled,
                    healthy,
                    ejected,
                })
                .collect();
            for ex in [0, exclude] {
                let got = select_pinned(&cands, MS * 10, ex, pinned, rand);
                match pinned.filter(|&p| pin_holds(&cands, p, ex)) {
                    Some(p) => {
                        // The pin holds: that origin, which the rules allow (healthy, usable,
                        // of the priority the band is drawn from).
                        proptest::prop_assert_eq!(got, Some(p));
                        let c = cands[p];
                        proptest::prop_assert!(c.enabled && c.healthy && !c.ejected);
                        proptest::prop_assert!(ex & (1 << p) == 0);
                        let b = band(&cands, MS * 10, ex);
                        proptest::prop_assert!(bits(b).all(|i| cands[i].priority == c.priority));
                    }
                    // Broken or absent: exactly what selection alone picks.
                    None => proptest::prop_assert_eq!(got, select(&cands, MS * 10, ex, rand)),
                }
            }
        }
    }

    #[test]
    fn next_rand_is_deterministic_and_moves() {
        assert_eq!(next_rand(1), next_rand(1));
        assert_ne!(next_rand(1), next_rand(2));
        assert_ne!(next_rand(0), 0);
    }
}
