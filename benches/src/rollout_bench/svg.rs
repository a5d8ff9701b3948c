//! The SVG timeline: one column per case, one row per node; requests per bucket coloured by
//! the version the node ran (stable, the pushed document), errors in red on top; lines at the
//! push, each wave's start, the verdict and the moment every node ran the final version.

use super::case::CaseResult;
use std::fmt::Write;

const W: f64 = 300.0;
const H: f64 = 70.0;
const PAD: f64 = 28.0;
const LEFT: f64 = 120.0;
const STABLE: &str = "#4e79a7";
const TARGET: &str = "#f28e2b";
const ERROR: &str = "#e15759";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Requests per bucket of one node in one case: `(ok on stable, ok on target, errors)`.
fn buckets(case: &CaseResult, node: usize, bucket_ms: f64, n: usize) -> Vec<(usize, usize, usize)> {
    let mut out = vec![(0, 0, 0); n];
    let timeline = case.timelines.get(node);
    for r in case.requests.iter().filter(|r| r.target == node) {
        let i = ((r.at_ms / bucket_ms) as usize).min(n.saturating_sub(1));
        let Some(b) = out.get_mut(i) else { continue };
        if r.status != 200 || r.error.is_some() {
            b.2 += 1;
        } else if timeline.and_then(|t| t.version_at(r.at_ms)) == Some(case.target.as_str()) {
            b.1 += 1;
        } else {
            b.0 += 1;
        }
    }
    out
}

/// Renders the cases (columns) for the named nodes (rows), buckets of `bucket_ms`.
pub fn render(cases: &[CaseResult], nodes: &[String], bucket_ms: f64) -> String {
    let end = |c: &CaseResult| c.requests.iter().map(|r| r.at_ms).fold(0.0, f64::max);
    let counts: Vec<usize> = cases
        .iter()
        .map(|c| (end(c) / bucket_ms) as usize + 1)
        .collect();
    let peak = cases
        .iter()
        .zip(&counts)
        .flat_map(|(c, &n)| {
            (0..nodes.len()).flat_map(move |i| {
                buckets(c, i, bucket_ms, n)
                    .into_iter()
                    .map(|(a, b, e)| a + b + e)
            })
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let width = LEFT + cases.len() as f64 * (W + PAD) + PAD;
    let height = PAD * 2.0 + nodes.len() as f64 * (H + PAD) + 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (ci, (case, &n)) in cases.iter().zip(&counts).enumerate() {
        let x0 = LEFT + ci as f64 * (W + PAD);
        let scale = W / (n as f64 * bucket_ms);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-weight="bold">{}</text>"#,
            x0,
            PAD - 10.0,
            esc(&case.case)
        );
        for (ni, node) in nodes.iter().enumerate() {
            let y0 = PAD + ni as f64 * (H + PAD);
            if ci == 0 {
                let _ = write!(
                    s,
                    r#"<text x="4" y="{:.1}">{}</text>"#,
                    y0 + H / 2.0,
                    esc(node)
                );
            }
            let _ = write!(
                s,
                r##"<rect x="{x0:.1}" y="{y0:.1}" width="{W}" height="{H}" fill="none" stroke="#ccc"/>"##
            );
            let bw = (bucket_ms * scale).max(1.0);
            for (bi, (stable, target, errors)) in
                buckets(case, ni, bucket_ms, n).into_iter().enumerate()
            {
                let x = x0 + bi as f64 * bucket_ms * scale;
                let mut y = y0 + H;
                for (count, color) in [(stable, STABLE), (target, TARGET), (errors, ERROR)] {
                    if count == 0 {
                        continue;
                    }
                    let h = count as f64 / peak * H;
                    y -= h;
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{h:.1}" fill="{color}"/>"#
                    );
                }
            }
            let mut line = |t_ms: f64, color: &str, dash: &str| {
                let x = x0 + t_ms * scale;
                let _ = write!(
                    s,
                    r#"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/>"#,
                    y0 + H
                );
            };
            line(case.push_ms, "black", "");
            for w in &case.figures.wave_starts_ms {
                line(case.push_ms + w, "#888", "3,2");
            }
            if let Some(v) = case.verdict_ms {
                let color = if case.figures.outcome == "promoted" {
                    "#59a14f"
                } else {
                    ERROR
                };
                line(v, color, "");
            }
            if let Some(all) = case.figures.push_to_all_final_ms {
                line(case.push_ms + all, "#b07aa1", "2,2");
            }
        }
        let _ = write!(
            s,
            r#"<text x="{x0:.1}" y="{:.1}">0 … {:.0} s</text>"#,
            PAD + nodes.len() as f64 * (H + PAD) - 12.0,
            n as f64 * bucket_ms / 1000.0
        );
    }
    let ly = height - 20.0;
    let legend = [
        (STABLE, "answered on stable"),
        (TARGET, "answered on the pushed document"),
        (ERROR, "client error"),
        ("black", "push"),
        ("#888", "wave starts"),
        ("#59a14f", "promoted / rolled back (red)"),
        ("#b07aa1", "every node on the final version"),
    ];
    let mut x = LEFT;
    for (color, label) in legend {
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{label}</text>"#,
            ly - 9.0,
            x + 14.0
        );
        x += 14.0 + label.len() as f64 * 6.0 + 16.0;
    }
    s.push_str("</svg>\n");
    s
}
