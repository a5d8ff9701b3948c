//! How recently a registered node was heard from: its last report, or its last lease
//! renewal, whichever is newer. A node killed without revoking its lease keeps its
//! registration (and its `healthy: true`) until the lease expires, about 10 s; it reads
//! **stale** here once its report is older than [`STALE_REPORT_MS`] and a lease renewal (due
//! every third of the TTL) is overdue. `config status` and `config rollout` show it, and a
//! push leaves stale nodes out of its plan (they would fail gate 2 when their lease expires).

use portico_core::rollout::UnixMillis;
use portico_store::{LeaseLife, NodeStatus};

/// A node whose last report is older than this, and whose lease renewal is overdue (or that
/// has no lease), is shown stale: it is probably dead even though its registration lasts.
pub const STALE_REPORT_MS: u64 = 3_000;

/// How recently a registered node was last heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Time since its last report or lease renewal, whichever is newer (`None`: unknown).
    pub age_ms: Option<u64>,
    /// Probably dead: no report for [`STALE_REPORT_MS`] and its lease renewal overdue.
    pub stale: bool,
}

/// When the registration was last written, ms since the epoch (`updated_at_ms`, else
/// `updated_at` parsed, for a registration written without the former).
fn reported_at(s: &NodeStatus) -> Option<UnixMillis> {
    if s.updated_at_ms > 0 {
        return Some(s.updated_at_ms);
    }
    humantime::parse_rfc3339_weak(&s.record.updated_at)
        .ok()
        .map(portico_store::unix_millis)
}

/// How recently the node of `status` was heard from at `now`, given its lease (if any).
pub fn seen(status: &NodeStatus, lease: Option<&LeaseLife>, now: UnixMillis) -> Seen {
    let report = reported_at(status).map(|at| now.saturating_sub(at));
    let renewal = lease.map(|l| u64::try_from(l.since_renewal.as_millis()).unwrap_or(u64::MAX));
    let age_ms = match (report, renewal) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let report_old = report.is_none_or(|a| a > STALE_REPORT_MS);
    let stale = match lease {
        Some(l) => l.overdue() && report_old,
        None => report_old,
    };
    Seen { age_ms, stale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::NodeRecord;

    fn status(at_ms: UnixMillis) -> NodeStatus {
        let mut s = NodeStatus::new(NodeRecord {
            name: "a".into(),
            region: "eu".into(),
            version: "v1".into(),
            healthy: true,
            admin: "http://a".into(),
            updated_at: "2023-11-14T22:13:20Z".into(),
        });
        s.updated_at_ms = at_ms;
        s
    }

    #[test]
    fn a_node_is_stale_when_neither_report_nor_lease_is_recent() {
        let now = 1_700_000_010_000;
        let fresh = LeaseLife::from_ttls(10, 9);
        let overdue = LeaseLife::from_ttls(10, 4);
        // Reported 0.5 s ago.
        let s = status(now - 500);
        assert_eq!(
            seen(&s, Some(&overdue), now),
            Seen {
                age_ms: Some(500),
                stale: false
            }
        );
        // Reported 8 s ago (an idle node writes only on change), lease renewed: alive.
        let s = status(now - 8_000);
        assert_eq!(
            seen(&s, Some(&fresh), now),
            Seen {
                age_ms: Some(0),
                stale: false
            }
        );
        // Reported 8 s ago, lease renewal overdue (at least 5 s): killed.
        assert_eq!(
            seen(&s, Some(&overdue), now),
            Seen {
                age_ms: Some(5_000),
                stale: true
            }
        );
        // No lease: the report alone.
        assert!(seen(&s, None, now).stale);
        assert!(!seen(&status(now - 1_000), None, now).stale);
        // A registration without updated_at_ms: its RFC 3339 time (1_700_000_000_000).
        assert_eq!(
            seen(&status(0), None, 1_700_000_005_000).age_ms,
            Some(5_000)
        );
    }
}
