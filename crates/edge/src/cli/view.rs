//! How `config push`, `config rollout` and `config status` print a rollout, its plan, its
//! verdicts and each node's last sign of life. Pure: everything is passed in, `now` too.

pub use portico::config::seen::{Seen, seen};
use portico_core::rollout::{
    Decision, Figures, PassedBy, Record, Rollout, Selector, State, UnixMillis,
};
use portico_store::{LeaseLife, NodeStatus};
use std::collections::BTreeMap;

/// A duration for people: `450 ms`, `3.2 s`, `42 s`, `5 min`, `3 h`, `2 d`.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        10_000..120_000 => format!("{} s", ms / 1000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// `yes`, `no`, or `STALE` for a node that looks dead whatever it last said.
pub fn health(status: &NodeStatus, seen: Seen) -> &'static str {
    match (seen.stale, status.record.healthy) {
        (true, _) => "STALE",
        (false, true) => "yes",
        (false, false) => "no",
    }
}

/// `last seen` column text: `1.2 s ago`, `?`.
pub fn seen_text(seen: Seen) -> String {
    seen.age_ms
        .map_or_else(|| "?".to_string(), |a| format!("{} ago", age(a)))
}

fn pct(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}

/// `45 req, 1 err (2.22%), p99 3.2 ms`.
pub fn figures(f: &Figures) -> String {
    let p99 = f
        .p99_ms
        .map_or_else(String::new, |p| format!(", p99 {p:.1} ms"));
    format!(
        "{} req, {} err ({}){p99}",
        f.requests,
        f.errors,
        pct(f.ratio())
    )
}

/// `wave 2 (region:eu)`.
fn wave_name(r: &Rollout, i: usize) -> String {
    match r.waves.get(i) {
        Some(w) => format!("wave {} ({})", i + 1, w.selector),
        None => format!("wave {}", i + 1),
    }
}

/// One verdict: `wave 1 (node:eu-a) passed: 150 requests in 61.0 s`.
pub fn decision(r: &Rollout, d: &Decision) -> String {
    match d {
        Decision::StartWave { wave, nodes } => {
            format!("{} started: {}", wave_name(r, *wave), nodes.join(", "))
        }
        Decision::SkipWave { wave } => format!("{} skipped: no node", wave_name(r, *wave)),
        Decision::PassWave {
            wave,
            by:
                PassedBy::Gates {
                    requests,
                    elapsed_ms,
                },
        } => format!(
            "{} passed: {requests} requests on the target in {}",
            wave_name(r, *wave),
            age(*elapsed_ms)
        ),
        Decision::PassWave {
            wave,
            by: PassedBy::Hand { author },
        } => format!("{} passed: promoted by {author}", wave_name(r, *wave)),
        Decision::Pause { wave, reason } => format!("{} paused: {reason}", wave_name(r, *wave)),
        Decision::Promote => format!("promoted: {} is the stable version", r.target),
        Decision::RollBack { wave, failure } => format!(
            "{} failed gate {}: {failure}; rolled back",
            wave_name(r, *wave),
            failure.number()
        ),
        Decision::Abort { author } => format!("aborted by {author}; rolled back"),
    }
}

/// A verdict with its time since the push: `+61.0 s  wave 1 … passed …`.
pub fn verdict(r: &Rollout, rec: &Record) -> String {
    format!(
        "+{:<8} {}",
        age(rec.at_ms.saturating_sub(r.started_at_ms)),
        decision(r, &rec.decision)
    )
}

/// The rollout in one line: `rollout of T (stable S) by A, pushed 42 s ago: in progress,
/// wave 2 of 3 (region:eu)`.
pub fn state_line(r: &Rollout, now: UnixMillis) -> String {
    let stable = r.stable.as_deref().unwrap_or("none");
    let wave = match r.current {
        Some(i) if !r.state.is_over() => format!(", {} of {}", wave_name(r, i), r.waves.len()),
        _ => String::new(),
    };
    let ended = match r.ended_at_ms {
        Some(at) if r.state.is_over() => format!(", ended {} ago", age(now.saturating_sub(at))),
        _ => String::new(),
    };
    format!(
        "rollout of {} (stable {stable}) by {}, pushed {} ago: {}{wave}{ended}",
        r.target,
        r.author,
        age(now.saturating_sub(r.started_at_ms)),
        r.state
    )
}

