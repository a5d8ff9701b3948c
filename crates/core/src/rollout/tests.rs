//! Exact-sequence tests of every gate and transition, and property tests of the rollout.

use super::gates::{self, pause_after};
use super::plan::{Candidate, assign, choose_canary, resolve_plan};
use super::*;
use proptest::prelude::*;

const STABLE: &str = "v1";
const TARGET: &str = "v2";
const SEC: u64 = 1000;
const T0: u64 = 1_800_000_000_000;

fn report(name: &str, region: &str) -> NodeReport {
    NodeReport {
        name: name.to_string(),
        region: region.to_string(),
        healthy: true,
        version: STABLE.to_string(),
        started_at_ms: 1,
        rejected: None,
        versions: [(STABLE.to_string(), Figures::default())].into(),
        baseline: None,
    }
}

fn figures(requests: u64, errors: u64, p99_ms: Option<f64>) -> Figures {
    Figures {
        requests,
        errors,
        p99_ms,
    }
}

/// The registered nodes, each doing what a real one does with the rollout.
#[derive(Debug, Clone)]
struct Fleet(Vec<NodeReport>);

impl Fleet {
    fn new(nodes: &[(&str, &str)]) -> Self {
        Fleet(nodes.iter().map(|(n, r)| report(n, r)).collect())
    }

    /// The usual fleet: two nodes in eu, one in us, one in ap.
    fn four() -> Self {
        Fleet::new(&[
            ("eu-a", "eu"),
            ("eu-b", "eu"),
            ("us-a", "us"),
            ("sg-a", "ap"),
        ])
    }

    fn node(&mut self, name: &str) -> &mut NodeReport {
        self.0.iter_mut().find(|n| n.name == name).unwrap()
    }

    /// Every node runs what the rollout assigns it; a switch freezes its figures on the version
    /// it leaves as its baseline and starts the new version from zero.
    fn follow(&mut self, r: &Rollout) {
        for n in &mut self.0 {
            let want = r.version_for(&n.name).unwrap_or(STABLE).to_string();
            if n.version != want {
                let before = n.figures(&n.version);
                n.baseline = Some(SwitchBaseline {
                    to: want.clone(),
                    figures: before,
                });
                n.versions.insert(want.clone(), Figures::default());
                n.version = want;
            }
        }
    }

    /// `name` answers `requests` more requests on what it runs, `errors` of them errors, and
    /// its p99 becomes `p99_ms`.
    fn serve(&mut self, name: &str, requests: u64, errors: u64, p99_ms: Option<f64>) {
        let n = self.node(name);
        let v = n.versions.entry(n.version.clone()).or_default();
        v.requests += requests;
        v.errors += errors;
        v.p99_ms = p99_ms;
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|n| n.name != name);
    }
}

fn push(settings: Settings) -> Push {
    Push {
        target: TARGET.to_string(),
        stable: Some(STABLE.to_string()),
        waves: None,
        canary: None,
        settings,
        author: "ops@host".to_string(),
    }
}

fn start(fleet: &Fleet, p: Push) -> (Rollout, Vec<Decision>) {
    Rollout::start(p, &fleet.0, T0).unwrap()
}

fn started(wave: usize, nodes: &[&str]) -> Decision {
    Decision::StartWave {
        wave,
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
    }
}

fn passed(wave: usize, requests: u64, elapsed_ms: u64) -> Decision {
    Decision::PassWave {
        wave,
        by: PassedBy::Gates {
            requests,
            elapsed_ms,
        },
    }
}

fn cands(f: &Fleet) -> Vec<Candidate<'_>> {
    f.0.iter()
        .map(|n| Candidate {
            name: &n.name,
            region: &n.region,
            healthy: n.healthy,
        })
        .collect()
}

