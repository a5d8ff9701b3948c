//! Exact-sequence and property tests of the request lifecycle.

use super::*;
use crate::config::{PoolConfig, parse};
use crate::health::ProbeResult;
use proptest::strategy::Strategy;

mod band;

const MS: Duration = Duration::from_millis(1);

fn pool(origins: usize, extra: &str) -> PoolConfig {
    let list: Vec<String> = (0..origins)
        .map(|i| format!(r#"{{"name":"o{i}","address":"127.0.0.1:{}"}}"#, i + 1))
        .collect();
    let text = format!(
        r#"{{"pools":[{{"name":"p","timeouts":{{"response_ms":500}},"origins":[{}]{extra}}}],
            "routes":[{{"name":"r","pool":"p"}}]}}"#,
        list.join(",")
    );
    parse(&text).unwrap().pools.remove(0)
}

fn state(origins: usize, extra: &str, t: Instant) -> PoolState {
    let mut s = PoolState::new(&pool(origins, extra), t);
    for i in 0..origins {
        s.record_probe(t, i, ProbeResult::Success(MS));
    }
    for _ in 0..100 {
        s.record_request(t);
    }
    s
}

fn get() -> RequestKind {
    RequestKind::new("GET", false)
}

/// A decision without side effects.
fn plain(next: Next) -> Decision {
    Decision {
        next,
        effects: Effects::default(),
    }
}

/// A decision after `attempt` failed for `reason`, that ejected nothing.
fn after_failure(next: Next, attempt: usize, reason: RetryReason, retry: Retry) -> Decision {
    Decision {
        next,
        effects: Effects {
            ejected: None,
            failed: Some(Failed {
                attempt,
                reason,
                retry,
            }),
        },
    }
}