/// The settings in one line.
pub fn settings_line(r: &Rollout) -> String {
    let s = &r.settings;
    format!(
        "gates: bake {}, min requests {}, max error increase {}, min errors {}",
        age(s.bake_ms),
        s.min_requests,
        pct(s.max_error_increase),
        s.min_errors
    )
}

/// The plan as a push prints it: `wave 1  node:eu-a  eu-a`.
pub fn plan_lines(plan: &[(Selector, Vec<String>)]) -> Vec<String> {
    plan.iter()
        .enumerate()
        .map(|(i, (sel, nodes))| {
            let nodes = if nodes.is_empty() {
                "(no node: skipped)".to_string()
            } else {
                nodes.join(", ")
            };
            format!("  wave {}  {:<20} {nodes}", i + 1, sel.to_string())
        })
        .collect()
}

/// One line per wave: passed, skipped, in progress with the gates' figures, or pending with
/// the nodes it would take now.
pub fn wave_lines(r: &Rollout, statuses: &[NodeStatus], now: UnixMillis) -> Vec<String> {
    let reports: Vec<_> = statuses.iter().map(NodeStatus::report).collect();
    let preview = r.preview(&reports);
    let passed_by: BTreeMap<usize, &PassedBy> = r
        .log
        .iter()
        .filter_map(|rec| match &rec.decision {
            Decision::PassWave { wave, by } => Some((*wave, by)),
            _ => None,
        })
        .collect();
    r.waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let head = format!("  wave {}  {:<20}", i + 1, w.selector.to_string());
            let figures_now = r.wave_figures(i, &reports, now);
            let text = if w.skipped {
                "skipped: no node".to_string()
            } else if let Some(by) = passed_by.get(&i) {
                match by {
                    PassedBy::Gates {
                        requests,
                        elapsed_ms,
                    } => format!(
                        "passed: {requests} requests on the target in {}",
                        age(*elapsed_ms)
                    ),
                    PassedBy::Hand { author } => format!("passed: promoted by {author}"),
                }
            } else if let Some(f) = figures_now {
                let pending = if f.pending.is_empty() {
                    String::new()
                } else {
                    format!("; not yet on the target: {}", f.pending.join(", "))
                };
                let verb = match (&r.state, r.current == Some(i)) {
                    (State::Paused(_), true) => "paused",
                    (State::InProgress, true) => "baking",
                    _ => "ran",
                };
                format!(
                    "{verb} {} of {}: target {}; baseline {}{pending}",
                    age(f.elapsed_ms),
                    age(r.settings.bake_ms),
                    figures(&f.target),
                    figures(&f.baseline)
                )
            } else {
                let nodes = preview
                    .get(i)
                    .map(|(_, n)| n.join(", "))
                    .unwrap_or_default();
                if nodes.is_empty() {
                    "not started (no node now)".to_string()
                } else {
                    format!("not started (would take {nodes})")
                }
            };
            format!("{head} {text}")
        })
        .collect()
}

