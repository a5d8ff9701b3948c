//! Per-node rate limiting: GCRA (the generic cell rate algorithm, a token bucket kept as one
//! timestamp per key) in a map whose memory is bounded.
//!
//! A key's state is its theoretical arrival time (TAT). A request at `now` is allowed when
//! `max(TAT, now) + T − now ≤ burst·T` (`T` = 1 / `requests_per_second`), and then
//! `TAT = max(TAT, now) + T`: `burst` requests pass at once from a full bucket, then one per
//! `T`. A key whose TAT has passed is exactly a key never seen (its bucket is full), so it is
//! dropped without losing anything: that is how keys expire.
//!
//! Memory: keys are 128-bit (an address, or a keyed hash of a header value or route name), at
//! most [`MAX_KEYS`] per limiter, in [`SHARDS`] maps. A shard that is full first drops its
//! expired keys; if that frees less than a quarter of it, it also drops the keys closest to a
//! full bucket (the lowest TATs: the least state lost) until a quarter is free. Each sweep
//! frees a quarter of a shard, so the cost per new key stays constant, and a flood of
//! distinct keys cannot grow memory past the cap, nor push out a client that has used up its
//! bucket (its TAT is the highest) before the flood's own one-request keys.
//!
//! Time is passed in as nanoseconds since any fixed instant.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Most keys one limiter holds.
pub const MAX_KEYS: usize = 65_536;

/// Maps a limiter's keys are split over (lock contention, sweep size).
pub const SHARDS: usize = 16;

/// A rate limiter: a GCRA bucket per key, memory bounded.
#[derive(Debug)]
pub struct RateLimiter {
    /// `T`: nanoseconds between requests at the sustained rate.
    interval: u64,
    /// `burst·T`: how far ahead of now a key's TAT may run.
    tolerance: u64,
    burst: u32,
    requests_per_second: f64,
    /// Keys one shard holds at most.
    shard_cap: usize,
    shards: Box<[Mutex<HashMap<u128, u64>>]>,
    /// Keys the hash of header values and route names (so nobody can aim at a collision).
    hasher: std::collections::hash_map::RandomState,
}

/// What the limiter said of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `remaining` more would be allowed right now.
    Allowed {
        /// Requests still allowed at once.
        remaining: u32,
        /// Seconds until the bucket is full again (rounded up).
        reset_secs: u64,
    },
    /// Over the limit: try again after `retry_after_secs` (rounded up, at least 1).
    Limited {
        /// Seconds until a request would be allowed.
        retry_after_secs: u64,
    },
}

/// The key of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A client address (IPv4 as its IPv4-mapped IPv6 form).
    Ip(IpAddr),
    /// Bytes (a header value, a route name), kept as a keyed 128-bit hash.
    Bytes(&'a [u8]),
}

