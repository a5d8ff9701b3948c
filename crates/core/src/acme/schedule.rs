//! When a held certificate is renewed, and how long a failed order waits before the next.
//!
//! Choices where the SPEC is silent:
//! - renewal is due `renew_before_days` before `not_after`, but never in the first third of
//!   the certificate's life: a certificate shorter-lived than `renew_before_days` (Let's
//!   Encrypt's six-day certificates with the default 30) is renewed once a third of its life
//!   has passed instead of at once, and again, forever;
//! - a CA that could not be reached (connection refused, timeout, TLS failure) cost it nothing,
//!   so the order is retried soon: 2 s, doubling, at most 5 min; a CA that answered with a
//!   problem (rate limit, failed validation) is retried after 1 min, doubling, at most 1 h, so
//!   that a misconfigured name does not exhaust the CA's limits (Let's Encrypt allows 5 failed
//!   validations per name per hour).

use super::UnixMillis;

/// How an order failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The CA could not be reached or did not answer: nothing was counted against its limits.
    Unreachable,
    /// The CA answered with a problem: validation failed, rate limited, order invalid.
    Refused,
}

impl Failure {
    /// First delay and the cap, in ms.
    fn bounds(self) -> (UnixMillis, UnixMillis) {
        match self {
            Failure::Unreachable => (2_000, 300_000),
            Failure::Refused => (60_000, 3_600_000),
        }
    }
}

/// How long to wait after the `failures`-th failure in a row (1 for the first) of kind `kind`:
/// the first delay doubled per earlier failure, capped.
pub fn retry_delay(kind: Failure, failures: u32) -> UnixMillis {
    let (first, cap) = kind.bounds();
    let doublings = failures.saturating_sub(1).min(32);
    first.saturating_mul(1u64 << doublings).min(cap)
}

/// When a certificate valid from `not_before` to `not_after` is due for renewal:
/// `renew_before_ms` before it expires, but not before a third of its life has passed.
pub fn renew_at(not_before: UnixMillis, not_after: UnixMillis, renew_before_ms: u64) -> UnixMillis {
    let life = not_after.saturating_sub(not_before);
    let floor = not_before.saturating_add(life / 3);
    not_after.saturating_sub(renew_before_ms).max(floor)
}
