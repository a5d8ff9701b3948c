//! Pingora `BackendSelection` that asks the core for priority → latency band → weight.
//!
//! The selection key carries the request's random draw and the origins it already tried, so
//! a retry is a fresh selection among the origins left, as the core defines it.

use crate::pool::{OriginRef, PoolCore};
use pingora_load_balancing::Backend;
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use portico_core::selection::next_rand;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Builds the 16-byte selection key: a random draw and the bit mask of origins tried.
pub fn key(rand: u64, tried: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&rand.to_le_bytes());
    k[8..].copy_from_slice(&tried.to_le_bytes());
    k
}

fn parse_key(key: &[u8]) -> (u64, u64) {
    let word = |range: std::ops::Range<usize>| {
        key.get(range)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    (word(0..8), word(8..16))
}

/// The backends of one pool by origin index, and the pool whose state decides.
pub struct LatencySelector {
    pool: Option<Arc<PoolCore>>,
    by_index: Vec<Option<Backend>>,
}

impl BackendSelection for LatencySelector {
    type Iter = LatencyIter;
    type Config = Arc<PoolCore>;

    fn build_with_config(backends: &BTreeSet<Backend>, pool: &Arc<PoolCore>) -> Self {
        let mut by_index = vec![None; pool.origins.len()];
        for b in backends {
            if let Some(r) = b.ext.get::<OriginRef>() {
                if let Some(slot) = by_index.get_mut(r.index) {
                    *slot = Some(b.clone());
                }
            }
        }
        Self {
            pool: Some(pool.clone()),
            by_index,
        }
    }

    fn build(_backends: &BTreeSet<Backend>) -> Self {
        // Portico always builds with its pool as config; without it nothing can be chosen.
        Self {
            pool: None,
            by_index: Vec::new(),
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> LatencyIter {
        let (rand, tried) = parse_key(key);
        LatencyIter {
            selector: self.clone(),
            rand,
            excluded: tried,
        }
    }
}

/// Yields origins in selection order: each step selects among the origins not yet yielded.
pub struct LatencyIter {
    selector: Arc<LatencySelector>,
    rand: u64,
    excluded: u64,
}

impl BackendIter for LatencyIter {
    fn next(&mut self) -> Option<&Backend> {
        let pool = self.selector.pool.as_ref()?;
        loop {
            let idx = pool.brain().select(self.excluded, self.rand)?;
            self.excluded |= 1 << idx;
            self.rand = next_rand(self.rand);
            if let Some(Some(b)) = self.selector.by_index.get(idx) {
                return Some(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips() {
        assert_eq!(parse_key(&key(7, 0b101)), (7, 0b101));
        assert_eq!(parse_key(&key(u64::MAX, u64::MAX)), (u64::MAX, u64::MAX));
        assert_eq!(parse_key(b""), (0, 0));
    }
}