impl RateLimiter {
    /// A limiter of `requests_per_second` (above 0) per key with `burst` (at least 1) at once,
    /// holding at most `max_keys` keys (at least [`SHARDS`]).
    pub fn new(requests_per_second: f64, burst: u32, max_keys: usize) -> Self {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        let interval = ((1e9 / rate).round() as u64).max(1);
        let burst = burst.max(1);
        let shard_cap = max_keys.div_ceil(SHARDS).max(1);
        RateLimiter {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst)),
            burst,
            requests_per_second: rate,
            shard_cap,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The sustained rate per key.
    pub fn requests_per_second(&self) -> f64 {
        self.requests_per_second
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The `RateLimit-Policy` window: the seconds a full bucket takes to refill (at least 1).
    pub fn window_secs(&self) -> u64 {
        secs_up(self.tolerance).max(1)
    }

    fn key(&self, key: Key<'_>) -> u128 {
        match key {
            Key::Ip(IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
            Key::Ip(IpAddr::V6(v6)) => u128::from(v6),
            Key::Bytes(b) => {
                let lo = self.hasher.hash_one(b);
                let hi = self.hasher.hash_one((b, 0x9e37_79b9_u32));
                (u128::from(hi) << 64) | u128::from(lo)
            }
        }
    }

    /// Counts a request of `key` at `now` (nanoseconds) and says whether it may pass.
    pub fn check(&self, key: Key<'_>, now: u64) -> Verdict {
        let k = self.key(key);
        let shard = &self.shards[(fold(k) % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = map.get(&k).copied().unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(self.interval);
        if new_tat - now > self.tolerance {
            let wait = new_tat - now - self.tolerance;
            return Verdict::Limited {
                retry_after_secs: secs_up(wait).max(1),
            };
        }
        if !map.contains_key(&k) && map.len() >= self.shard_cap {
            make_room(&mut map, now, self.shard_cap);
        }
        map.insert(k, new_tat);
        let ahead = new_tat - now;
        Verdict::Allowed {
            remaining: ((self.tolerance - ahead) / self.interval).min(u64::from(u32::MAX)) as u32,
            reset_secs: secs_up(ahead),
        }
    }

    /// Keys held now, and the bytes their tables have allocated (an estimate: hashbrown's
    /// buckets, a power of two holding 8/7 of the capacity, times a key, its TAT and a
    /// control byte).
    pub fn footprint(&self) -> (usize, usize) {
        let slot = std::mem::size_of::<(u128, u64)>() + 1;
        self.shards.iter().fold((0, 0), |(keys, bytes), s| {
            let map = s.lock().unwrap_or_else(PoisonError::into_inner);
            let buckets = match map.capacity() {
                0 => 0,
                c => (c * 8 / 7).next_power_of_two(),
            };
            (keys + map.len(), bytes + buckets * slot)
        })
    }
}

/// Drops expired keys; if less than a quarter of `cap` is then free, drops the keys with the
/// lowest TATs until it is. The table is then rebuilt for `cap` keys (removals leave
/// tombstones that would make it grow), so it never grows past that size.
fn make_room(map: &mut HashMap<u128, u64>, now: u64, cap: usize) {
    map.retain(|_, tat| *tat > now);
    drop_lowest(map, cap - cap.div_ceil(4));
    let mut fresh = HashMap::with_capacity(cap);
    fresh.extend(map.drain());
    *map = fresh;
}

/// Drops the keys with the lowest TATs until `target` are left.
fn drop_lowest(map: &mut HashMap<u128, u64>, target: usize) {
    if map.len() <= target {
        return;
    }
    let mut tats: Vec<u64> = map.values().copied().collect();
    let excess = map.len() - target;
    let (_, &mut cut, _) = tats.select_nth_unstable(excess - 1);
    let mut left = excess;
    map.retain(|_, tat| {
        if left > 0 && *tat <= cut {
            left -= 1;
            false
        } else {
            true
        }
    });
}

/// Nanoseconds as whole seconds, rounded up.
fn secs_up(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

fn fold(k: u128) -> u64 {
    // Mix so that addresses differing only in their low bits spread over shards.
    let x = (k as u64) ^ ((k >> 64) as u64);
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn ip(s: &str) -> Key<'static> {
        Key::Ip(s.parse().unwrap())
    }

    #[test]
    fn a_full_bucket_lets_burst_through_then_one_per_interval() {
        let l = RateLimiter::new(10.0, 5, MAX_KEYS);
        let a = ip("192.0.2.1");
        let t0 = 1000 * SEC;
        let verdicts: Vec<Verdict> = (0..6).map(|_| l.check(a, t0)).collect();
        assert_eq!(
            verdicts[..5]
                .iter()
                .map(|v| match v {
                    Verdict::Allowed { remaining, .. } => *remaining,
                    Verdict::Limited { .. } => 99,
                })
                .collect::<Vec<_>>(),
            [4, 3, 2, 1, 0]
        );
        assert_eq!(
            verdicts[5],
            Verdict::Limited {
                retry_after_secs: 1
            }
        );
        // 100 ms later one more has dripped in, not two.
        let t1 = t0 + SEC / 10;
        assert!(matches!(l.check(a, t1), Verdict::Allowed { .. }));
        assert!(matches!(l.check(a, t1), Verdict::Limited { .. }));
        // Another client is untouched.
        assert!(matches!(
            l.check(ip("192.0.2.2"), t1),
            Verdict::Allowed { remaining: 4, .. }
        ));
        assert_eq!(l.window_secs(), 1);
    }

    #[test]
    fn over_a_long_run_the_rate_is_the_limit() {
        // A client sending 3x the limit for 5 s gets burst + 5 s worth.
        let l = RateLimiter::new(20.0, 20, MAX_KEYS);
        let a = ip("2001:db8::1");
        let allowed = (0..300u64)
            .filter(|i| matches!(l.check(a, i * 5 * SEC / 300), Verdict::Allowed { .. }))
            .count();
        assert!((119..=121).contains(&allowed), "{allowed}");
    }

    #[test]
    fn retry_after_says_when_the_next_request_passes() {
        let l = RateLimiter::new(0.5, 1, MAX_KEYS);
        let a = Key::Bytes(b"token-1");
        assert!(matches!(l.check(a, 0), Verdict::Allowed { .. }));
        let Verdict::Limited { retry_after_secs } = l.check(a, SEC / 2) else {
            panic!("not limited");
        };
        assert_eq!(retry_after_secs, 2);
        assert!(matches!(l.check(a, 2 * SEC), Verdict::Allowed { .. }));
        assert_eq!(l.window_secs(), 2);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_under_the_cap_and_spares_the_busy_client() {
        let cap = 4096;
        let l = RateLimiter::new(1.0, 3, cap);
        let busy = ip("198.51.100.7");
        for _ in 0..3 {
            assert!(matches!(l.check(busy, 0), Verdict::Allowed { .. }));
        }
        for i in 0..100_000u32 {
            let key = i.to_be_bytes();
            assert!(matches!(
                l.check(Key::Bytes(&key), u64::from(i)),
                Verdict::Allowed { .. }
            ));
            let (keys, _) = l.footprint();
            assert!(keys <= cap, "{keys} keys after {i}");
        }
        // The client that used up its bucket is still limited: the flood did not reset it.
        assert!(matches!(l.check(busy, 100_000), Verdict::Limited { .. }));
        let (keys, bytes) = l.footprint();
        assert!(
            bytes <= cap * 2 * 33 + SHARDS * 64,
            "{keys} keys in {bytes} bytes"
        );
    }

    /// The bound at the real cap: a million distinct client addresses in one second (none
    /// expired) leave at most [`MAX_KEYS`] keys; prints what they hold.
    #[test]
    fn a_million_distinct_clients_stay_within_the_cap() {
        let l = RateLimiter::new(10.0, 20, MAX_KEYS);
        let mut most = (0, 0);
        for i in 0..1_000_000u128 {
            let addr = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i);
            l.check(Key::Ip(IpAddr::V6(addr)), i as u64 * 1000);
            if i % 50_000 == 0 {
                let f = l.footprint();
                most = (most.0.max(f.0), most.1.max(f.1));
            }
        }
        let (keys, bytes) = l.footprint();
        println!(
            "1000000 distinct keys: {keys} kept, {bytes} bytes of tables ({} B/key); peak seen {} keys, {} bytes",
            bytes / keys.max(1),
            most.0,
            most.1
        );
        assert!(keys <= MAX_KEYS && most.0 <= MAX_KEYS);
        assert!(bytes <= 8 << 20, "{bytes}");
    }

    #[test]
    fn expired_keys_are_dropped_before_any_other() {
        let l = RateLimiter::new(1000.0, 1, SHARDS * 4);
        for i in 0..(SHARDS * 4) as u32 {
            l.check(Key::Bytes(&i.to_be_bytes()), 0);
        }
        // A second later every bucket is full again: new keys replace the expired ones.
        for i in 1000..1000 + (SHARDS * 4) as u32 {
            l.check(Key::Bytes(&i.to_be_bytes()), SEC);
        }
        assert!(l.footprint().0 <= SHARDS * 4);
    }

    proptest! {
        /// Whatever the rates, keys and times, a check never panics and a key is never
        /// allowed more than burst + elapsed·rate (+1) requests.
        #[test]
        fn never_more_than_the_bucket_allows(
            rate in 0.01f64..10_000.0,
            burst in 1u32..50,
            steps in prop::collection::vec((0u8..4, 0u64..2_000_000_000), 1..200),
        ) {
            let l = RateLimiter::new(rate, burst, MAX_KEYS);
            let mut now = 0u64;
            let mut allowed = [0u64; 4];
            for (key, dt) in &steps {
                now += dt;
                if let Verdict::Allowed { .. } = l.check(Key::Bytes(&[*key]), now) {
                    allowed[usize::from(*key)] += 1;
                }
            }
            let most = f64::from(burst) + now as f64 / 1e9 * rate + 1.0;
            for a in allowed {
                prop_assert!(a as f64 <= most, "{a} > {most}");
            }
        }
    }
}
