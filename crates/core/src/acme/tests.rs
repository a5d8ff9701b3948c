use super::machine::normalise;
use super::*;
use proptest::prelude::*;

const S: u64 = 1000;
const T0: u64 = 1_800_000_000_000;

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|h| h.to_string()).collect()
}

fn cert(list: &[&str], from: u64, days: u64) -> Held {
    Held {
        hosts: normalise(&hosts(list)),
        not_before: from,
        not_after: from + days * DAY_MS,
        ca: String::new(),
    }
}

#[test]
fn a_new_certificate_is_ordered_at_once_then_renewed_renew_before_days_before_expiry() {
    let mut m = Managed::new(&hosts(&["www.example.com", "example.com"]), 30);
    assert_eq!(m.next(T0), Step::Order(Why::Missing));
    m.started();
    assert_eq!(m.next(T0), Step::InFlight);
    assert_eq!(m.next(T0 + 3_600 * S), Step::InFlight);
    m.issued(cert(&["example.com", "www.example.com"], T0, 90));
    let renew = T0 + 60 * DAY_MS;
    assert_eq!(m.next(T0 + S), Step::WaitUntil(renew));
    assert_eq!(m.next(renew - 1), Step::WaitUntil(renew));
    assert_eq!(m.next(renew), Step::Order(Why::Renewal));
    m.started();
    m.issued(cert(&["example.com", "www.example.com"], renew, 90));
    assert_eq!(m.next(renew + S), Step::WaitUntil(renew + 60 * DAY_MS));
}

#[test]
fn a_certificate_shorter_lived_than_the_window_is_renewed_after_a_third_of_its_life() {
    // Let's Encrypt's six-day certificates with the default 30 days: at day 2, not at once.
    assert_eq!(renew_at(T0, T0 + 6 * DAY_MS, 30 * DAY_MS), T0 + 2 * DAY_MS);
    // Pebble's 60 s certificates in the tests: after 20 s.
    assert_eq!(renew_at(T0, T0 + 60 * S, 30 * DAY_MS), T0 + 20 * S);
    // The window applies when it leaves the first third alone.
    assert_eq!(
        renew_at(T0, T0 + 90 * DAY_MS, 30 * DAY_MS),
        T0 + 60 * DAY_MS
    );
    assert_eq!(renew_at(T0, T0 + 90 * DAY_MS, 0), T0 + 90 * DAY_MS);
    // A certificate whose validity is inverted is due at once rather than never.
    assert_eq!(renew_at(T0, T0 - S, 30 * DAY_MS), T0);
}

