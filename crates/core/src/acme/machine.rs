//! One managed certificate's state: what is held, whether an order runs, the failures since
//! the last success, and what to do next ([`Managed::next`]).
//!
//! Choices where the SPEC is silent:
//! - a certificate is ordered at once when none is held, the held one does not cover exactly
//!   the configured hosts, or another CA issued it (a config change: staging to production),
//!   else at [`renew_at`];
//! - after a failure nothing is ordered before the retry time, even if the hosts change (the
//!   CA's limits count per name);
//! - a certificate seen elsewhere (the state directory at start, the store when another node
//!   ordered it) replaces the held one when it covers the configured hosts, comes from the
//!   configured CA and lasts longer (or the held one does not),
//!   and when it is not due it clears the failures: someone succeeded.

use super::schedule::{Failure, renew_at, retry_delay};
use super::{DAY_MS, UnixMillis};

/// A certificate held: the names it covers and its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its DNS names, lowercase, sorted, without duplicates.
    pub hosts: Vec<String>,
    /// Start of validity.
    pub not_before: UnixMillis,
    /// End of validity.
    pub not_after: UnixMillis,
    /// The ACME directory URL of the CA that issued it (empty: unknown).
    pub ca: String,
}

/// Why a certificate is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// None is held.
    Missing,
    /// The held one does not cover exactly the configured hosts.
    HostsChanged,
    /// The held one comes from another CA than the configured one (Let's Encrypt's staging,
    /// say, before production).
    CaChanged,
    /// The held one is due for renewal.
    Renewal,
}

/// What the edge should do next for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start an order now, and report its end with [`Managed::issued`] or [`Managed::failed`].
    Order(Why),
    /// Nothing before this time (a renewal or a retry).
    WaitUntil(UnixMillis),
    /// An order runs.
    InFlight,
}

/// One managed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    hosts: Vec<String>,
    ca: String,
    renew_before_ms: u64,
    held: Option<Held>,
    in_flight: bool,
    failures: u32,
    retry_at: Option<UnixMillis>,
    last_error: Option<String>,
}

/// Hosts as compared: lowercase, sorted, once each.
pub fn normalise(hosts: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

impl Managed {
    /// A certificate for `hosts`, renewed `renew_before_days` before expiry, none held yet.
    pub fn new(hosts: &[String], renew_before_days: u32) -> Self {
        Managed {
            hosts: normalise(hosts),
            ca: String::new(),
            renew_before_ms: u64::from(renew_before_days).saturating_mul(DAY_MS),
            held: None,
            in_flight: false,
            failures: 0,
            retry_at: None,
            last_error: None,
        }
    }

    /// A new config: the hosts and renewal window it gives. The held certificate, failures and
    /// retry time are kept.
    pub fn configure(&mut self, hosts: &[String], renew_before_days: u32) {
        self.hosts = normalise(hosts);
        self.renew_before_ms = u64::from(renew_before_days).saturating_mul(DAY_MS);
    }

    /// The CA certificates must come from: `acme.directory` (empty: any).
    pub fn configure_ca(&mut self, directory: &str) {
        self.ca = directory.to_string();
    }

    /// The configured hosts (normalised).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The certificate held, if any.
    pub fn held(&self) -> Option<&Held> {
        self.held.as_ref()
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The last order's error, until an order succeeds.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the next order may start after a failure.
    pub fn retry_at(&self) -> Option<UnixMillis> {
        self.retry_at
    }

    /// Whether an order runs.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Why and from when an order is due, ignoring failures.
    fn due(&self) -> (Why, UnixMillis) {
        match &self.held {
            None => (Why::Missing, 0),
            Some(h) if h.hosts != self.hosts => (Why::HostsChanged, 0),
            Some(h) if h.ca != self.ca => (Why::CaChanged, 0),
            Some(h) => (
                Why::Renewal,
                renew_at(h.not_before, h.not_after, self.renew_before_ms),
            ),
        }
    }

    /// What to do at `now`.
    pub fn next(&self, now: UnixMillis) -> Step {
        if self.in_flight {
            return Step::InFlight;
        }
        let (why, due) = self.due();
        let at = due.max(self.retry_at.unwrap_or(0));
        if now >= at {
            Step::Order(why)
        } else {
            Step::WaitUntil(at)
        }
    }

    /// The edge started the order [`Managed::next`] asked for.
    pub fn started(&mut self) {
        self.in_flight = true;
    }

    /// The order ended with a certificate: it is held, the failures are forgotten.
    pub fn issued(&mut self, held: Held) {
        self.in_flight = false;
        self.held = Some(held);
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
    }

    /// The order failed at `now` with `error`: the next one waits [`retry_delay`].
    pub fn failed(&mut self, kind: Failure, error: String, now: UnixMillis) {
        self.in_flight = false;
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now.saturating_add(retry_delay(kind, self.failures)));
        self.last_error = Some(error);
    }

    /// Another node holds the order lease until `until` (nodes sharing a store): no order
    /// here before then, and no failure counted. Its certificate, once stored, arrives
    /// through [`Managed::observed`].
    pub fn deferred(&mut self, until: UnixMillis) {
        self.in_flight = false;
        self.retry_at = Some(self.retry_at.unwrap_or(0).max(until));
    }

    /// A certificate found elsewhere (the state directory, the store): held instead of the
    /// current one when it covers the configured hosts and lasts longer (or none is held).
    /// Returns whether it is now held.
    pub fn observed(&mut self, found: Held, now: UnixMillis) -> bool {
        let better = match &self.held {
            None => true,
            Some(h) => {
                found.hosts == self.hosts
                    && found.ca == self.ca
                    && (h.hosts != self.hosts || h.ca != self.ca || found.not_after > h.not_after)
            }
        };
        if !better {
            return false;
        }
        self.held = Some(found);
        if matches!(self.next_ignoring_failures(now), Step::WaitUntil(_)) {
            self.failures = 0;
            self.retry_at = None;
            self.last_error = None;
        }
        true
    }

    fn next_ignoring_failures(&self, now: UnixMillis) -> Step {
        let (why, due) = self.due();
        if now >= due {
            Step::Order(why)
        } else {
            Step::WaitUntil(due)
        }
    }
}
