//! When a failed attempt may be retried on another origin, and the retry budget that keeps
//! retries from multiplying the load on a struggling pool.

use crate::config::RetryConfig;
use std::time::{Duration, Instant};

/// Why an attempt failed in a way that might be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryReason {
    /// The origin refused or reset the connection while connecting.
    ConnectRefused,
    /// Connecting took longer than `timeouts.connect_ms`.
    ConnectTimeout,
    /// Any other failure to connect.
    ConnectError,
    /// The TLS handshake with a `tls` origin failed, or its certificate did not check out.
    TlsError,
    /// A read of the response took longer than `timeouts.response_ms`.
    ResponseTimeout,
    /// The origin answered 502.
    Status502,
    /// The origin answered 503.
    Status503,
    /// The origin answered 504.
    Status504,
    /// The connection closed after the request was sent and before a response arrived.
    ConnectionDropped,
}

impl RetryReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [RetryReason; 9] = [
        RetryReason::ConnectRefused,
        RetryReason::ConnectTimeout,
        RetryReason::ConnectError,
        RetryReason::TlsError,
        RetryReason::ResponseTimeout,
        RetryReason::Status502,
        RetryReason::Status503,
        RetryReason::Status504,
        RetryReason::ConnectionDropped,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::ConnectRefused => "connect_refused",
            RetryReason::ConnectTimeout => "connect_timeout",
            RetryReason::ConnectError => "connect_error",
            RetryReason::TlsError => "tls_error",
            RetryReason::ResponseTimeout => "response_timeout",
            RetryReason::Status502 => "status_502",
            RetryReason::Status503 => "status_503",
            RetryReason::Status504 => "status_504",
            RetryReason::ConnectionDropped => "connection_dropped",
        }
    }

    /// The reason for a retryable response status.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            502 => Some(RetryReason::Status502),
            503 => Some(RetryReason::Status503),
            504 => Some(RetryReason::Status504),
            _ => None,
        }
    }

    /// Whether the request may have reached the origin (everything but connect failures,
    /// TLS handshakes included: no request byte is sent before the handshake completes).
    pub fn reached_origin(self) -> bool {
        !matches!(
            self,
            RetryReason::ConnectRefused
                | RetryReason::ConnectTimeout
                | RetryReason::ConnectError
                | RetryReason::TlsError
        )
    }
}

/// Methods that may be sent twice: GET, HEAD, OPTIONS, PUT, DELETE.
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Whether the request is safe to send again after `reason`. A request that never reached the
/// origin always is; one that may have reached it only when its method is idempotent and its
/// whole body is held for replay.
pub fn may_retry(reason: RetryReason, idempotent: bool, body_replayable: bool) -> bool {
    !reason.reached_origin() || (idempotent && body_replayable)
}

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    requests: u64,
    retries: u64,
}

/// A retry budget in the style of Linkerd's: over the last `window`, retries may number
/// `ratio` × requests plus `min_per_second` × window seconds.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    bucket_len: Duration,
    start: Instant,
    buckets: [Bucket; BUCKETS],
}

impl RetryBudget {
    /// A budget with nothing spent, counting time from `now`.
    pub fn new(config: &RetryConfig, now: Instant) -> Self {
        Self::with_ratio(
            config.budget_ratio,
            config.budget_min_per_second,
            config.budget_window,
            now,
        )
    }

    /// A budget of `ratio` × requests plus `min_per_second` × window seconds over `window`.
    pub fn with_ratio(ratio: f64, min_per_second: u32, window: Duration, now: Instant) -> Self {
        let window = window.max(Duration::from_millis(BUCKETS as u64));
        Self {
            ratio,
            floor: f64::from(min_per_second) * window.as_secs_f64(),
            bucket_len: window / BUCKETS as u32,
            start: now,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let epoch = (now.saturating_duration_since(self.start).as_nanos()
            / self.bucket_len.as_nanos().max(1)) as u64;
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        b
    }

    fn totals(&self, now: Instant) -> (u64, u64) {
        let epoch = (now.saturating_duration_since(self.start).as_nanos()
            / self.bucket_len.as_nanos().max(1)) as u64;
        self.buckets
            .iter()
            .filter(|b| b.epoch + (BUCKETS as u64) > epoch && b.epoch <= epoch)
            .fold((0, 0), |(q, r), b| (q + b.requests, r + b.retries))
    }

    /// Counts a request (first attempts only).
    pub fn record_request(&mut self, now: Instant) {
        self.bucket(now).requests += 1;
    }

    /// Spends one retry if the budget allows it.
    pub fn try_spend(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.totals(now);
        let allowed = self.floor + self.ratio * requests as f64;
        if (retries as f64) < allowed {
            self.bucket(now).retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(percent: u32, min_per_second: u32, window_ms: u64) -> RetryConfig {
        RetryConfig {
            enabled: true,
            max_attempts: 3,
            budget_ratio: f64::from(percent) / 100.0,
            budget_min_per_second: min_per_second,
            budget_window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn reasons_that_never_reached_the_origin_retry_any_method() {
        for r in [
            RetryReason::ConnectRefused,
            RetryReason::ConnectTimeout,
            RetryReason::ConnectError,
            RetryReason::TlsError,
        ] {
            assert!(may_retry(r, false, false));
        }
        for r in [
            RetryReason::ResponseTimeout,
            RetryReason::Status502,
            RetryReason::Status503,
            RetryReason::Status504,
            RetryReason::ConnectionDropped,
        ] {
            assert!(!may_retry(r, false, true), "{r:?} on POST");
            assert!(!may_retry(r, true, false), "{r:?} with a body not held");
            assert!(may_retry(r, true, true));
        }
    }

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"] {
            assert!(is_idempotent(m));
        }
        for m in ["POST", "PATCH", "CONNECT", "get"] {
            assert!(!is_idempotent(m));
        }
    }

    #[test]
    fn budget_allows_ratio_of_requests_plus_floor() {
        let t = Instant::now();
        // 20% of requests, no floor, 10 s window.
        let mut b = RetryBudget::new(&config(20, 0, 10_000), t);
        assert!(!b.try_spend(t));
        for _ in 0..10 {
            b.record_request(t);
        }
        assert!(b.try_spend(t));
        assert!(b.try_spend(t));
        assert!(!b.try_spend(t));
    }

    #[test]
    fn budget_floor_allows_retries_without_traffic() {
        let t = Instant::now();
        // 1 per second over 2 s: 2 retries.
        let mut b = RetryBudget::new(&config(0, 1, 2_000), t);
        assert!(b.try_spend(t));
        assert!(b.try_spend(t));
        assert!(!b.try_spend(t));
    }

    #[test]
    fn budget_forgets_what_left_the_window() {
        let t = Instant::now();
        let mut b = RetryBudget::new(&config(50, 0, 1_000), t);
        for _ in 0..4 {
            b.record_request(t);
        }
        assert!(b.try_spend(t));
        assert!(b.try_spend(t));
        assert!(!b.try_spend(t));
        // Half a window later the old requests and retries still count.
        let half = t + Duration::from_millis(500);
        assert!(!b.try_spend(half));
        // A whole window later they are gone, and so is the allowance.
        let later = t + Duration::from_millis(1_100);
        assert!(!b.try_spend(later));
        b.record_request(later);
        b.record_request(later);
        assert!(b.try_spend(later));
        assert!(!b.try_spend(later));
    }
}