/// The node table of `config rollout`: each registered node (and each member whose
/// registration is gone) with its wave, version, last sign of life and gate figures.
pub fn node_lines(
    r: &Rollout,
    statuses: &[NodeStatus],
    leases: &BTreeMap<String, LeaseLife>,
    now: UnixMillis,
) -> Vec<String> {
    let mut lines = vec![format!(
        "  {:<20} {:<10} {:<5} {:<25} {:<11} {:<7} {:<34} baseline",
        "node", "region", "wave", "version", "last seen", "healthy", "on the target"
    )];
    for s in statuses {
        let name = &s.record.name;
        let seen = seen(s, leases.get(name), now);
        let wave = r
            .wave_of(name)
            .map_or_else(|| "-".to_string(), |i| (i + 1).to_string());
        let version = &s.record.version;
        let label = if *version == r.target {
            " target"
        } else if r.stable.as_deref() == Some(version.as_str()) {
            " stable"
        } else {
            ""
        };
        let member = r.member(name);
        let on_target = if member.is_some() || s.versions.contains_key(&r.target) {
            figures(&s.report().figures(&r.target))
        } else {
            "-".to_string()
        };
        let baseline = member
            .and_then(|m| m.baseline.as_ref())
            .map_or_else(|| "-".to_string(), figures);
        lines.push(format!(
            "  {:<20} {:<10} {:<5} {:<25} {:<11} {:<7} {:<34} {baseline}",
            name,
            s.record.region,
            wave,
            format!("{version}{label}"),
            seen_text(seen),
            health(s, seen),
            on_target
        ));
    }
    for (i, w) in r.waves.iter().enumerate() {
        for m in &w.members {
            if statuses.iter().all(|s| s.record.name != m.name) {
                lines.push(format!(
                    "  {:<20} {:<10} {:<5} (registration gone)",
                    m.name,
                    m.region,
                    i + 1
                ));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rollout::{GateFailure, Push, Settings};
    use portico_store::NodeRecord;

    fn status(name: &str, region: &str, version: &str, at_ms: UnixMillis) -> NodeStatus {
        let mut s = NodeStatus::new(NodeRecord {
            name: name.into(),
            region: region.into(),
            version: version.into(),
            healthy: true,
            admin: "http://a".into(),
            updated_at: "2023-11-14T22:13:20Z".into(),
        });
        s.updated_at_ms = at_ms;
        s
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(450), "450 ms");
        assert_eq!(age(3_240), "3.2 s");
        assert_eq!(age(42_000), "42 s");
        assert_eq!(age(300_000), "5 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(3 * 86_400_000), "3 d");
    }

    fn rollout(nodes: &[NodeStatus]) -> Rollout {
        let reports: Vec<_> = nodes.iter().map(NodeStatus::report).collect();
        let push = Push {
            target: "v2".into(),
            stable: Some("v1".into()),
            waves: None,
            canary: None,
            settings: Settings::default(),
            author: "alice@h".into(),
        };
        Rollout::start(push, &reports, 1_000).unwrap().0
    }

    #[test]
    fn a_rollout_in_progress_prints_its_waves_nodes_and_verdicts() {
        let now = 30_000;
        let nodes = vec![
            status("eu-a", "eu", "v2", now - 200),
            status("eu-b", "eu", "v1", now - 300),
            status("us-a", "us", "v1", now - 20_000),
        ];
        let r = rollout(&nodes);
        assert_eq!(
            state_line(&r, now),
            "rollout of v2 (stable v1) by alice@h, pushed 29 s ago: in progress, \
             wave 1 (node:eu-a) of 3"
        );
        let waves = wave_lines(&r, &nodes, now);
        assert_eq!(waves.len(), 3);
        assert!(
            waves[0].contains("baking 29 s of 60 s: target 0 req"),
            "{}",
            waves[0]
        );
        assert!(
            waves[1].contains("not started (would take eu-b)"),
            "{}",
            waves[1]
        );
        assert!(
            waves[2].contains("not started (would take us-a)"),
            "{}",
            waves[2]
        );
        let table = node_lines(&r, &nodes, &BTreeMap::new(), now);
        assert_eq!(table.len(), 4);
        let eu_a = &table[1];
        assert!(eu_a.contains("v2 target"), "{eu_a}");
        assert!(eu_a.contains("200 ms ago"), "{eu_a}");
        assert!(table[3].contains("STALE"), "{}", table[3]);
        assert_eq!(
            verdict(&r, &r.log[0]),
            format!("+{:<8} wave 1 (node:eu-a) started: eu-a", "0 ms")
        );
    }

    #[test]
    fn verdicts_say_what_happened() {
        let nodes = vec![status("eu-a", "eu", "v2", 0)];
        let r = rollout(&nodes);
        let failure = GateFailure::ErrorRatio {
            target: Figures {
                requests: 100,
                errors: 30,
                p99_ms: None,
            },
            baseline: Figures::default(),
            max_increase: 0.01,
        };
        let text = decision(&r, &Decision::RollBack { wave: 0, failure });
        assert!(
            text.starts_with("wave 1 (node:eu-a) failed gate 3: error ratio 30.00%"),
            "{text}"
        );
        assert!(text.ends_with("rolled back"), "{text}");
        assert_eq!(
            decision(
                &r,
                &Decision::Abort {
                    author: "bob".into()
                }
            ),
            "aborted by bob; rolled back"
        );
        assert_eq!(
            decision(
                &r,
                &Decision::PassWave {
                    wave: 0,
                    by: PassedBy::Gates {
                        requests: 150,
                        elapsed_ms: 61_000
                    }
                }
            ),
            "wave 1 (node:eu-a) passed: 150 requests on the target in 61 s"
        );
        let lines = plan_lines(&r.preview(&[]));
        assert!(
            lines[0].contains("node:eu-a") && lines[0].ends_with("eu-a"),
            "{lines:?}"
        );
    }
}
