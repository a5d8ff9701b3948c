//! Polling with a deadline instead of sleeping: async for tests on a runtime, blocking for
//! tests that drive child processes from a plain thread.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` every [`POLL_EVERY`] until it returns `Some`; panics naming `what` after
/// `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        deadline.check(what);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Polls `check` until it returns true; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(what, timeout, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}

/// [`poll`] for a thread without a runtime: sleeps between checks.
pub fn poll_blocking<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(value) = check() {
            return value;
        }
        deadline.check(what);
        std::thread::sleep(POLL_EVERY);
    }
}

/// [`eventually`] for a thread without a runtime.
pub fn eventually_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    poll_blocking(what, timeout, || check().then_some(()))
}

/// When a poll gives up.
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// Panics naming `what` once the deadline has passed.
    fn check(&self, what: &str) {
        assert!(
            Instant::now() < self.at,
            "timed out after {:?} waiting for: {what}",
            self.timeout
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_blocking_returns_the_first_value() {
        let mut n = 0;
        let got = poll_blocking("three calls", Duration::from_secs(30), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after 0ns waiting for: never")]
    fn poll_blocking_names_what_it_waited_for() {
        eventually_blocking("never", Duration::ZERO, || false);
    }

    #[tokio::test]
    async fn poll_returns_the_first_value() {
        let mut n = 0;
        let got = poll("three calls", Duration::from_secs(30), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await;
        assert_eq!(got, 3);
    }
}
