//! The order lease: nodes sharing a store take turns ordering, one at a time per certificate.
//! The lease is a record `{holder, expires}` written with compare-and-swap; its holder renews
//! it while its order runs and drops it when done. A holder that dies stops renewing, and the
//! lease is taken over once it has expired, so a conductor that dies mid-order is replaced.
//!
//! Choice where the SPEC is silent: expiry is wall-clock time, so nodes whose clocks differ by
//! more than the lease's time-to-live could both order; the cost is one extra order at the CA,
//! never a wrong certificate (each order's key and chain are stored together).

use super::UnixMillis;
use serde::{Deserialize, Serialize};

/// Who holds the order lease of one certificate, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The node ordering.
    pub holder: String,
    /// When the lease lapses unless renewed.
    pub expires: UnixMillis,
}

/// What a node may do about a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Write this lease (compare-and-swap against the one read) and order.
    Take(Lease),
    /// Another node holds it: wait until then at least, and watch for its certificate.
    Held {
        /// The holder.
        holder: String,
        /// When it lapses unless renewed.
        until: UnixMillis,
    },
}

impl Lease {
    /// What `me` may do at `now` when the stored lease is `current`: take a free or expired
    /// lease (or renew its own) for `ttl_ms`, else wait for the holder.
    pub fn claim(current: Option<&Lease>, me: &str, now: UnixMillis, ttl_ms: u64) -> Claim {
        match current {
            Some(l) if l.holder != me && now < l.expires => Claim::Held {
                holder: l.holder.clone(),
                until: l.expires,
            },
            _ => Claim::Take(Lease {
                holder: me.to_string(),
                expires: now.saturating_add(ttl_ms),
            }),
        }
    }
}