#[test]
fn an_unreachable_ca_is_retried_soon_a_refusing_one_slowly_both_doubling_to_a_cap() {
    let unreachable: Vec<u64> = (1..=10)
        .map(|n| retry_delay(Failure::Unreachable, n) / S)
        .collect();
    assert_eq!(unreachable, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    let refused: Vec<u64> = (1..=8)
        .map(|n| retry_delay(Failure::Refused, n) / S)
        .collect();
    assert_eq!(refused, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(retry_delay(Failure::Refused, u32::MAX), 3_600 * S);
    assert_eq!(retry_delay(Failure::Unreachable, 0), 2 * S);
}

#[test]
fn failures_back_off_keep_the_held_certificate_and_a_success_forgets_them() {
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    m.started();
    m.issued(cert(&["a.test"], T0, 90));
    let due = T0 + 60 * DAY_MS;
    assert_eq!(m.next(due), Step::Order(Why::Renewal));
    m.started();
    m.failed(Failure::Unreachable, "connection refused".into(), due);
    assert_eq!(m.failures(), 1);
    assert_eq!(m.last_error(), Some("connection refused"));
    assert_eq!(m.held().map(|h| h.not_after), Some(T0 + 90 * DAY_MS));
    assert_eq!(m.next(due + S), Step::WaitUntil(due + 2 * S));
    assert_eq!(m.next(due + 2 * S), Step::Order(Why::Renewal));
    m.started();
    m.failed(Failure::Refused, "rateLimited".into(), due + 2 * S);
    // The second failure in a row: the refused schedule's second step.
    assert_eq!(m.next(due + 3 * S), Step::WaitUntil(due + 122 * S));
    assert_eq!(m.retry_at(), Some(due + 122 * S));
    m.started();
    m.issued(cert(&["a.test"], due + 122 * S, 90));
    assert_eq!(m.failures(), 0);
    assert_eq!(m.last_error(), None);
    assert_eq!(m.retry_at(), None);
    assert_eq!(
        m.next(due + 123 * S),
        Step::WaitUntil(due + 122 * S + 60 * DAY_MS)
    );
}

#[test]
fn a_host_change_orders_at_once_but_not_before_a_pending_retry() {
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    m.started();
    m.issued(cert(&["a.test"], T0, 90));
    m.configure(&hosts(&["A.test", "b.test", "a.test"]), 30);
    assert_eq!(m.hosts(), ["a.test", "b.test"]);
    assert_eq!(m.next(T0 + S), Step::Order(Why::HostsChanged));
    m.started();
    m.failed(Failure::Refused, "b.test: unauthorized".into(), T0 + S);
    assert_eq!(m.next(T0 + 2 * S), Step::WaitUntil(T0 + 61 * S));
    // Back to the old hosts: the held certificate covers them again, no order needed.
    m.configure(&hosts(&["a.test"]), 30);
    assert_eq!(m.next(T0 + 62 * S), Step::WaitUntil(T0 + 60 * DAY_MS));
    // A wider window brings renewal forward, but not into the first third of its life.
    m.configure(&hosts(&["a.test"]), 80);
    assert_eq!(m.next(T0 + 62 * S), Step::WaitUntil(T0 + 30 * DAY_MS));
    assert_eq!(m.next(T0 + 30 * DAY_MS), Step::Order(Why::Renewal));
}

#[test]
fn a_certificate_from_another_ca_is_replaced_at_once_and_not_taken_from_elsewhere() {
    const STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
    const PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    m.configure_ca(STAGING);
    m.started();
    m.issued(Held {
        ca: STAGING.into(),
        ..cert(&["a.test"], T0, 90)
    });
    assert_eq!(m.next(T0 + S), Step::WaitUntil(T0 + 60 * DAY_MS));
    // Staging worked: production now.
    m.configure_ca(PRODUCTION);
    assert_eq!(m.next(T0 + 2 * S), Step::Order(Why::CaChanged));
    // Another staging certificate found elsewhere does not stand in for it.
    assert!(!m.observed(
        Held {
            ca: STAGING.into(),
            ..cert(&["a.test"], T0 + S, 90)
        },
        T0 + 2 * S
    ));
    assert!(m.observed(
        Held {
            ca: PRODUCTION.into(),
            ..cert(&["a.test"], T0 + S, 30)
        },
        T0 + 2 * S
    ));
    assert_eq!(m.next(T0 + 3 * S), Step::WaitUntil(T0 + S + 10 * DAY_MS));
}

#[test]
fn a_certificate_found_elsewhere_replaces_a_shorter_one_and_clears_failures() {
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    assert!(m.observed(cert(&["a.test"], T0, 90), T0));
    assert_eq!(m.next(T0), Step::WaitUntil(T0 + 60 * DAY_MS));
    // One ending sooner, or for other hosts, is not taken.
    assert!(!m.observed(cert(&["a.test"], T0 - DAY_MS, 90), T0));
    assert!(!m.observed(cert(&["b.test"], T0 + S, 90), T0));
    // Due and failing here; another node's renewal lands in the store.
    let due = T0 + 60 * DAY_MS;
    m.started();
    m.failed(Failure::Unreachable, "timed out".into(), due);
    assert!(m.observed(cert(&["a.test"], due + S, 90), due + S));
    assert_eq!(m.failures(), 0);
    assert_eq!(m.last_error(), None);
    assert_eq!(m.next(due + 2 * S), Step::WaitUntil(due + S + 60 * DAY_MS));
}

#[test]
fn a_found_certificate_that_is_itself_due_keeps_the_backoff() {
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    m.started();
    m.failed(Failure::Refused, "unauthorized".into(), T0);
    // The state directory holds one that expires tomorrow: served, renewal still due, but
    // the retry time holds.
    assert!(m.observed(cert(&["a.test"], T0 - 89 * DAY_MS, 90), T0));
    assert_eq!(m.failures(), 1);
    assert_eq!(m.next(T0 + S), Step::WaitUntil(T0 + 60 * S));
    assert_eq!(m.next(T0 + 60 * S), Step::Order(Why::Renewal));
}

#[test]
fn a_node_that_finds_the_lease_held_waits_for_the_other_nodes_certificate() {
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    assert_eq!(m.next(T0), Step::Order(Why::Missing));
    m.started();
    m.deferred(T0 + 10 * S);
    assert_eq!(m.failures(), 0);
    assert_eq!(m.last_error(), None);
    assert_eq!(m.next(T0 + S), Step::WaitUntil(T0 + 10 * S));
    // The holder's certificate lands in the store: nothing left to do.
    assert!(m.observed(cert(&["a.test"], T0 + 2 * S, 90), T0 + 3 * S));
    assert_eq!(
        m.next(T0 + 10 * S),
        Step::WaitUntil(T0 + 2 * S + 60 * DAY_MS)
    );
    // The holder died instead: once the lease lapses, this node orders.
    let mut m = Managed::new(&hosts(&["a.test"]), 30);
    m.started();
    m.deferred(T0 + 10 * S);
    assert_eq!(m.next(T0 + 10 * S), Step::Order(Why::Missing));
}

#[test]
fn one_node_holds_the_order_lease_until_it_lapses() {
    let ttl = 10 * S;
    let Claim::Take(mine) = Lease::claim(None, "eu-1", T0, ttl) else {
        panic!("a free lease is taken");
    };
    assert_eq!(
        mine,
        Lease {
            holder: "eu-1".into(),
            expires: T0 + ttl
        }
    );
    assert_eq!(
        Lease::claim(Some(&mine), "us-1", T0 + 9 * S, ttl),
        Claim::Held {
            holder: "eu-1".into(),
            until: T0 + ttl
        }
    );
    // The holder renews its own.
    assert_eq!(
        Lease::claim(Some(&mine), "eu-1", T0 + 9 * S, ttl),
        Claim::Take(Lease {
            holder: "eu-1".into(),
            expires: T0 + 19 * S
        })
    );
    // It died: once lapsed, another takes over.
    assert_eq!(
        Lease::claim(Some(&mine), "us-1", T0 + ttl, ttl),
        Claim::Take(Lease {
            holder: "us-1".into(),
            expires: T0 + 2 * ttl
        })
    );
}

#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    Act,
    Fail(bool),
    Issue(u64),
    Observe(bool, u64, u64),
    Configure(bool, u32),
    Defer(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (1u64..200 * DAY_MS).prop_map(Event::Advance),
        (1u64..120 * S).prop_map(Event::Advance),
        Just(Event::Act),
        any::<bool>().prop_map(Event::Fail),
        (1u64..120).prop_map(Event::Issue),
        (any::<bool>(), 0u64..100 * DAY_MS, 1u64..120)
            .prop_map(|(a, b, c)| Event::Observe(a, b, c)),
        (any::<bool>(), 0u32..100).prop_map(|(a, b)| Event::Configure(a, b)),
        (1u64..20 * S).prop_map(Event::Defer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn orders_are_never_early_never_doubled_and_never_forgotten(
        events in prop::collection::vec(event(), 0..80),
    ) {
        let one = hosts(&["a.test"]);
        let two = hosts(&["a.test", "b.test"]);
        let mut m = Managed::new(&one, 30);
        let mut now = T0;
        for e in events {
            let step = m.next(now);
            match step {
                Step::InFlight => prop_assert!(m.in_flight()),
                Step::WaitUntil(t) => prop_assert!(t > now, "a wait ends in the future"),
                Step::Order(why) => {
                    prop_assert!(!m.in_flight());
                    // Never before a pending retry.
                    prop_assert!(m.retry_at().is_none_or(|r| r <= now));
                    match (why, m.held()) {
                        (Why::Missing, h) => prop_assert!(h.is_none()),
                        (Why::HostsChanged, Some(h)) => prop_assert!(h.hosts != m.hosts()),
                        (Why::CaChanged, _) => prop_assert!(false, "one CA in this test"),
                        (Why::Renewal, Some(h)) => {
                            prop_assert_eq!(&h.hosts[..], m.hosts());
                            // Never in the first third of its life.
                            let life = h.not_after.saturating_sub(h.not_before);
                            prop_assert!(now >= h.not_before + life / 3);
                        }
                        (w, h) => prop_assert!(false, "{:?} with {:?}", w, h),
                    }
                }
            }
            // Nothing is forgotten: with no order running and no retry pending, an expired,
            // missing or wrong certificate is ordered now.
            let stale = m.held().is_none_or(|h| h.not_after <= now || h.hosts != m.hosts());
            if stale && !m.in_flight() && m.retry_at().is_none_or(|r| r <= now) {
                prop_assert!(matches!(step, Step::Order(_)), "{:?}", step);
            }
            match e {
                Event::Advance(d) => now += d,
                Event::Act => if matches!(step, Step::Order(_)) { m.started() },
                Event::Fail(refused) => if m.in_flight() {
                    let before = m.failures();
                    let kind = if refused { Failure::Refused } else { Failure::Unreachable };
                    m.failed(kind, "failed".into(), now);
                    prop_assert_eq!(m.failures(), before + 1);
                    prop_assert!(m.retry_at().is_some_and(|r| r > now));
                    prop_assert!(m.last_error().is_some());
                },
                Event::Issue(days) => if m.in_flight() {
                    let h = Held { hosts: m.hosts().to_vec(), not_before: now, not_after: now + days * DAY_MS, ca: String::new() };
                    m.issued(h.clone());
                    prop_assert_eq!(m.held(), Some(&h));
                    prop_assert_eq!(m.failures(), 0);
                    prop_assert!(!matches!(m.next(now), Step::Order(_)), "a fresh certificate is not re-ordered");
                },
                Event::Observe(wide, ago, days) => {
                    let h = Held {
                        hosts: normalise(if wide { &two } else { &one }),
                        not_before: now.saturating_sub(ago),
                        not_after: now.saturating_sub(ago) + days * DAY_MS,
                        ca: String::new(),
                    };
                    let before = m.held().cloned();
                    if m.observed(h.clone(), now) {
                        prop_assert_eq!(m.held(), Some(&h));
                    } else {
                        prop_assert_eq!(m.held(), before.as_ref());
                    }
                },
                Event::Configure(wide, days) => m.configure(if wide { &two } else { &one }, days),
                Event::Defer(d) => if m.in_flight() {
                    let before = m.failures();
                    m.deferred(now + d);
                    prop_assert_eq!(m.failures(), before);
                    prop_assert!(!matches!(m.next(now), Step::Order(_)), "no order while another node holds the lease");
                },
            }
        }
    }
}
