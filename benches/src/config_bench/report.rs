//! Summary numbers of a series of changes, the markdown table, and the anchors: published
//! figures of the managed services Portico is compared with, quoted (never measured here).

use super::load::LoadSummary;
use super::served::Following;
use super::trigger::Change;
use crate::failover::analyze::percentile;
use serde::Serialize;

/// Propagation of a series of changes (ms; percentiles by nearest rank).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Propagation {
    /// Changes made.
    pub changes: usize,
    /// Of which seen on every node within the timeout.
    pub propagated: usize,
    /// Until every node ran the change.
    pub p50_ms: f64,
    /// Until every node ran the change.
    pub p99_ms: f64,
    /// Until every node ran the change.
    pub max_ms: f64,
    /// Until every node ran the change.
    pub min_ms: f64,
    /// Per node (fleet order): median time until that node ran the change.
    pub per_node_p50_ms: Vec<f64>,
    /// How long the write itself took (median).
    pub write_p50_ms: f64,
    /// The measurement's uncertainty on the slowest node (median and largest).
    pub resolution_p50_ms: f64,
    /// The measurement's uncertainty on the slowest node (median and largest).
    pub resolution_max_ms: f64,
    /// Polls per node and change (median).
    pub polls_p50: f64,
    /// The slowest `/status` round trip of each node and change (median).
    pub slowest_poll_p50_ms: f64,
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Summarizes `changes`.
pub fn propagation(changes: &[Change]) -> Propagation {
    let all = sorted(changes.iter().filter_map(|c| c.all_ms).collect());
    let res = sorted(changes.iter().filter_map(|c| c.resolution_ms).collect());
    let writes = sorted(changes.iter().map(|c| c.write_ms).collect());
    let nodes = changes.first().map_or(0, |c| c.nodes.len());
    let per_node_p50_ms = (0..nodes)
        .map(|i| {
            let v = sorted(
                changes
                    .iter()
                    .filter_map(|c| c.nodes.get(i).copied().flatten())
                    .map(|s| s.upper_ms)
                    .collect(),
            );
            percentile(&v, 0.5)
        })
        .collect();
    let seen: Vec<_> = changes
        .iter()
        .flat_map(|c| c.nodes.iter().flatten())
        .collect();
    let polls = sorted(seen.iter().map(|s| f64::from(s.polls)).collect());
    let slowest = sorted(seen.iter().map(|s| s.slowest_poll_ms).collect());
    Propagation {
        polls_p50: percentile(&polls, 0.5),
        slowest_poll_p50_ms: percentile(&slowest, 0.5),
        changes: changes.len(),
        propagated: all.len(),
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        max_ms: all.last().copied().unwrap_or(0.0),
        min_ms: all.first().copied().unwrap_or(0.0),
        per_node_p50_ms,
        write_p50_ms: percentile(&writes, 0.5),
        resolution_p50_ms: percentile(&res, 0.5),
        resolution_max_ms: res.last().copied().unwrap_or(0.0),
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub case: String,
    /// How each change was made.
    pub trigger: String,
    /// Propagation numbers.
    pub propagation: Propagation,
    /// The load during the changes, if any.
    pub load: Option<LoadSummary>,
    /// Whether answers followed the config, if there was load.
    pub following: Option<Following>,
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| case | pushes / reloads | p50 (ms) | p99 (ms) | max (ms) | requests | client errors | served by the new config's origin |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let p = &r.propagation;
        let changes = if p.propagated == p.changes {
            p.changes.to_string()
        } else {
            format!(
                "{} ({} not propagated)",
                p.changes,
                p.changes - p.propagated
            )
        };
        let (requests, errors) = match &r.load {
            Some(l) => (l.requests.to_string(), l.errors.to_string()),
            None => ("—".into(), "—".into()),
        };
        let following = match &r.following {
            Some(f) => format!(
                "{:.2} % ({} / {})",
                f.fraction() * 100.0,
                f.expected,
                f.settled
            ),
            None => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {changes} | {:.1} | {:.1} | {:.1} | {requests} | {errors} | {following} |\n",
            r.case, p.p50_ms, p.p99_ms, p.max_ms
        ));
    }
    s
}

/// A published figure of a managed service.
#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    /// The service.
    pub service: &'static str,
    /// What its documentation says, quoted.
    pub quoted: &'static str,
    /// Where.
    pub source: &'static str,
}

/// The anchors: what the vendors themselves publish. Quoted, not measured.
pub const ANCHORS: &[Anchor] = &[
    Anchor {
        service: "Azure Front Door, FAQ (latest revision found)",
        quoted: "configuration propagation for a single create, update or delete \"might take up to 20 minutes\"; \"back-to-back changes can extend the total deployment time to approximately 40 minutes\"",
        source: "https://learn.microsoft.com/azure/frontdoor/front-door-faq (\"What is the estimated time for deploying an Azure Front Door?\"; MicrosoftDocs/azure-docs commit d1e5b7f, which lowered the figures from 45 and 90 minutes)",
    },
    Anchor {
        service: "Azure Front Door, FAQ (2021 revision)",
        quoted: "\"Most new Front Door creates and updates take about 3 to 20 minutes to deploy across all our edge location globally\"",
        source: "MicrosoftDocs/azure-docs, articles/frontdoor/front-door-faq.yml (\"How long does it take to deploy an Azure Front Door?\")",
    },
];

/// The anchors as markdown lines.
pub fn anchors() -> String {
    let mut s = String::from(
        "Anchors (the vendor's own published wording, quoted, not measured here):\n\n",
    );
    for a in ANCHORS {
        s.push_str(&format!("- {}: {} — {}\n", a.service, a.quoted, a.source));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_bench::docs::Variant;
    use crate::config_bench::status::Seen;

    fn change(i: usize, ups: &[Option<f64>]) -> Change {
        let nodes: Vec<Option<Seen>> = ups
            .iter()
            .map(|u| {
                u.map(|upper_ms| Seen {
                    lower_ms: upper_ms - 2.0,
                    upper_ms,
                    polls: 3,
                    slowest_poll_ms: 0.5,
                })
            })
            .collect();
        let all = if nodes.iter().all(Option::is_some) {
            ups.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        Change {
            index: i,
            variant: Variant::A.nth_change(i),
            version: String::new(),
            at_ms: i as f64 * 100.0,
            write_ms: 1.0,
            nodes,
            all_ms: all,
            resolution_ms: all.map(|_| 2.0),
        }
    }

    #[test]
    fn propagation_is_the_slowest_node_and_unpropagated_changes_are_counted() {
        let changes = vec![
            change(0, &[Some(5.0), Some(9.0), Some(7.0)]),
            change(1, &[Some(4.0), Some(6.0), Some(8.0)]),
            change(2, &[Some(4.0), None, Some(8.0)]),
        ];
        let p = propagation(&changes);
        assert_eq!((p.changes, p.propagated), (3, 2));
        assert_eq!((p.p50_ms, p.max_ms, p.min_ms), (8.0, 9.0, 8.0));
        assert_eq!(p.per_node_p50_ms, vec![4.0, 6.0, 8.0]);
        assert_eq!(p.resolution_max_ms, 2.0);
        let t = table(&[Row {
            case: "x".into(),
            trigger: "y".into(),
            propagation: p,
            load: None,
            following: None,
        }]);
        assert!(
            t.contains("| x | 3 (1 not propagated) | 8.0 | 9.0 | 9.0 | — | — | — |"),
            "{t}"
        );
    }
}
