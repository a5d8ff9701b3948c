//! Do answers follow the config? Each request is placed against the changes: sent after its
//! node was seen running the latest change and before the next change began, it must have
//! been served by the origin that change prefers; sent while a change was still propagating
//! to its node, either origin is fine and it is only counted.

use super::docs::{OriginSpec, Variant};
use super::load::Sent;
use super::trigger::Change;
use serde::Serialize;

/// How the successful answers line up with the changes.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Following {
    /// 200s sent while their node was known to run one config.
    pub settled: usize,
    /// Of which served by the origin that config prefers.
    pub expected: usize,
    /// 200s sent while a change was propagating to their node (not judged).
    pub in_transition: usize,
}

impl Following {
    /// `expected / settled` (1 when nothing was settled).
    pub fn fraction(&self) -> f64 {
        if self.settled == 0 {
            1.0
        } else {
            self.expected as f64 / self.settled as f64
        }
    }
}

/// Judges `requests` (target index = node index of the changes) against `changes` (in
/// order), the fleet having run `initial` before the first change.
pub fn check(
    requests: &[Sent],
    changes: &[Change],
    initial: Variant,
    origins: &[OriginSpec],
) -> Following {
    let mut f = Following::default();
    for r in requests
        .iter()
        .filter(|r| r.status == 200 && r.error.is_none())
    {
        let k = changes.partition_point(|c| c.at_ms <= r.at_ms);
        let running = match k.checked_sub(1).map(|i| &changes[i]) {
            None => Some(initial),
            Some(c) => c
                .nodes
                .get(r.target)
                .copied()
                .flatten()
                .filter(|seen| c.at_ms + seen.upper_ms <= r.at_ms)
                .map(|_| c.variant),
        };
        match running {
            Some(v) => {
                f.settled += 1;
                let want = origins.get(v.preferred()).map(|o| o.name.as_str());
                if r.served_by.as_deref() == want {
                    f.expected += 1;
                }
            }
            None => f.in_transition += 1,
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_bench::status::Seen;
    use std::net::SocketAddr;

    fn origins() -> Vec<OriginSpec> {
        ["a", "b"]
            .iter()
            .map(|n| OriginSpec {
                name: n.to_string(),
                region: "r".into(),
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            })
            .collect()
    }

    fn req(at_ms: f64, target: usize, by: &str) -> Sent {
        Sent {
            at_ms,
            target,
            fresh: false,
            latency_ms: 1.0,
            status: 200,
            served_by: Some(by.into()),
            error: None,
        }
    }

    fn change(at_ms: f64, variant: Variant, seen: &[f64]) -> Change {
        Change {
            index: 0,
            variant,
            version: String::new(),
            at_ms,
            write_ms: 1.0,
            nodes: seen
                .iter()
                .map(|&upper_ms| {
                    Some(Seen {
                        lower_ms: 0.0,
                        upper_ms,
                        polls: 1,
                        slowest_poll_ms: 0.5,
                    })
                })
                .collect(),
            all_ms: None,
            resolution_ms: None,
        }
    }

    #[test]
    fn requests_are_judged_against_the_config_their_node_ran() {
        // Change to B at 100 ms: node 0 runs it at 110, node 1 at 130.
        let changes = vec![change(100.0, Variant::B, &[10.0, 30.0])];
        let requests = vec![
            req(50.0, 0, "a"),  // before: A prefers a
            req(105.0, 0, "a"), // propagating to node 0: not judged
            req(120.0, 0, "b"), // node 0 runs B
            req(120.0, 1, "a"), // node 1 does not yet
            req(140.0, 1, "a"), // node 1 runs B but a served it: wrong
        ];
        let f = check(&requests, &changes, Variant::A, &origins());
        assert_eq!(
            f,
            Following {
                settled: 3,
                expected: 2,
                in_transition: 2
            }
        );
        assert!((f.fraction() - 2.0 / 3.0).abs() < 1e-9);
    }
}