#[test]
fn selectors_parse_print_and_refuse_what_cannot_work() {
    let w = parse_waves("node:eu-a, region:eu,rest").unwrap();
    assert_eq!(
        w,
        vec![
            Selector::Node("eu-a".into()),
            Selector::Region("eu".into()),
            Selector::Rest
        ]
    );
    assert_eq!(
        w.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["node:eu-a", "region:eu", "rest"]
    );
    assert_eq!(
        serde_json::to_string(&w).unwrap(),
        r#"["node:eu-a","region:eu","rest"]"#
    );
    let back: Vec<Selector> = serde_json::from_str(r#"["node:eu-a","region:eu","rest"]"#).unwrap();
    assert_eq!(back, w);
    assert!(serde_json::from_str::<Selector>(r#""zone:x""#).is_err());
    for (text, err) in [
        ("zone:x", RolloutError::BadSelector("zone:x".into())),
        ("node:", RolloutError::BadSelector("node:".into())),
        ("eu-a", RolloutError::BadSelector("eu-a".into())),
        ("", RolloutError::BadSelector(String::new())),
        ("rest,node:a", RolloutError::AfterRest("node:a".into())),
        (
            "region:eu,region:eu",
            RolloutError::DuplicateWave("region:eu".into()),
        ),
    ] {
        assert_eq!(parse_waves(text), Err(err), "{text}");
    }
    assert!(
        RolloutError::AfterRest("node:a".into())
            .to_string()
            .contains("put `rest` last")
    );
}

#[test]
fn the_canary_is_the_first_healthy_node_by_name_unless_named() {
    let mut f = Fleet::new(&[("us-b", "us"), ("eu-b", "eu"), ("eu-a", "eu")]);
    f.node("eu-a").healthy = false;
    let c = cands(&f);
    assert_eq!(choose_canary(&c, None).unwrap().unwrap().name, "eu-b");
    assert_eq!(
        choose_canary(&c, Some("us-b")).unwrap().unwrap().name,
        "us-b"
    );
    assert_eq!(
        choose_canary(&c, Some("nope")),
        Err(RolloutError::UnknownNode("nope".into()))
    );
    // With no healthy node, the first by name.
    for n in &mut f.0 {
        n.healthy = false;
    }
    assert_eq!(
        choose_canary(&cands(&f), None).unwrap().unwrap().name,
        "eu-a"
    );
    assert_eq!(choose_canary(&[], None).unwrap(), None);
    // The default plan is built around it.
    f.node("us-b").healthy = true;
    assert_eq!(
        resolve_plan(&cands(&f), None, None).unwrap().unwrap(),
        parse_waves("node:us-b,region:us,rest").unwrap()
    );
}

#[test]
fn given_waves_must_name_registered_nodes_and_match_one() {
    let f = Fleet::four();
    let c = cands(&f);
    let w = |s: &str| parse_waves(s).unwrap();
    assert_eq!(
        resolve_plan(&c, Some(&w("node:eu-z,rest")), None),
        Err(RolloutError::UnknownNode("eu-z".into()))
    );
    assert_eq!(
        resolve_plan(&c, Some(&w("region:mars")), None),
        Err(RolloutError::NoNodeInPlan)
    );
    assert_eq!(
        resolve_plan(&c, Some(&w("rest")), Some("eu-a")),
        Err(RolloutError::CanaryWithWaves)
    );
    assert_eq!(
        resolve_plan(&c, Some(&[]), None),
        Err(RolloutError::NoWaves)
    );
    // An empty region is allowed (skipped when its turn comes); no node at all: nothing to plan.
    assert!(resolve_plan(&c, Some(&w("region:mars,rest")), None).is_ok());
    assert_eq!(resolve_plan(&[], Some(&w("node:x")), None), Ok(None));
    // Each node in the first wave that matches it.
    assert_eq!(
        assign(&w("region:eu,node:eu-a,rest"), &c),
        vec![vec!["eu-a", "eu-b"], vec![], vec!["sg-a", "us-a"]]
    );
}

#[test]
fn a_good_document_is_promoted_wave_by_wave() {
    let mut f = Fleet::four();
    let (mut r, d) = start(&f, push(Settings::default()));
    assert_eq!(d, vec![started(0, &["eu-a"])]);
    assert_eq!(r.state, State::InProgress);
    assert_eq!(r.state.to_string(), "in progress");
    assert_eq!(r.current, Some(0));
    assert_eq!(
        r.waves
            .iter()
            .map(|w| w.selector.to_string())
            .collect::<Vec<_>>(),
        ["node:eu-a", "region:eu", "rest"]
    );
    assert_eq!(r.assignment("eu-a"), Assignment::Target);
    assert_eq!(r.assignment("eu-b"), Assignment::Stable);
    assert_eq!(r.version_for("us-a"), Some(STABLE));
    // The canary has not switched yet: nothing to judge.
    assert_eq!(r.judge(&f.0, T0 + 500), vec![]);
    f.serve("eu-a", 1000, 0, Some(20.0));
    f.follow(&r);
    f.serve("eu-a", 100, 0, Some(22.0));
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    // Captured once, from what the node froze at its switch.
    let m = r.member("eu-a").unwrap();
    assert_eq!(m.baseline, Some(figures(1000, 0, Some(20.0))));
    assert_eq!(m.applied_at_ms, Some(T0 + SEC));
    let w = r.wave_figures(0, &f.0, T0 + 2 * SEC).unwrap();
    assert_eq!(w.target, figures(100, 0, None));
    assert_eq!(w.baseline, figures(1000, 0, None));
    assert_eq!(w.elapsed_ms, 2 * SEC);
    assert!(w.pending.is_empty());
    assert_eq!(w.members[0].target, figures(100, 0, Some(22.0)));
    assert_eq!(w.members[0].version.as_deref(), Some(TARGET));
    assert_eq!(r.wave_figures(1, &f.0, T0), None);
    // Baked long enough, with enough traffic: wave 1 starts.
    assert_eq!(r.judge(&f.0, T0 + 60 * SEC - 1), vec![]);
    assert_eq!(
        r.judge(&f.0, T0 + 60 * SEC),
        vec![passed(0, 100, 60 * SEC), started(1, &["eu-b"])]
    );
    assert_eq!(r.assignment("eu-b"), Assignment::Target);
    assert_eq!(r.assignment("us-a"), Assignment::Stable);
    f.follow(&r);
    f.serve("eu-b", 150, 1, Some(25.0));
    assert_eq!(r.judge(&f.0, T0 + 119 * SEC), vec![]);
    assert_eq!(
        r.judge(&f.0, T0 + 120 * SEC),
        vec![passed(1, 150, 60 * SEC), started(2, &["sg-a", "us-a"])]
    );
    f.follow(&r);
    f.serve("us-a", 60, 0, None);
    f.serve("sg-a", 40, 0, None);
    assert_eq!(
        r.judge(&f.0, T0 + 180 * SEC),
        vec![passed(2, 100, 60 * SEC), Decision::Promote]
    );
    assert_eq!(r.state, State::Promoted);
    assert_eq!(r.state.to_string(), "promoted");
    assert_eq!(r.state.outcome(), Outcome::Promoted);
    assert_eq!(Outcome::RolledBack.to_string(), "rolled_back");
    assert_eq!(
        serde_json::to_string(&Outcome::InProgress).unwrap(),
        r#""in_progress""#
    );
    assert_eq!(r.ended_at_ms, Some(T0 + 180 * SEC));
    assert_eq!(r.current, None);
    for n in ["eu-a", "eu-b", "us-a", "sg-a", "late-joiner"] {
        assert_eq!(r.version_for(n), Some(TARGET), "{n}");
    }
    // Over: nothing more happens, whatever the nodes say.
    f.node("eu-a").rejected = Some(Rejection {
        version: TARGET.into(),
        errors: vec!["x".into()],
        rollout_started_at_ms: 0,
    });
    assert_eq!(r.judge(&f.0, T0 + 200 * SEC), vec![]);
    assert_eq!(r.log.len(), 7);
    assert_eq!(r.log[0].at_ms, T0);
}

fn on_canary(settings: Settings) -> (Fleet, Rollout) {
    let mut f = Fleet::four();
    let (r, _) = start(&f, push(settings));
    f.follow(&r);
    (f, r)
}

fn rolled_back(d: &[Decision]) -> &GateFailure {
    match d {
        [Decision::RollBack { failure, .. }] => failure,
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn gate_1_a_node_that_rejects_the_target_rolls_back_at_once() {
    let (mut f, mut r) = on_canary(Settings::default());
    // A rejection of some other version is not this rollout's business.
    f.node("eu-a").rejected = Some(Rejection {
        version: "v0".into(),
        errors: vec!["old".into()],
        rollout_started_at_ms: 0,
    });
    assert_eq!(r.judge(&f.0, T0 + 10), vec![]);
    let n = f.node("eu-a");
    n.version = STABLE.into();
    n.rejected = Some(Rejection {
        version: TARGET.into(),
        errors: vec!["tls.certificates[0].cert_file: no such file".into()],
        rollout_started_at_ms: 0,
    });
    let d = r.judge(&f.0, T0 + 20);
    assert_eq!(
        d,
        vec![Decision::RollBack {
            wave: 0,
            failure: GateFailure::Rejected {
                node: "eu-a".into(),
                errors: vec!["tls.certificates[0].cert_file: no such file".into()],
            }
        }]
    );
    assert_eq!(
        r.state.to_string(),
        "rolled back: gate 1: eu-a rejected the target: tls.certificates[0].cert_file: no such file"
    );
    assert_eq!(r.state.outcome(), Outcome::RolledBack);
    assert_eq!(r.assignment("eu-a"), Assignment::Stable);
    assert_eq!(r.version_for("eu-a"), Some(STABLE));
}

/// The same version pushed again once its cause is fixed: until the node sees the new rollout
/// its registration still carries the rejection from the last one, which must not roll the
/// new rollout back; a rejection in this rollout (or one that does not say) does.
#[test]
fn gate_1_ignores_a_rejection_left_from_an_earlier_rollout_of_the_same_version() {
    let (mut f, mut r) = on_canary(Settings::default());
    let n = f.node("eu-a");
    n.version = STABLE.into();
    n.rejected = Some(Rejection {
        version: TARGET.into(),
        errors: vec!["tls.certificates[0].cert_file: no such file".into()],
        rollout_started_at_ms: T0 - 600 * SEC,
    });
    assert_eq!(r.judge(&f.0, T0 + 10), vec![]);
    assert_eq!(r.state, State::InProgress);
    f.node("eu-a").rejected = Some(Rejection {
        version: TARGET.into(),
        errors: vec!["tls.certificates[0].cert_file: no such file".into()],
        rollout_started_at_ms: T0,
    });
    assert!(matches!(
        rolled_back(&r.judge(&f.0, T0 + 20)),
        GateFailure::Rejected { .. }
    ));
}

#[test]
fn gate_2_a_node_gone_or_restarted_during_its_wave_rolls_back() {
    let (mut f, mut r) = on_canary(Settings::default());
    f.remove("eu-a");
    let d = r.judge(&f.0, T0 + SEC);
    assert_eq!(
        rolled_back(&d),
        &GateFailure::NodeLost {
            node: "eu-a".into(),
            why: Lost::Gone
        }
    );
    assert_eq!(
        r.state.to_string(),
        "rolled back: gate 2: eu-a stopped renewing its registration"
    );

    let (mut f, mut r) = on_canary(Settings::default());
    f.node("eu-a").started_at_ms = 99;
    let d = r.judge(&f.0, T0 + SEC);
    assert_eq!(
        rolled_back(&d),
        &GateFailure::NodeLost {
            node: "eu-a".into(),
            why: Lost::Restarted
        }
    );
    assert_eq!(r.state.to_string(), "rolled back: gate 2: eu-a restarted");

    // A node outside the started waves may come and go.
    let (mut f, mut r) = on_canary(Settings::default());
    f.remove("us-a");
    f.node("eu-b").started_at_ms = 7;
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
}

#[test]
fn gate_3_errors_above_the_baseline_by_more_than_the_increase_with_enough_errors() {
    // Baseline 0 errors in 1000; target 10 in 1000 is exactly +1 point: not more.
    let (mut f, mut r) = on_canary(Settings::default());
    f.serve("eu-a", 1000, 10, None);
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    f.serve("eu-a", 0, 1, None);
    let d = r.judge(&f.0, T0 + 2 * SEC);
    let want = GateFailure::ErrorRatio {
        target: figures(1000, 11, None),
        baseline: figures(0, 0, None),
        max_increase: 0.01,
    };
    assert_eq!(rolled_back(&d), &want);
    assert_eq!(
        r.state.to_string(),
        "rolled back: gate 3: error ratio 1.10% (11 errors in 1000 requests) > baseline 0.00% (0 in 0) + 1.00%"
    );
    // A high ratio with fewer than --min-errors errors passes.
    let (mut f, mut r) = on_canary(Settings::default());
    f.serve("eu-a", 20, 9, None);
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    f.serve("eu-a", 0, 1, None);
    assert_eq!(
        rolled_back(&r.judge(&f.0, T0 + 2 * SEC)).clone().number(),
        3
    );
}

#[test]
fn gate_3_compares_with_the_nodes_own_error_ratio_before_the_switch() {
    let mut f = Fleet::four();
    // eu-a failed 5 % of its requests before the push: 5.9 % after is within a point.
    f.serve("eu-a", 1000, 50, None);
    let (mut r, _) = start(&f, push(Settings::default()));
    f.follow(&r);
    f.serve("eu-a", 1000, 59, None);
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    f.serve("eu-a", 0, 2, None);
    let d = r.judge(&f.0, T0 + 2 * SEC);
    assert_eq!(
        rolled_back(&d),
        &GateFailure::ErrorRatio {
            target: figures(1000, 61, None),
            baseline: figures(1000, 50, None),
            max_increase: 0.01
        }
    );
}

#[test]
fn gate_3_sums_the_wave_and_keeps_judging_passed_waves() {
    let settings = Settings {
        bake_ms: 0,
        min_requests: 0,
        ..Settings::default()
    };
    let mut f = Fleet::four();
    let (mut r, _) = start(
        &f,
        Push {
            waves: Some(parse_waves("node:us-a,region:eu,rest").unwrap()),
            ..push(settings)
        },
    );
    f.follow(&r);
    assert_eq!(
        r.judge(&f.0, T0 + 1),
        vec![passed(0, 0, 1), started(1, &["eu-a", "eu-b"])]
    );
    f.follow(&r);
    // Wave 1: eu-a 10 errors in 100, eu-b none in 900: 1 % together, not more than 0 + 1 %.
    f.serve("eu-a", 100, 10, None);
    f.serve("eu-b", 900, 0, None);
    f.serve("us-a", 0, 0, None);
    // (wave 1 passes at once: bake 0, min-requests 0; wave 2 starts)
    assert_eq!(
        r.judge(&f.0, T0 + 2),
        vec![passed(1, 1000, 1), started(2, &["sg-a"])]
    );
    // Wave 0 (passed) goes bad: still judged.
    f.serve("us-a", 100, 10, None);
    let d = r.judge(&f.0, T0 + 3);
    assert_eq!(
        d,
        vec![Decision::RollBack {
            wave: 0,
            failure: GateFailure::ErrorRatio {
                target: figures(100, 10, None),
                baseline: figures(0, 0, None),
                max_increase: 0.01
            }
        }]
    );
    for n in ["us-a", "eu-a", "eu-b", "sg-a"] {
        assert_eq!(r.assignment(n), Assignment::Stable);
    }
}

#[test]
fn gate_4_latency_above_one_and_a_half_baseline_plus_50_ms_with_enough_answers() {
    let mut f = Fleet::four();
    f.serve("eu-a", 200, 0, Some(100.0));
    let (mut r, _) = start(&f, push(Settings::default()));
    f.follow(&r);
    // Exactly 1.5 × 100 + 50: not more.
    f.serve("eu-a", 100, 0, Some(200.0));
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    // Slower, but too few answers to judge.
    f.node("eu-a")
        .versions
        .insert(TARGET.into(), figures(99, 0, Some(900.0)));
    assert_eq!(r.judge(&f.0, T0 + 2 * SEC), vec![]);
    f.serve("eu-a", 1, 0, Some(200.5));
    let d = r.judge(&f.0, T0 + 3 * SEC);
    assert_eq!(
        rolled_back(&d),
        &GateFailure::Latency {
            node: "eu-a".into(),
            target: figures(100, 0, Some(200.5)),
            baseline: figures(200, 0, Some(100.0))
        }
    );
    assert_eq!(
        r.state.to_string(),
        "rolled back: gate 4: eu-a p99 200.5 ms over 100 requests > 1.5 × baseline 100.0 ms over 200 + 50 ms"
    );
}

#[test]
fn gate_4_needs_a_baseline_with_enough_answers_and_at_least_20_each_side() {
    // A baseline of 99 answers (< --min-requests): not judged.
    let mut f = Fleet::four();
    f.serve("eu-a", 99, 0, Some(1.0));
    let (mut r, _) = start(&f, push(Settings::default()));
    f.follow(&r);
    f.serve("eu-a", 5000, 0, Some(5000.0));
    assert_eq!(r.judge(&f.0, T0 + SEC), vec![]);
    // --min-requests 0: still 20 answers each side.
    let settings = Settings {
        min_requests: 0,
        ..Settings::default()
    };
    let mut f = Fleet::four();
    f.serve("eu-a", 20, 0, Some(1.0));
    let (mut r, _) = start(&f, push(settings));
    f.follow(&r);
    f.serve("eu-a", 19, 0, Some(500.0));
    assert_eq!(r.judge(&f.0, T0 + 1), vec![]);
    f.serve("eu-a", 1, 0, Some(500.0));
    assert_eq!(rolled_back(&r.judge(&f.0, T0 + 2)).number(), 4);
}

#[test]
fn gate_5_short_traffic_pauses_at_three_bakes_until_promote() {
    let (mut f, mut r) = on_canary(Settings::default());
    f.serve("eu-a", 99, 0, None);
    assert_eq!(r.judge(&f.0, T0 + 60 * SEC), vec![]);
    assert_eq!(r.judge(&f.0, T0 + 180 * SEC - 1), vec![]);
    let d = r.judge(&f.0, T0 + 180 * SEC);
    assert_eq!(
        d,
        vec![Decision::Pause {
            wave: 0,
            reason: PauseReason::InsufficientTraffic
        }]
    );
    assert_eq!(r.state.to_string(), "paused: insufficient traffic");
    assert_eq!(r.state.outcome(), Outcome::InProgress);
    assert_eq!(r.assignment("eu-a"), Assignment::Target);
    // Traffic arriving later does not resume it.
    f.serve("eu-a", 1000, 0, None);
    assert_eq!(r.judge(&f.0, T0 + 200 * SEC), vec![]);
    // Promote by hand: the next wave starts.
    let d = r
        .command(
            Command::Promote {
                author: "kim@box".into(),
            },
            &f.0,
            T0 + 201 * SEC,
        )
        .unwrap();
    assert_eq!(
        d,
        vec![
            Decision::PassWave {
                wave: 0,
                by: PassedBy::Hand {
                    author: "kim@box".into()
                }
            },
            started(1, &["eu-b"])
        ]
    );
    assert_eq!(r.state, State::InProgress);
}

#[test]
fn gate_5_a_paused_rollout_is_still_judged_by_gates_1_to_4() {
    let (mut f, mut r) = on_canary(Settings::default());
    assert_eq!(
        r.judge(&f.0, T0 + 180 * SEC),
        vec![Decision::Pause {
            wave: 0,
            reason: PauseReason::InsufficientTraffic
        }]
    );
    f.serve("eu-a", 10, 10, None);
    assert_eq!(rolled_back(&r.judge(&f.0, T0 + 181 * SEC)).number(), 3);
}

#[test]
fn gate_5_a_node_that_never_applies_pauses_the_wave() {
    let f = Fleet::four();
    let (mut r, _) = start(&f, push(Settings::default()));
    assert_eq!(r.judge(&f.0, T0 + 179 * SEC), vec![]);
    assert_eq!(
        r.judge(&f.0, T0 + 180 * SEC),
        vec![Decision::Pause {
            wave: 0,
            reason: PauseReason::NotApplied(vec!["eu-a".into()])
        }]
    );
    assert_eq!(r.state.to_string(), "paused: not applied by eu-a");
}

#[test]
fn gate_5_short_bakes_pause_no_sooner_than_30_s() {
    let s = Settings {
        bake_ms: 2 * SEC,
        ..Settings::default()
    };
    assert_eq!(pause_after(&s), 30 * SEC);
    assert_eq!(pause_after(&Settings::default()), 180 * SEC);
    let (mut f, mut r) = on_canary(s);
    f.serve("eu-a", 50, 0, None);
    assert_eq!(r.judge(&f.0, T0 + 29 * SEC), vec![]);
    assert!(matches!(
        r.judge(&f.0, T0 + 30 * SEC).as_slice(),
        [Decision::Pause { .. }]
    ));
}

#[test]
fn everywhere_at_once_is_promoted_when_every_node_runs_it_and_still_gated() {
    let settings = Settings {
        bake_ms: 0,
        min_requests: 0,
        ..Settings::default()
    };
    let all = Push {
        waves: Some(parse_waves("rest").unwrap()),
        ..push(settings)
    };
    let mut f = Fleet::four();
    let (mut r, d) = start(&f, all.clone());
    assert_eq!(d, vec![started(0, &["eu-a", "eu-b", "sg-a", "us-a"])]);
    for n in ["sg-a", "eu-a", "eu-b", "us-a"] {
        assert_eq!(r.assignment(n), Assignment::Target);
    }
    // Three have switched: not yet.
    let mut partial = f.clone();
    partial.follow(&r);
    partial.node("us-a").version = STABLE.into();
    assert_eq!(r.judge(&partial.0, T0 + 5), vec![]);
    f.follow(&r);
    assert_eq!(
        r.judge(&f.0, T0 + 9),
        vec![passed(0, 0, 9), Decision::Promote]
    );
    // A node that rejects it first rolls it back.
    let mut f = Fleet::four();
    let (mut r, _) = start(&f, all);
    f.follow(&r);
    f.node("sg-a").rejected = Some(Rejection {
        version: TARGET.into(),
        errors: vec!["bad".into()],
        rollout_started_at_ms: 0,
    });
    f.node("sg-a").version = STABLE.into();
    assert_eq!(rolled_back(&r.judge(&f.0, T0 + 9)).number(), 1);
}

#[test]
fn nothing_to_judge_is_promoted_at_once() {
    let (r, d) = Rollout::start(push(Settings::default()), &[], T0).unwrap();
    assert_eq!(d, vec![Decision::Promote]);
    assert_eq!(r.state, State::Promoted);
    let f = Fleet::four();
    let (r, d) = start(
        &f,
        Push {
            stable: None,
            ..push(Settings::default())
        },
    );
    assert_eq!(d, vec![Decision::Promote]);
    assert_eq!(r.version_for("eu-a"), Some(TARGET));
    // Still, the plan and settings are checked.
    let bad = Push {
        settings: Settings {
            max_error_increase: -0.1,
            ..Settings::default()
        },
        ..push(Settings::default())
    };
    assert_eq!(
        Rollout::start(bad, &[], T0).unwrap_err(),
        RolloutError::BadErrorIncrease(-0.1)
    );
    let bad = Push {
        waves: Some(vec![Selector::Rest, Selector::Rest]),
        ..push(Settings::default())
    };
    assert_eq!(
        Rollout::start(bad, &[], T0).unwrap_err(),
        RolloutError::DuplicateWave("rest".into())
    );
}

#[test]
fn empty_waves_are_skipped() {
    // The canary is alone in its region: the region wave is empty.
    let mut f = Fleet::new(&[("sg-a", "ap"), ("us-a", "us"), ("us-b", "us")]);
    let s = Settings {
        bake_ms: 0,
        min_requests: 0,
        ..Settings::default()
    };
    let (mut r, d) = start(&f, push(s));
    assert_eq!(d, vec![started(0, &["sg-a"])]);
    f.follow(&r);
    assert_eq!(
        r.judge(&f.0, T0 + 1),
        vec![
            passed(0, 0, 1),
            Decision::SkipWave { wave: 1 },
            started(2, &["us-a", "us-b"])
        ]
    );
    assert!(r.waves[1].skipped && r.waves[1].started_at_ms.is_none());
    // A trailing empty wave: promoted after the last non-empty one.
    let f = Fleet::new(&[("sg-a", "ap")]);
    let (mut r, d) = start(&f, push(s));
    assert_eq!(d, vec![started(0, &["sg-a"])]);
    let mut f2 = f.clone();
    f2.follow(&r);
    assert_eq!(
        r.judge(&f2.0, T0 + 1),
        vec![
            passed(0, 0, 1),
            Decision::SkipWave { wave: 1 },
            Decision::SkipWave { wave: 2 },
            Decision::Promote
        ]
    );
}

#[test]
fn a_node_that_joins_runs_stable_unless_its_wave_has_yet_to_start() {
    let s = Settings {
        bake_ms: 0,
        min_requests: 0,
        ..Settings::default()
    };
    let mut f = Fleet::four();
    let (mut r, _) = start(&f, push(s));
    // Joins the canary's region while the canary bakes: the region wave takes it.
    f.0.push(report("eu-c", "eu"));
    assert_eq!(r.assignment("eu-c"), Assignment::Stable);
    f.follow(&r);
    assert_eq!(
        r.judge(&f.0, T0 + 1),
        vec![passed(0, 0, 1), started(1, &["eu-b", "eu-c"])]
    );
    assert_eq!(r.assignment("eu-c"), Assignment::Target);
    // Joins the region after its wave started: stable until the rollout ends.
    f.0.push(report("eu-d", "eu"));
    f.follow(&r);
    assert_eq!(r.assignment("eu-d"), Assignment::Stable);
    assert_eq!(
        r.judge(&f.0, T0 + 2),
        vec![passed(1, 0, 1), started(2, &["sg-a", "us-a"])]
    );
    assert_eq!(r.assignment("eu-d"), Assignment::Stable);
    assert_eq!(r.wave_of("eu-d"), None);
}

#[test]
fn abort_rolls_back_and_an_ended_rollout_takes_no_command() {
    let (f, mut r) = on_canary(Settings::default());
    let d = r
        .command(
            Command::Abort {
                author: "kim@box".into(),
            },
            &f.0,
            T0 + 5,
        )
        .unwrap();
    assert_eq!(
        d,
        vec![Decision::Abort {
            author: "kim@box".into()
        }]
    );
    assert_eq!(r.state.to_string(), "aborted");
    assert_eq!(r.state.outcome(), Outcome::Aborted);
    assert_eq!(r.ended_at_ms, Some(T0 + 5));
    assert_eq!(r.version_for("eu-a"), Some(STABLE));
    let e = r
        .command(Command::Promote { author: "x".into() }, &f.0, T0 + 6)
        .unwrap_err();
    assert_eq!(e.to_string(), "the rollout of v2 is over (aborted)");
    assert_eq!(r.judge(&f.0, T0 + 7), vec![]);
}

#[test]
fn promote_on_the_last_wave_promotes() {
    let mut f = Fleet::new(&[("eu-a", "eu")]);
    let (mut r, _) = start(
        &f,
        Push {
            waves: Some(parse_waves("rest").unwrap()),
            ..push(Settings::default())
        },
    );
    f.follow(&r);
    let d = r
        .command(Command::Promote { author: "a".into() }, &f.0, T0 + 1)
        .unwrap();
    assert_eq!(
        d,
        vec![
            Decision::PassWave {
                wave: 0,
                by: PassedBy::Hand { author: "a".into() }
            },
            Decision::Promote
        ]
    );
}

#[test]
fn a_resumed_rollout_counts_the_bake_already_spent_and_keeps_its_baselines() {
    let mut f = Fleet::four();
    f.serve("eu-a", 1000, 0, Some(10.0));
    let (mut r, _) = start(&f, push(Settings::default()));
    f.follow(&r);
    f.serve("eu-a", 60, 0, Some(11.0));
    assert_eq!(r.judge(&f.0, T0 + 30 * SEC), vec![]);
    // The conductor dies; another reads the stored state 20 s later.
    let stored = serde_json::to_string(&r).unwrap();
    let mut resumed: Rollout = serde_json::from_str(&stored).unwrap();
    assert_eq!(resumed, r);
    // The node's published baseline changes (it would at its next switch): the stored one holds.
    f.node("eu-a").baseline = Some(SwitchBaseline {
        to: TARGET.into(),
        figures: figures(1, 1, None),
    });
    f.serve("eu-a", 40, 0, Some(11.0));
    assert_eq!(
        resumed.judge(&f.0, T0 + 60 * SEC),
        vec![passed(0, 100, 60 * SEC), started(1, &["eu-b"])]
    );
    assert_eq!(
        resumed.member("eu-a").unwrap().baseline,
        Some(figures(1000, 0, Some(10.0)))
    );
}

#[test]
fn judged_answers_a_copy_to_store_only_when_something_changed() {
    let mut f = Fleet::four();
    f.serve("eu-a", 1000, 0, Some(10.0));
    let (r, _) = start(&f, push(Settings::default()));
    // The canary has not switched: nothing to write, tick after tick.
    assert_eq!(r.judged(&f.0, T0 + 500), None);
    assert_eq!(r.judged(&f.0, T0 + SEC), None);
    // It switched: its baseline is captured, a change without a decision.
    f.follow(&r);
    let (r, d) = r.judged(&f.0, T0 + 2 * SEC).unwrap();
    assert_eq!(d, vec![]);
    assert_eq!(
        r.member("eu-a").unwrap().baseline,
        Some(figures(1000, 0, Some(10.0)))
    );
    // Baking: nothing changes, so nothing is written.
    f.serve("eu-a", 100, 0, Some(11.0));
    assert_eq!(r.judged(&f.0, T0 + 30 * SEC), None);
    // The bake is over: the decisions come with the copy, and the original is untouched.
    let (next, d) = r.judged(&f.0, T0 + 60 * SEC).unwrap();
    assert_eq!(d, vec![passed(0, 100, 60 * SEC), started(1, &["eu-b"])]);
    assert_eq!(r.current, Some(0));
    assert_eq!(next.current, Some(1));
    // A gate failing is a change; an ended rollout never changes again.
    f.remove("eu-a");
    let (over, d) = next.judged(&f.0, T0 + 61 * SEC).unwrap();
    assert!(
        matches!(d[..], [Decision::RollBack { wave: 0, .. }]),
        "{d:?}"
    );
    assert_eq!(over.judged(&f.0, T0 + 62 * SEC), None);
}

#[test]
fn the_stored_form_is_plain_json() {
    let (f, mut r) = on_canary(Settings::default());
    r.judge(&f.0, T0 + 1);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["target"], "v2");
    assert_eq!(v["state"], "in_progress");
    assert_eq!(v["settings"]["bake_ms"], 60000);
    assert_eq!(v["waves"][0]["selector"], "node:eu-a");
    assert_eq!(v["waves"][0]["members"][0]["baseline"]["requests"], 0);
    assert_eq!(v["log"][0]["decision"], "start_wave");
    assert_eq!(v["log"][0]["nodes"][0], "eu-a");
    r.judge(&f.0, T0 + 180 * SEC);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["state"]["paused"], "insufficient_traffic");
    let mut g = f.clone();
    g.remove("eu-a");
    r.judge(&g.0, T0 + 181 * SEC);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["state"]["rolled_back"]["gate"], "node_lost");
    assert_eq!(v["state"]["rolled_back"]["why"], "gone");
    // A field from a newer conductor does not stop an older node from reading the state.
    let mut newer = serde_json::to_value(&r).unwrap();
    newer["settings"]["max_latency_increase"] = serde_json::json!(2.0);
    newer["next_feature"] = serde_json::json!(true);
    assert_eq!(serde_json::from_value::<Rollout>(newer).unwrap(), r);
    // A node report as a registration carries it.
    let n: NodeReport = serde_json::from_str(
        r#"{"name":"a","region":"eu","healthy":true,"version":"v1","started_at_ms":5,
            "versions":{"v1":{"requests":3,"errors":1,"p99_ms":2.5}}}"#,
    )
    .unwrap();
    assert_eq!(n.figures("v1"), figures(3, 1, Some(2.5)));
    assert_eq!(n.figures("v9"), Figures::default());
    assert!(!n.rejects("v1"));
}

#[test]
fn gate_functions_judge_only_nodes_on_the_target() {
    let mut n = report("a", "eu");
    n.versions
        .insert(TARGET.into(), figures(100, 100, Some(1e6)));
    // Still on stable: its target figures are not judged by gates 3–5.
    let m = [gates::Judged {
        name: "a",
        started_at_ms: 1,
        baseline: None,
        report: Some(&n),
    }];
    let s = Settings::default();
    assert_eq!(gates::failing_gate(&m, TARGET, T0, &s), None);
    let p = gates::progress(&m, TARGET, T0, T0 + 5);
    assert_eq!(p.pending, vec!["a".to_string()]);
    assert_eq!(p.requests, 0);
    assert_eq!(p.elapsed_ms, 5);
}

/// One step of a random rollout.
#[derive(Debug, Clone)]
enum Step {
    Tick(u64),
    Judge,
    Follow,
    Serve(usize, u64, u64, u16),
    Reject(usize),
    Vanish(usize),
    Restart(usize),
    Join(usize),
    Move(usize),
    Promote,
    Abort,
}

const NAMES: [(&str, &str); 7] = [
    ("a", "eu"),
    ("b", "eu"),
    ("c", "us"),
    ("d", "us"),
    ("e", "ap"),
    ("f", "ap"),
    ("g", "eu"),
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..40_000).prop_map(Step::Tick),
        4 => Just(Step::Judge),
        3 => Just(Step::Follow),
        4 => (0usize..7, 0u64..200, 0u64..20, 0u16..400)
            .prop_map(|(n, q, e, p)| Step::Serve(n, q, e, p)),
        1 => (0usize..7).prop_map(Step::Reject),
        1 => (0usize..7).prop_map(Step::Vanish),
        1 => (0usize..7).prop_map(Step::Restart),
        1 => (0usize..7).prop_map(Step::Join),
        1 => (0usize..7).prop_map(Step::Move),
        1 => Just(Step::Promote),
        1 => Just(Step::Abort),
    ]
}

