//! The table of the three cases, issue 21's targets judged on row (b), and the anchors:
//! what the managed services published about the outages a staged, gated rollout prevents
//! (quoted, never measured here).

use super::case::CaseResult;
use crate::config_bench::report::Anchor;

/// Issue 21's targets for the valid-but-wrong push (row b).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// Client errors only on the canary.
    pub errors_only_on_canary: bool,
    /// Push → rollback verdict ≤ 3 s.
    pub verdict_within_3s: bool,
    /// Verdict → every node on stable ≤ 1 s.
    pub stable_within_1s: bool,
}

impl Verdict {
    /// Judges row (b).
    pub fn of(bad: &CaseResult) -> Verdict {
        let f = &bad.figures;
        Verdict {
            errors_only_on_canary: f.canary.is_some() && f.errors_outside_canary == 0,
            verdict_within_3s: f.push_to_verdict_ms.is_some_and(|v| v <= 3000.0),
            stable_within_1s: f.verdict_to_all_final_ms.is_some_and(|v| v <= 1000.0),
        }
    }

    /// PASS when every target is met.
    pub fn pass(&self) -> bool {
        self.errors_only_on_canary && self.verdict_within_3s && self.stable_within_1s
    }
}

fn opt_s(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.2}", v / 1000.0))
}

/// The markdown table, one row per case.
pub fn table(cases: &[CaseResult], nodes: &[String]) -> String {
    let mut s = String::from(
        "| case | outcome | requests after push | client errors (share) | errors outside the canary | errors per node | nodes that ran it | push → verdict, s | verdict → all on final, s | push → all on final, s |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        let f = &c.figures;
        let per_node: Vec<String> = nodes
            .iter()
            .zip(&f.errors_by_node)
            .map(|(n, e)| format!("{n}: {e}"))
            .collect();
        let outside = if f.canary.is_some() {
            f.errors_outside_canary.to_string()
        } else {
            format!("{} (no canary)", f.errors)
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} ({:.2} %) | {} | {} | {} of {} | {} | {} | {} |\n",
            c.case,
            f.outcome,
            f.requests,
            f.errors,
            f.error_share * 100.0,
            outside,
            per_node.join(", "),
            f.nodes_ran_target.len(),
            nodes.len(),
            opt_s(f.push_to_verdict_ms),
            opt_s(f.verdict_to_all_final_ms),
            opt_s(f.push_to_all_final_ms),
        ));
    }
    s
}

/// The anchors: what the vendors published after their 2025 outages. Quoted, not measured.
pub const ANCHORS: &[Anchor] = &[
    Anchor {
        service: "Azure Front Door, 29 October 2025 (tracking ID YKYN-BWZ)",
        quoted: "a configuration passed validation because the data-plane crash came about 5 minutes after deployment, so it propagated globally; impact from 15:41 UTC to 00:05 UTC (about 8 h 20 min); the repair items include reducing configuration propagation \"from 45 minutes to approximately 15 minutes\" and restoring customer configurations \"within approximately 10 minutes\". No customer-visible waves or gates.",
        source: "Azure status history, post-incident review YKYN-BWZ: https://azure.status.microsoft/en-us/status/history/",
    },
    Anchor {
        service: "Azure Front Door, FAQ",
        quoted: "a single create, update or delete \"might take up to 20 minutes\" to propagate",
        source: "https://learn.microsoft.com/azure/frontdoor/front-door-faq",
    },
    Anchor {
        service: "Cloudflare, 18 November 2025",
        quoted: "a generated feature file of the Bot Management module more than doubled in size and was propagated to every machine of the network; core traffic failed from 11:20 UTC until about 14:30 UTC, every system recovered by 17:06 UTC",
        source: "https://blog.cloudflare.com/18-november-2025-outage/",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout_bench::case::{CaseResult, Figures};

    fn case(errors_outside: usize, verdict: Option<f64>, stable: Option<f64>) -> CaseResult {
        CaseResult {
            case: "(b)".into(),
            push: String::new(),
            target: "t".into(),
            final_version: "s".into(),
            push_ms: 0.0,
            verdict_ms: verdict,
            figures: Figures {
                outcome: "rolled back: gate 3".into(),
                requests: 1000,
                errors: 12 + errors_outside,
                error_share: 0.012,
                errors_by_node: vec![12, errors_outside],
                canary: Some("a".into()),
                errors_outside_canary: errors_outside,
                nodes_ran_target: vec!["a".into()],
                push_to_verdict_ms: verdict,
                verdict_to_all_final_ms: stable,
                push_to_all_final_ms: None,
                ..Figures::default()
            },
            timelines: Vec::new(),
            requests: Vec::new(),
            rollout: None,
        }
    }

    #[test]
    fn row_b_passes_only_when_every_target_is_met() {
        assert!(Verdict::of(&case(0, Some(2100.0), Some(300.0))).pass());
        let v = Verdict::of(&case(1, Some(2100.0), Some(300.0)));
        assert!(!v.errors_only_on_canary && !v.pass());
        assert!(!Verdict::of(&case(0, Some(3100.0), Some(300.0))).pass());
        assert!(!Verdict::of(&case(0, Some(2100.0), None)).pass());
        let t = table(
            &[case(0, Some(2100.0), Some(300.0))],
            &["a".into(), "b".into()],
        );
        assert!(t.contains("| (b) | rolled back: gate 3 | 1000 | 12 (1.20 %) | 0 | a: 12, b: 0 | 1 of 2 | 2.10 | 0.30 | — |"), "{t}");
    }
}
