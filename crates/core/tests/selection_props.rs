//! Property tests of origin selection: the invariants hold for any pool state.

use portico_core::selection::{Candidate, band, next_rand, select};
use proptest::prelude::*;
use std::time::Duration;

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        1u8..=5,
        1u32..=1000,
        prop::option::weighted(0.8, 0u64..300),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(priority, weight, latency, enabled, healthy, ejected)| Candidate {
                priority,
                weight,
                share: 1000,
                latency: latency.map(Duration::from_millis),
                enabled,
                healthy,
                ejected,
            },
        )
}

fn usable(c: &Candidate) -> bool {
    c.enabled && c.healthy && !c.ejected
}

proptest! {
    #[test]
    fn invariants_hold(
        cands in prop::collection::vec(candidate(), 1..12),
        sensitivity_ms in 0u64..200,
        exclude in any::<u64>(),
        rand in any::<u64>(),
    ) {
        let sensitivity = Duration::from_millis(sensitivity_ms);
        let exclude = exclude & !(u64::MAX << cands.len()) & if rand % 3 == 0 { 0 } else { u64::MAX };
        let open = |i: usize| exclude & (1 << i) == 0;
        let picked = select(&cands, sensitivity, exclude, rand);
        let any_enabled = cands.iter().enumerate().any(|(i, c)| open(i) && c.enabled);
        prop_assert_eq!(picked.is_some(), any_enabled, "something is picked iff an enabled origin is left");
        let Some(p) = picked else { return Ok(()); };
        let chosen = &cands[p];
        prop_assert!(open(p), "never an origin already tried");
        prop_assert!(chosen.enabled, "never a disabled origin");

        let healthy: Vec<usize> = (0..cands.len()).filter(|&i| open(i) && usable(&cands[i])).collect();
        if !healthy.is_empty() {
            prop_assert!(usable(chosen), "never an unhealthy or ejected origin while a healthy one exists");
        }
        let tier: Vec<usize> = if healthy.is_empty() {
            (0..cands.len()).filter(|&i| open(i) && cands[i].enabled).collect()
        } else {
            healthy
        };
        let top = tier.iter().map(|&i| cands[i].priority).min().unwrap();
        prop_assert_eq!(chosen.priority, top, "never a higher priority number while a lower one is available");
        let fastest = tier.iter().filter(|&&i| cands[i].priority == top).filter_map(|&i| cands[i].latency).min();
        if let (Some(f), Some(l)) = (fastest, chosen.latency) {
            prop_assert!(l <= f + sensitivity, "never outside the latency band: {:?} > {:?} + {:?}", l, f, sensitivity);
        }
    }

    #[test]
    fn long_run_shares_follow_weights(
        weights in prop::collection::vec(1u32..=1000, 2..5),
        seed in any::<u64>(),
    ) {
        let cands: Vec<Candidate> = weights.iter().map(|&weight| Candidate {
            priority: 1, weight, share: 1000, latency: Some(Duration::from_millis(5)),
            enabled: true, healthy: true, ejected: false,
        }).collect();
        prop_assert_eq!(band(&cands, Duration::ZERO, 0).count_ones() as usize, cands.len());
        let draws = 40_000u32;
        let mut counts = vec![0u32; cands.len()];
        let mut r = seed;
        for _ in 0..draws {
            r = next_rand(r);
            counts[select(&cands, Duration::ZERO, 0, r).unwrap()] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let expected = f64::from(w) / f64::from(total);
            let seen = f64::from(counts[i]) / f64::from(draws);
            // About 8 standard deviations at 40k draws: a real bias fails, chance does not.
            prop_assert!((seen - expected).abs() < 0.02, "origin {} weight {}: share {:.4}, expected {:.4}", i, w, seen, expected);
        }
    }
}