fn sent(n: Next) -> (usize, usize) {
    match n {
        Next::Send {
            attempt, origin, ..
        } => (attempt, origin),
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn a_good_answer_is_delivered_and_recorded() {
    let t = Instant::now();
    let mut p = state(2, "", t);
    let mut lc = Lifecycle::new(get(), 3, 7);
    let (a, _) = sent(lc.start(&mut p, t));
    assert_eq!(
        lc.on_head(&mut p, a, 200, true, t + MS * 2),
        plain(Next::Deliver {
            attempt: 0,
            cancel: None
        })
    );
    assert_eq!(
        lc.delivered().map(|a| a.state),
        Some(AttemptState::Delivered)
    );
    assert_eq!(lc.hedge_result(), None);
    // A second head for the same attempt changes nothing.
    assert_eq!(
        lc.on_head(&mut p, a, 200, true, t + MS * 3),
        plain(Next::Wait)
    );
}

#[test]
fn a_503_is_retried_on_another_origin_then_the_next_answer_wins() {
    let t = Instant::now();
    let mut p = state(3, "", t);
    let mut lc = Lifecycle::new(get(), 3, 1);
    let (a0, o0) = sent(lc.start(&mut p, t));
    let d = lc.on_head(&mut p, a0, 503, true, t);
    let Next::Send {
        attempt: 1,
        origin: o1,
        retry_of: Some(RetryReason::Status503),
        hedge: false,
    } = d.next
    else {
        panic!("{d:?}")
    };
    assert_eq!(
        d,
        after_failure(d.next, a0, RetryReason::Status503, Retry::Sent)
    );
    assert_ne!(o0, o1);
    assert_eq!(
        lc.on_head(&mut p, 1, 200, true, t),
        plain(Next::Deliver {
            attempt: 1,
            cancel: None
        })
    );
}

#[test]
fn a_post_that_reached_the_origin_is_not_retried_but_a_refused_connect_is() {
    let t = Instant::now();
    let mut p = state(3, "", t);
    let post = RequestKind::new("POST", true);
    let mut lc = Lifecycle::new(post, 3, 1);
    let (a, _) = sent(lc.start(&mut p, t));
    assert_eq!(
        lc.on_failure(&mut p, a, RetryReason::ResponseTimeout, true, false, t),
        after_failure(
            Next::GiveUp {
                reason: Some(RetryReason::ResponseTimeout)
            },
            a,
            RetryReason::ResponseTimeout,
            Retry::Denied
        )
    );
    let mut lc = Lifecycle::new(post, 3, 1);
    let (a, _) = sent(lc.start(&mut p, t));
    let d = lc.on_failure(&mut p, a, RetryReason::ConnectRefused, false, false, t);
    assert_eq!(
        d,
        after_failure(d.next, a, RetryReason::ConnectRefused, Retry::Sent)
    );
    let (b, _) = sent(d.next);
    assert_eq!(b, 1);
    assert_eq!(lc.hedge_due(&p, t), None, "a POST is never hedged");
}

#[test]
fn attempts_stop_at_max_attempts_and_when_origins_run_out() {
    let t = Instant::now();
    let mut p = state(5, "", t);
    let mut lc = Lifecycle::new(get(), 2, 3);
    let (a, _) = sent(lc.start(&mut p, t));
    let (b, _) = sent(
        lc.on_failure(&mut p, a, RetryReason::ConnectRefused, true, false, t)
            .next,
    );
    assert_eq!(
        lc.on_failure(&mut p, b, RetryReason::ConnectRefused, true, false, t),
        after_failure(
            Next::GiveUp {
                reason: Some(RetryReason::ConnectRefused)
            },
            b,
            RetryReason::ConnectRefused,
            Retry::Denied
        )
    );
    let mut p = state(2, "", t);
    let mut lc = Lifecycle::new(get(), 10, 3);
    let (a, _) = sent(lc.start(&mut p, t));
    let (b, _) = sent(
        lc.on_failure(&mut p, a, RetryReason::ConnectRefused, true, false, t)
            .next,
    );
    assert_eq!(
        lc.on_failure(&mut p, b, RetryReason::ConnectRefused, true, false, t),
        after_failure(
            Next::GiveUp {
                reason: Some(RetryReason::ConnectRefused)
            },
            b,
            RetryReason::ConnectRefused,
            Retry::Denied
        )
    );
    assert_eq!(lc.tried(), 0b11);
}

#[test]
fn a_hedge_is_due_after_the_delay_and_the_first_head_wins() {
    let t = Instant::now();
    let mut p = state(2, r#","failover":{"hedging":{"delay_ms":20}}"#, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    let (a, o0) = sent(lc.start(&mut p, t));
    assert_eq!(lc.hedge_due(&p, t), Some(t + MS * 20));
    // Too early: nothing.
    assert_eq!(lc.on_hedge_timer(&mut p, t + MS * 19), Next::Wait);
    let n = lc.on_hedge_timer(&mut p, t + MS * 20);
    let Next::Send {
        attempt: h,
        origin: o1,
        hedge: true,
        retry_of: None,
    } = n
    else {
        panic!("{n:?}")
    };
    assert_ne!(o0, o1);
    assert_eq!(lc.hedge_due(&p, t + MS * 21), None, "one hedge per request");
    // The hedge answers first: it wins, the first attempt is cancelled.
    assert_eq!(
        lc.on_head(&mut p, h, 200, true, t + MS * 22),
        plain(Next::Deliver {
            attempt: h,
            cancel: Some(a)
        })
    );
    assert_eq!(lc.hedge_result(), Some(HedgeResult::Won));
    assert_eq!(lc.attempts()[a].state, AttemptState::Cancelled);
    // The cancelled attempt's late head is ignored.
    assert_eq!(
        lc.on_head(&mut p, a, 200, true, t + MS * 30),
        plain(Next::Wait)
    );
    // A cancelled attempt is not a failure: the origin is neither ejected nor out of band.
    assert!(!p.origin(o0).unwrap().ejected);
}

#[test]
fn the_first_attempt_can_still_win_the_race() {
    let t = Instant::now();
    let mut p = state(2, r#","failover":{"hedging":{"delay_ms":20}}"#, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    let (a, _) = sent(lc.start(&mut p, t));
    let (h, _) = sent(lc.on_hedge_timer(&mut p, t + MS * 20));
    assert_eq!(
        lc.on_head(&mut p, a, 200, true, t + MS * 21),
        plain(Next::Deliver {
            attempt: a,
            cancel: Some(h)
        })
    );
    assert_eq!(lc.hedge_result(), Some(HedgeResult::Lost));
}

#[test]
fn a_failure_during_a_race_waits_for_the_other_attempt() {
    let t = Instant::now();
    let mut p = state(3, r#","failover":{"hedging":{"delay_ms":20}}"#, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    let (a, _) = sent(lc.start(&mut p, t));
    let (h, _) = sent(lc.on_hedge_timer(&mut p, t + MS * 20));
    assert_eq!(
        lc.on_failure(
            &mut p,
            a,
            RetryReason::ConnectionDropped,
            true,
            false,
            t + MS * 25
        ),
        after_failure(
            Next::Wait,
            a,
            RetryReason::ConnectionDropped,
            Retry::Skipped
        )
    );
    // The hedge fails too: now a retry goes to the third origin.
    let d = lc.on_failure(&mut p, h, RetryReason::Status502, true, false, t + MS * 26);
    assert_eq!(
        d,
        after_failure(d.next, h, RetryReason::Status502, Retry::Sent)
    );
    let (r, o) = sent(d.next);
    assert_eq!(r, 2);
    assert_eq!(lc.tried().count_ones(), 3);
    assert!(lc.tried() & (1 << o) != 0);
}

#[test]
fn hedges_are_denied_past_the_budget_or_without_another_origin() {
    let t = Instant::now();
    // One origin: nowhere to hedge to, so no hedge is ever due (no timer, nothing denied).
    let mut p = state(1, r#","failover":{"hedging":{"delay_ms":5}}"#, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    sent(lc.start(&mut p, t));
    assert_eq!(lc.hedge_due(&p, t), None);
    assert_eq!(lc.on_hedge_timer(&mut p, t + MS * 5), Next::Wait);
    assert_eq!(lc.hedge_result(), None);
    // Two origins: due after the delay.
    let mut p = state(2, r#","failover":{"hedging":{"delay_ms":5}}"#, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    sent(lc.start(&mut p, t));
    assert_eq!(lc.hedge_due(&p, t), Some(t + MS * 5));
    // 100 requests at 10 % plus the floor of one a second over the 10 s window: twenty
    // hedges, then denied.
    let mut p = state(2, r#","failover":{"hedging":{"delay_ms":5}}"#, t);
    let mut results = Vec::new();
    for i in 0..30 {
        let mut lc = Lifecycle::new(get(), 3, i);
        sent(lc.start(&mut p, t));
        lc.on_hedge_timer(&mut p, t + MS * 5);
        results.push(lc.hedge_result());
    }
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Some(HedgeResult::Lost))
            .count(),
        20
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Some(HedgeResult::Denied))
            .count(),
        10
    );
}

#[test]
fn an_origin_that_keeps_losing_leaves_the_band() {
    let t = Instant::now();
    let mut p = state(
        2,
        r#","failover":{"hedging":{"delay_ms":5,"max_percent":100}}"#,
        t,
    );
    // Origin 1's answers: the pool's hedge delay has samples (origin 0's probes predict 1 ms).
    for _ in 0..50 {
        p.record_head(t, 1, MS);
    }
    assert_eq!(p.band(0), 0b11);
    // Origin 0 hangs: every request it gets is hedged to 1 and lost by 0.
    let mut losses = 0;
    let mut now = t;
    for i in 0..200 {
        now += MS;
        let mut lc = Lifecycle::new(get(), 3, i);
        let (_, first) = sent(lc.start(&mut p, now));
        if first == 1 {
            let d = lc.on_head(&mut p, 0, 200, true, now + MS);
            assert!(matches!(d.next, Next::Deliver { .. }));
            continue;
        }
        let (h, _) = sent(lc.on_hedge_timer(&mut p, now + MS * 5));
        lc.on_head(&mut p, h, 200, true, now + MS * 6);
        losses += 1;
    }
    // Five losses in a row (the ejection threshold) count as one timeout in its live latency.
    assert!(losses <= 10, "origin 0 kept its place for {losses} losses");
    assert!(p.origin(0).unwrap().selection_latency.unwrap() > MS * 50);
    assert!(!p.origin(0).unwrap().ejected, "losing is not a failure");
}

#[test]
fn a_timeout_counts_against_the_origin_and_slows_it() {
    let t = Instant::now();
    let mut p = state(2, "", t);
    for _ in 0..50 {
        p.record_head(t, 1, MS);
    }
    let mut lc = Lifecycle::new(get(), 3, 9);
    let (a, o) = sent(lc.start(&mut p, t));
    let d = lc.on_failure(
        &mut p,
        a,
        RetryReason::ResponseTimeout,
        true,
        false,
        t + MS * 500,
    );
    assert_eq!(
        d,
        after_failure(d.next, a, RetryReason::ResponseTimeout, Retry::Sent)
    );
    let (b, o2) = sent(d.next);
    assert_ne!(o, o2);
    assert!(p.origin(o).unwrap().live_latency.unwrap() >= MS * 500);
    assert_eq!(
        lc.on_head(&mut p, b, 200, true, t + MS * 501),
        plain(Next::Deliver {
            attempt: 1,
            cancel: None
        })
    );
}

#[test]
fn a_drop_on_a_reused_connection_does_not_count_against_the_origin() {
    let t = Instant::now();
    let mut p = state(2, "", t);
    for _ in 0..10 {
        let mut lc = Lifecycle::new(get(), 1, 0);
        let (a, _) = sent(lc.start(&mut p, t));
        let give_up = Next::GiveUp {
            reason: Some(RetryReason::ConnectionDropped),
        };
        assert_eq!(
            lc.on_failure(&mut p, a, RetryReason::ConnectionDropped, true, true, t),
            after_failure(give_up, a, RetryReason::ConnectionDropped, Retry::Denied)
        );
    }
    assert!(!p.origin(0).unwrap().ejected && !p.origin(1).unwrap().ejected);
}

#[test]
fn a_500_is_delivered_and_its_ejection_comes_with_the_decision() {
    let t = Instant::now();
    let mut p = state(
        2,
        r#","failover":{"ejection":{"consecutive_failures":1}}"#,
        t,
    );
    let mut lc = Lifecycle::new(get(), 3, 7);
    let (a, o) = sent(lc.start(&mut p, t));
    let d = lc.on_head(&mut p, a, 500, true, t + MS);
    let Some((ejected, EjectionEvent::Ejected { until, .. })) = d.effects.ejected else {
        panic!("{d:?}")
    };
    assert_eq!((ejected, d.effects.failed), (o, None));
    assert!(until > t + MS);
    assert_eq!(
        d.next,
        Next::Deliver {
            attempt: a,
            cancel: None
        }
    );
    assert!(p.origin(o).unwrap().ejected);
}

#[test]
fn a_loser_that_waited_a_whole_timeout_is_ejected_by_the_winners_head() {
    let t = Instant::now();
    let extra = r#","failover":{"hedging":{"delay_ms":20},"ejection":{"consecutive_failures":1}}"#;
    let mut p = state(2, extra, t);
    let mut lc = Lifecycle::new(get(), 3, 5);
    let (a, o0) = sent(lc.start(&mut p, t));
    let (h, _) = sent(lc.on_hedge_timer(&mut p, t + MS * 20));
    let d = lc.on_head(&mut p, h, 200, true, t + MS * 500);
    assert_eq!(
        d.next,
        Next::Deliver {
            attempt: h,
            cancel: Some(a)
        }
    );
    let Some((loser, EjectionEvent::Ejected { .. })) = d.effects.ejected else {
        panic!("{d:?}")
    };
    assert_eq!((loser, d.effects.failed), (o0, None));
}

#[test]
fn a_failure_after_delivery_or_of_no_attempt_is_reported_but_never_retried() {
    let t = Instant::now();
    let mut p = state(3, "", t);
    let mut lc = Lifecycle::new(get(), 3, 7);
    let (a, _) = sent(lc.start(&mut p, t));
    lc.on_head(&mut p, a, 200, true, t);
    // The delivered response's body broke off: nothing is retried.
    let give_up = Next::GiveUp {
        reason: Some(RetryReason::ConnectionDropped),
    };
    assert_eq!(
        lc.on_failure(&mut p, a, RetryReason::ConnectionDropped, true, false, t),
        after_failure(give_up, a, RetryReason::ConnectionDropped, Retry::Skipped)
    );
    assert_eq!(
        lc.on_failure(&mut p, 9, RetryReason::ConnectionDropped, true, false, t),
        after_failure(give_up, 9, RetryReason::ConnectionDropped, Retry::Skipped)
    );
    assert_eq!(lc.attempts().len(), 1);
}

#[test]
fn an_attempt_given_up_at_its_head_is_never_retried_by_a_later_failure() {
    // No retry budget until requests come: the 502 is given up and goes to the client.
    let t = Instant::now();
    let extra = r#","failover":{"retries":{"budget_percent":100,"budget_min_per_second":0}}"#;
    let mut p = PoolState::new(&pool(2, extra), t);
    for i in 0..2 {
        p.record_probe(t, i, ProbeResult::Success(MS));
    }
    let mut lc = Lifecycle::new(get(), 3, 7);
    let (a, _) = sent(lc.start(&mut p, t));
    let give_up = |reason| Next::GiveUp {
        reason: Some(reason),
    };
    assert_eq!(
        lc.on_head(&mut p, a, 502, true, t),
        after_failure(
            give_up(RetryReason::Status502),
            a,
            RetryReason::Status502,
            Retry::Denied
        )
    );
    // The budget fills; then the 502's body breaks off. Its head went out already: nothing
    // may follow it (another attempt's answer would be written after it), and its retry was
    // counted as denied once.
    for _ in 0..10 {
        p.record_request(t);
    }
    assert_eq!(
        lc.on_failure(&mut p, a, RetryReason::ResponseTimeout, true, false, t),
        after_failure(
            give_up(RetryReason::ResponseTimeout),
            a,
            RetryReason::ResponseTimeout,
            Retry::Skipped
        )
    );
    assert_eq!(lc.attempts().len(), 1);
}

#[test]
fn no_origin_gives_up_at_once() {
    let t = Instant::now();
    let cfg = parse(
        r#"{"pools":[{"name":"p","origins":[{"name":"a","address":"127.0.0.1:1","enabled":false}]}],
            "routes":[{"name":"r","pool":"p"}]}"#,
    )
    .unwrap()
    .pools
    .remove(0);
    let mut p = PoolState::new(&cfg, t);
    let mut lc = Lifecycle::new(get(), 3, 0);
    assert_eq!(lc.start(&mut p, t), Next::GiveUp { reason: None });
}

/// One event of a random run.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Head(usize, u16),
    Fail(usize, u8, bool),
    Timer,
    Tick(u8),
}

fn reason(i: u8) -> RetryReason {
    RetryReason::ALL[i as usize % RetryReason::ALL.len()]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    #[test]
    fn never_twice_the_same_origin_never_an_unsafe_retry_never_past_the_limits(
        origins in 1usize..6,
        max_attempts in 1usize..5,
        method in proptest::sample::select(vec!["GET", "HEAD", "POST", "PUT", "PATCH"]),
        has_body in proptest::bool::ANY,
        replayable in proptest::bool::ANY,
        budget in 0u32..=100,
        events in proptest::collection::vec(
            proptest::prop_oneof![
                (0usize..6, proptest::sample::select(vec![200u16, 404, 500, 502, 503, 504])).prop_map(|(a, s)| Ev::Head(a, s)),
                (0usize..6, 0u8..9, proptest::bool::ANY).prop_map(|(a, r, re)| Ev::Fail(a, r, re)),
                proptest::strategy::Just(Ev::Timer),
                (1u8..50).prop_map(Ev::Tick),
            ],
            0..40,
        ),
    ) {
        let t = Instant::now();
        let extra = format!(
            r#","failover":{{"hedging":{{"delay_ms":5,"max_percent":{budget}}},"retries":{{"budget_min_per_second":0,"budget_percent":{budget}}}}}"#
        );
        let mut p = state(origins, &extra, t);
        let kind = RequestKind::new(method, has_body);
        let mut lc = Lifecycle::new(kind, max_attempts, 42);
        let mut now = t;
        let mut delivered = 0;
        let mut retries = 0;
        let mut hedges = 0;
        let mut check = |n: Next, lc: &Lifecycle| -> Result<(), proptest::test_runner::TestCaseError> {
            match n {
                Next::Deliver { .. } => delivered += 1,
                Next::Send { retry_of: Some(r), .. } => {
                    retries += 1;
                    // Never a retry of a request that may have reached the origin unless it is
                    // idempotent and replayable.
                    proptest::prop_assert!(!r.reached_origin() || (kind.idempotent && replayable));
                }
                Next::Send { hedge: true, .. } => {
                    hedges += 1;
                    proptest::prop_assert!(kind.hedgeable);
                }
                _ => {}
            }
            proptest::prop_assert!(lc.attempts().len() <= max_attempts + 1);
            proptest::prop_assert!(lc.attempts().iter().filter(|a| !a.hedge).count() <= max_attempts);
            Ok(())
        };
        // The effects say what the decision implies: a retry counted exactly when one is sent,
        // a denied one only when the request is given up, an ejection only of an origin tried.
        let effects_fit = |d: Decision, lc: &Lifecycle| -> Result<(), proptest::test_runner::TestCaseError> {
            let retried = matches!(d.next, Next::Send { retry_of: Some(_), .. });
            proptest::prop_assert_eq!(retried, matches!(d.effects.failed, Some(Failed { retry: Retry::Sent, .. })));
            if let Some(f) = d.effects.failed {
                let fits = match f.retry {
                    Retry::Sent => matches!(d.next, Next::Send { retry_of: Some(r), .. } if r == f.reason),
                    Retry::Denied => d.next == Next::GiveUp { reason: Some(f.reason) },
                    Retry::Skipped => matches!(d.next, Next::Wait | Next::GiveUp { .. }),
                };
                proptest::prop_assert!(fits, "{:?}", d);
            }
            if let Some((origin, _)) = d.effects.ejected {
                proptest::prop_assert!(lc.tried() & (1 << origin) != 0);
            }
            Ok(())
        };
        let n = lc.start(&mut p, now);
        check(n, &lc)?;
        for ev in events {
            let n = match ev {
                Ev::Head(a, s) => {
                    let pending = lc.delivered().is_none()
                        && lc.attempts().get(a).is_some_and(|x| x.state == AttemptState::Pending);
                    let d = lc.on_head(&mut p, a, s, replayable, now);
                    // A failing status of a pending attempt is its failure; nothing else is.
                    let failure = RetryReason::from_status(s).filter(|_| pending).map(|r| (a, r));
                    proptest::prop_assert_eq!(d.effects.failed.map(|f| (f.attempt, f.reason)), failure);
                    effects_fit(d, &lc)?;
                    d.next
                }
                Ev::Fail(a, r, reused) => {
                    let d = lc.on_failure(&mut p, a, reason(r), replayable, reused, now);
                    proptest::prop_assert_eq!(d.effects.failed.map(|f| (f.attempt, f.reason)), Some((a, reason(r))));
                    effects_fit(d, &lc)?;
                    d.next
                }
                Ev::Timer => lc.on_hedge_timer(&mut p, now),
                Ev::Tick(ms) => { now += MS * u32::from(ms); Next::Wait }
            };
            check(n, &lc)?;
        }
        // Never the same origin twice.
        let mut seen = 0u64;
        for a in lc.attempts() {
            proptest::prop_assert!(seen & (1 << a.origin) == 0, "origin {} twice", a.origin);
            seen |= 1 << a.origin;
        }
        // Never more than one response delivered, nor more than one hedge.
        proptest::prop_assert!(delivered <= 1);
        proptest::prop_assert!(hedges <= 1);
        // Never past the budgets: 100 requests recorded at `budget` percent.
        proptest::prop_assert!(retries <= (budget as usize * 100).div_ceil(100));
        proptest::prop_assert!(retries < max_attempts);
    }
}

#[test]
fn a_pinned_request_goes_to_its_origin_until_a_failure_ejects_it() {
    let t = Instant::now();
    let extra = r#","failover":{"ejection":{"consecutive_failures":1}}"#;
    let mut p = state(3, extra, t);
    for seed in 0..20 {
        let mut lc = Lifecycle::new(get(), 3, seed);
        lc.pin(Some(2));
        let (a, o) = sent(lc.start(&mut p, t));
        assert_eq!(o, 2, "seed {seed}");
        lc.on_head(&mut p, a, 200, true, t);
    }
    // The pinned origin fails: the retry goes elsewhere, and the failure ejects it.
    let mut lc = Lifecycle::new(get(), 3, 5);
    lc.pin(Some(2));
    let (a, o) = sent(lc.start(&mut p, t));
    assert_eq!(o, 2);
    let d = lc.on_failure(&mut p, a, RetryReason::ConnectRefused, true, false, t);
    let (_, retry) = sent(d.next);
    assert_ne!(retry, 2);
    assert!(p.origin(2).unwrap().ejected);
    let Some((2, EjectionEvent::Ejected { .. })) = d.effects.ejected else {
        panic!("{d:?}")
    };
    assert_eq!(
        d.effects.failed,
        Some(Failed {
            attempt: a,
            reason: RetryReason::ConnectRefused,
            retry: Retry::Sent
        })
    );
    // While ejected, the next pinned request is chosen anew.
    let mut lc = Lifecycle::new(get(), 3, 5);
    lc.pin(Some(2));
    let (_, o) = sent(lc.start(&mut p, t));
    assert_ne!(o, 2);
}

#[test]
fn a_hedge_due_with_the_other_origin_disabled_is_denied() {
    // Two origins, so a hedge is due; the other one is disabled, so there is nowhere to send
    // it: denied, the one way left to reach that branch now that a one-origin pool never has
    // a hedge due (an ejected or unhealthy origin still takes a hedge: selection falls back
    // to it rather than empty the pool).
    let t = Instant::now();
    let text = r#"{"pools":[{"name":"p","timeouts":{"response_ms":500},
        "origins":[{"name":"o0","address":"127.0.0.1:1"},
                   {"name":"o1","address":"127.0.0.1:2","enabled":false}],
        "failover":{"hedging":{"delay_ms":5}}}],
        "routes":[{"name":"r","pool":"p"}]}"#;
    let mut p = PoolState::new(&parse(text).unwrap().pools.remove(0), t);
    for i in 0..2 {
        p.record_probe(t, i, ProbeResult::Success(MS));
    }
    for _ in 0..100 {
        p.record_request(t);
    }
    let mut lc = Lifecycle::new(get(), 3, 8);
    assert_eq!(sent(lc.start(&mut p, t)).1, 0);
    assert_eq!(lc.hedge_due(&p, t), Some(t + MS * 5));
    assert_eq!(lc.on_hedge_timer(&mut p, t + MS * 5), Next::Wait);
    assert_eq!(lc.hedge_result(), Some(HedgeResult::Denied));
    assert_eq!(lc.hedge_due(&p, t + MS * 6), None);
}
