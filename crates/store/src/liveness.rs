//! How recently each registered node renewed its registration's lease: the heartbeat that
//! `config status` and `config rollout` show beside each node, so that a node killed without
//! revoking its lease reads stale long before its lease (about 10 s) expires.

use crate::client::Store;
use crate::error::StoreError;
use etcd_client::GetOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// A registration's lease, as etcd sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLife {
    /// The TTL granted at each renewal.
    pub granted: Duration,
    /// At least this long since the last renewal. etcd answers the remaining TTL in whole
    /// seconds, rounded down, so the time since the renewal lies within one second above.
    pub since_renewal: Duration,
}

impl LeaseLife {
    /// From etcd's answer: the granted TTL and the remaining TTL, both in whole seconds (the
    /// lease expires in under `remaining + 1` seconds).
    pub fn from_ttls(granted_secs: i64, remaining_secs: i64) -> LeaseLife {
        let granted = granted_secs.max(0).unsigned_abs();
        let since = granted
            .saturating_sub(remaining_secs.max(0).unsigned_abs())
            .saturating_sub(1);
        LeaseLife {
            granted: Duration::from_secs(granted),
            since_renewal: Duration::from_secs(since),
        }
    }

    /// Whether a renewal is certainly overdue: a registration renews its lease every third of
    /// its TTL ([`crate::register`]), so more than that since the last one means renewals
    /// failed (the node was killed, or lost the store).
    pub fn overdue(&self) -> bool {
        self.since_renewal > self.granted / 3
    }
}

impl Store {
    /// The lease of each registration under the nodes prefix, by the key's last segment (the
    /// node's name); a registration without a lease, or whose lease has just expired, is left
    /// out.
    pub async fn registration_leases(&self) -> Result<BTreeMap<String, LeaseLife>, StoreError> {
        let prefix = self.url().nodes_prefix();
        let mut resp = self
            .request(&format!("list of {prefix}"), |mut c| {
                let prefix = prefix.clone();
                async move {
                    c.get(
                        prefix,
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    )
                    .await
                }
            })
            .await?;
        let mut leases = BTreeMap::new();
        for kv in resp.take_kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let (Some(name), lease) = (key.strip_prefix(prefix.as_str()), kv.lease()) else {
                continue;
            };
            if lease == 0 {
                continue;
            }
            let ttl = self
                .request(
                    &format!("lease time-to-live of {key}"),
                    |mut c| async move { c.lease_time_to_live(lease, None).await },
                )
                .await?;
            if ttl.ttl() < 0 || ttl.granted_ttl() <= 0 {
                continue;
            }
            leases.insert(
                name.to_string(),
                LeaseLife::from_ttls(ttl.granted_ttl(), ttl.ttl()),
            );
        }
        Ok(leases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_since_renewal_is_a_lower_bound() {
        // Just renewed: 10 granted, 9 remaining (9.x s): under a second.
        let l = LeaseLife::from_ttls(10, 9);
        assert_eq!(l.since_renewal, Duration::ZERO);
        assert!(!l.overdue());
        // 6 remaining (6.x s): more than 3 s, at most 4 s: within a renewal period.
        let l = LeaseLife::from_ttls(10, 6);
        assert_eq!(l.since_renewal, Duration::from_secs(3));
        assert!(!l.overdue());
        // 5 remaining: more than 4 s since the renewal due every 3.3 s.
        let l = LeaseLife::from_ttls(10, 5);
        assert_eq!(l.since_renewal, Duration::from_secs(4));
        assert!(l.overdue());
        // Nonsense answers stay in range.
        assert_eq!(LeaseLife::from_ttls(10, 20).since_renewal, Duration::ZERO);
        assert_eq!(LeaseLife::from_ttls(-1, -1).since_renewal, Duration::ZERO);
    }
}