fn plan() -> impl Strategy<Value = Option<Vec<Selector>>> {
    prop_oneof![
        Just(None),
        Just(Some(vec![Selector::Rest])),
        Just(Some(vec![
            Selector::Node("a".into()),
            Selector::Region("us".into()),
            Selector::Rest
        ])),
        Just(Some(vec![
            Selector::Region("ap".into()),
            Selector::Region("eu".into())
        ])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn one_version_promoted_a_rolled_back_target_never_returns_outsiders_run_stable(
        initial in 1usize..7,
        waves in plan(),
        bake in prop::sample::select(vec![0u64, 1_000, 10_000, 60_000]),
        min_requests in prop::sample::select(vec![0u64, 10, 100]),
        min_errors in 0u64..12,
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let mut fleet = Fleet::new(&NAMES[..initial]);
        let settings = Settings { bake_ms: bake, min_requests, min_errors, max_error_increase: 0.01 };
        let p = Push { waves, ..push(settings) };
        let Ok((mut r, first)) = Rollout::start(p, &fleet.0, T0) else {
            return Ok(());
        };
        let mut now = T0;
        let mut decisions = first;
        let mut ended_stable = false;
        let mut boots = 100;
        for s in steps {
            // Every step starts from the stored form, as a new conductor would.
            let stored = serde_json::to_string(&r).unwrap();
            let back: Rollout = serde_json::from_str(&stored).unwrap();
            prop_assert_eq!(&back, &r);
            r = back;
            let was_over = r.state.is_over();
            let before = decisions.len();
            match s {
                Step::Tick(ms) => now += ms,
                Step::Judge => decisions.extend(r.judge(&fleet.0, now)),
                Step::Follow => fleet.follow(&r),
                Step::Serve(i, q, e, p99) => {
                    if let Some(n) = fleet.0.get(i).map(|n| n.name.clone()) {
                        fleet.serve(&n, q, e.min(q), Some(f64::from(p99)));
                    }
                }
                Step::Reject(i) => {
                    if let Some(n) = fleet.0.get_mut(i) {
                        n.rejected = Some(Rejection { version: TARGET.into(), errors: vec![], rollout_started_at_ms: 0 });
                        n.version = STABLE.into();
                    }
                }
                Step::Vanish(i) => {
                    if i < fleet.0.len() {
                        fleet.0.remove(i);
                    }
                }
                Step::Restart(i) => {
                    boots += 1;
                    if let Some(n) = fleet.0.get_mut(i) {
                        n.started_at_ms = boots;
                        n.versions.clear();
                    }
                }
                Step::Join(i) => {
                    let (name, region) = NAMES[i];
                    if fleet.0.iter().all(|n| n.name != name) {
                        fleet.0.push(report(name, region));
                    }
                }
                Step::Move(i) => {
                    // Re-registered in another region.
                    if let Some(n) = fleet.0.get_mut(i) {
                        n.region = if n.region == "eu" { "us" } else { "eu" }.into();
                    }
                }
                Step::Promote => {
                    if let Ok(d) = r.command(Command::Promote { author: "p".into() }, &fleet.0, now) {
                        decisions.extend(d);
                    }
                }
                Step::Abort => {
                    if let Ok(d) = r.command(Command::Abort { author: "p".into() }, &fleet.0, now) {
                        decisions.extend(d);
                    }
                }
            }
            // Nothing happens once it is over.
            if was_over {
                prop_assert_eq!(decisions.len(), before);
            }
            // Never two versions promoted: one Promote at most, and nothing after the end.
            let promotes = decisions.iter().filter(|d| **d == Decision::Promote).count();
            prop_assert!(promotes <= 1);
            let ends = decisions.iter().filter(|d| matches!(d,
                Decision::Promote | Decision::RollBack { .. } | Decision::Abort { .. })).count();
            prop_assert!(ends <= 1);
            if let Some(k) = decisions.iter().position(|d| matches!(d,
                Decision::Promote | Decision::RollBack { .. } | Decision::Abort { .. })) {
                prop_assert_eq!(k, decisions.len() - 1);
            }
            // A started wave's members were registered when it started.
            for d in &decisions[before..] {
                if let Decision::StartWave { nodes, .. } = d {
                    prop_assert!(!nodes.is_empty());
                    for n in nodes {
                        prop_assert!(fleet.0.iter().any(|f| &f.name == n));
                    }
                }
            }
            if matches!(r.state, State::RolledBack(_) | State::Aborted) {
                ended_stable = true;
            }
            for (name, _) in NAMES {
                let a = r.assignment(name);
                let v = r.version_for(name);
                // A rolled-back target is never again assigned, to anyone.
                if ended_stable {
                    prop_assert_eq!(a, Assignment::Stable);
                    prop_assert_eq!(v, Some(STABLE));
                }
                // Outside the started waves, stable until promotion; one version after it.
                match r.state {
                    State::Promoted => prop_assert_eq!(v, Some(TARGET)),
                    State::InProgress | State::Paused(_) => {
                        if r.wave_of(name).is_none() {
                            prop_assert_eq!(a, Assignment::Stable);
                        } else {
                            prop_assert_eq!(a, Assignment::Target);
                        }
                    }
                    _ => {}
                }
                prop_assert!(v == Some(STABLE) || v == Some(TARGET));
            }
            // A node is a member of at most one wave.
            let mut seen = std::collections::BTreeSet::new();
            for m in r.waves.iter().flat_map(|w| &w.members) {
                prop_assert!(seen.insert(m.name.clone()), "{} twice", m.name);
            }
        }
    }
}

#[test]
fn errors_are_server_failures_and_portico_route_or_rule_refusals() {
    for (status, route_or_rule, want) in [
        (200, false, false),
        (404, false, false),
        (404, true, true),
        (429, true, true),
        (403, true, true),
        (500, false, true),
        (502, false, true),
        (503, true, true),
        (400, false, false),
        (408, false, false),
        (413, false, false),
        (414, false, false),
        (431, false, false),
    ] {
        assert_eq!(
            is_error(status, route_or_rule),
            want,
            "{status} {route_or_rule}"
        );
    }
}

const MS: std::time::Duration = std::time::Duration::from_millis(1);

#[test]
fn the_window_covers_the_last_60_seconds() {
    let mut c = VersionCounters::new(STABLE);
    for _ in 0..10 {
        c.record(T0, true, MS);
    }
    for _ in 0..20 {
        c.record(T0 + 30 * SEC, false, MS);
    }
    assert_eq!(c.window(T0 + 59 * SEC).requests, 30);
    assert_eq!(c.window(T0 + 59 * SEC).errors, 10);
    assert_eq!(c.window(T0 + 60 * SEC).requests, 30);
    let w = c.window(T0 + 61 * SEC);
    assert_eq!((w.requests, w.errors), (20, 0));
    assert!(w.p99_ms.is_some());
    assert_eq!(c.window(T0 + 90 * SEC).requests, 20);
    assert_eq!(c.window(T0 + 91 * SEC), Figures::default());
    // A slot is reused a minute later: the old second is gone.
    c.record(T0 + 61 * SEC, false, MS);
    assert_eq!(c.window(T0 + 61 * SEC).requests, 21);
    // Since the switch, everything counts.
    assert_eq!(c.figures()[STABLE].requests, 31);
    assert_eq!(c.figures()[STABLE].errors, 10);
}

#[test]
fn the_p99_needs_20_answers_and_reads_within_a_bucket() {
    let mut c = VersionCounters::new(STABLE);
    for _ in 0..19 {
        c.record(T0, false, MS * 10);
    }
    assert_eq!(c.figures()[STABLE].p99_ms, None);
    c.record(T0, false, MS * 10);
    let p = c.figures()[STABLE].p99_ms.unwrap();
    assert!((10.0..=12.0).contains(&p), "{p}");
    // 99 fast answers and one slow: the p99 is the fast one's; two slow in 100: the slow one's.
    let mut c = VersionCounters::new(STABLE);
    for _ in 0..99 {
        c.record(T0, false, MS);
    }
    c.record(T0, false, MS * 1000);
    let p = c.figures()[STABLE].p99_ms.unwrap();
    assert!((1.0..=1.2).contains(&p), "{p}");
    c.record(T0, false, MS * 1000);
    let p = c.figures()[STABLE].p99_ms.unwrap();
    assert!((1000.0..=1200.0).contains(&p), "{p}");
}

#[test]
fn a_switch_freezes_the_baseline_and_starts_the_new_version_from_zero() {
    let mut c = VersionCounters::new(STABLE);
    for i in 0..200 {
        c.record(T0 + i * 500, i % 20 == 0, MS * 5);
    }
    // At T0 + 100 s the window holds seconds 40 to 100: 120 answers, 6 errors.
    c.switch(TARGET, T0 + 100 * SEC);
    let b = c.baseline().unwrap();
    assert_eq!(b.to, TARGET);
    assert_eq!(b.figures.requests, 120);
    assert_eq!(b.figures.errors, 6);
    assert_eq!(c.running(), TARGET);
    assert_eq!(c.figures()[TARGET], Figures::default());
    assert_eq!(c.figures()[STABLE].requests, 200);
    c.record(T0 + 101 * SEC, true, MS);
    // Switching to what it runs changes nothing.
    c.switch(TARGET, T0 + 102 * SEC);
    assert_eq!(c.figures()[TARGET].errors, 1);
    // Back to stable: it starts from zero, the target's figures are kept.
    c.switch(STABLE, T0 + 103 * SEC);
    assert_eq!(c.figures()[STABLE], Figures::default());
    assert_eq!(c.figures()[TARGET].errors, 1);
    assert_eq!(c.baseline().unwrap().to, STABLE);
    assert_eq!(c.baseline().unwrap().figures.requests, 1);
    // A version run again takes one place, not two.
    let mut c = VersionCounters::new("v1");
    for v in ["v2", "v3", "v2", "v4"] {
        c.switch(v, T0);
    }
    assert_eq!(
        c.figures().keys().map(String::as_str).collect::<Vec<_>>(),
        ["v1", "v2", "v3", "v4"]
    );
    // Only the newest versions are kept.
    for v in ["v3", "v4", "v5", "v6"] {
        c.switch(v, T0 + 104 * SEC);
    }
    assert_eq!(
        c.figures().keys().map(String::as_str).collect::<Vec<_>>(),
        ["v3", "v4", "v5", "v6"]
    );
}

#[test]
fn counters_feed_the_gates_end_to_end() {
    // Two nodes count their answers; the rollout judges what they publish.
    let mut f = Fleet::new(&[("eu-a", "eu"), ("eu-b", "eu")]);
    let mut counters: Vec<VersionCounters> =
        f.0.iter().map(|_| VersionCounters::new(STABLE)).collect();
    let mut now = T0 - 60 * SEC;
    let publish = |f: &mut Fleet, counters: &[VersionCounters]| {
        for (n, c) in f.0.iter_mut().zip(counters) {
            n.version = c.running().to_string();
            n.versions = c.figures();
            n.baseline = c.baseline().cloned();
        }
    };
    // A minute of 1 % errors before the push.
    while now < T0 {
        for c in &mut counters {
            for k in 0..10 {
                c.record(now + k, k == 0 && now % (10 * SEC) == 0, MS * 3);
            }
        }
        now += SEC;
    }
    publish(&mut f, &counters);
    let (mut r, d) = Rollout::start(push(Settings::default()), &f.0, now).unwrap();
    assert_eq!(d, vec![started(0, &["eu-a"])]);
    // The canary switches and answers 10 a second, 1 in 5 an error (20 %).
    for (n, c) in f.0.iter().zip(&mut counters) {
        if let Some(v) = r.version_for(&n.name) {
            c.switch(v, now);
        }
    }
    let mut verdict = Vec::new();
    for _ in 0..60 {
        now += SEC;
        for k in 0..10 {
            counters[0].record(now + k, k % 5 == 0, MS * 3);
            counters[1].record(now + k, false, MS * 3);
        }
        publish(&mut f, &counters);
        verdict = r.judge(&f.0, now);
        if !verdict.is_empty() {
            break;
        }
    }
    let base = r.member("eu-a").unwrap().baseline.unwrap();
    assert_eq!((base.requests, base.errors), (600, 6));
    assert!(base.p99_ms.is_some_and(|p| (3.0..=3.6).contains(&p)));
    // 10 errors are reached after 5 s: 50 answers, 10 errors.
    assert_eq!(
        verdict,
        vec![Decision::RollBack {
            wave: 0,
            failure: GateFailure::ErrorRatio {
                // Summed over the wave: no p99.
                target: figures(50, 10, None),
                baseline: figures(600, 6, None),
                max_increase: 0.01
            }
        }]
    );
    assert_eq!(r.assignment("eu-a"), Assignment::Stable);
}

#[test]
fn the_preview_shows_started_members_and_predicts_the_rest() {
    let mut f = Fleet::four();
    let (r, _) = start(&f, push(Settings::default()));
    f.0.push(report("eu-c", "eu"));
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        r.preview(&f.0),
        vec![
            (Selector::Node("eu-a".into()), names(&["eu-a"])),
            (Selector::Region("eu".into()), names(&["eu-b", "eu-c"])),
            (Selector::Rest, names(&["sg-a", "us-a"])),
        ]
    );
}

#[test]
fn pushing_the_stable_version_is_refused_and_rollback_takes_only_promoted_versions() {
    let f = Fleet::four();
    let p = Push {
        target: STABLE.into(),
        ..push(Settings::default())
    };
    assert_eq!(
        Rollout::start(p, &f.0, T0).unwrap_err(),
        RolloutError::AlreadyStable(STABLE.into())
    );
    assert_eq!(check_rollback("v0", Some(Outcome::Promoted)), Ok(()));
    for o in [Outcome::RolledBack, Outcome::Aborted, Outcome::InProgress] {
        assert!(check_rollback("v0", Some(o)).is_err());
    }
    assert_eq!(
        check_rollback("v7", Some(Outcome::RolledBack))
            .unwrap_err()
            .to_string(),
        "version v7 is rolled_back: only a promoted version can be rolled back to"
    );
    assert_eq!(
        check_rollback("v9", None).unwrap_err().to_string(),
        "version v9 is unknown: only a promoted version can be rolled back to"
    );
}

#[test]
fn a_baseline_frozen_for_another_version_counts_as_nothing_served_before() {
    let (mut f, mut r) = on_canary(Settings::default());
    // The node publishes the baseline of an older switch (to v0): not this rollout's.
    f.node("eu-a").baseline = Some(SwitchBaseline {
        to: "v0".into(),
        figures: figures(1000, 500, Some(900.0)),
    });
    assert_eq!(r.judge(&f.0, T0 + 1), vec![]);
    assert_eq!(r.member("eu-a").unwrap().baseline, Some(Figures::default()));
    // So 10 errors in 100 on the target are judged against 0 %: rolled back.
    f.serve("eu-a", 100, 10, None);
    assert_eq!(rolled_back(&r.judge(&f.0, T0 + 2)).number(), 3);
}
