//! An SVG timeline: one panel per proxy and scenario, requests per bucket by serving origin,
//! errors in red, lines at the fault and the recovery, on one time scale for every panel.

use super::analyze::{Bucket, Phases};
use std::fmt::Write;

/// One panel's data.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Scenario name (column).
    pub scenario: String,
    /// The origin fault behind it (`none` draws no fault or recovery line).
    pub fault: String,
    /// Proxy name (row).
    pub proxy: String,
    /// Requests per bucket.
    pub buckets: Vec<Bucket>,
    /// Fault and recovery times.
    pub phases: Phases,
    /// Client errors in the whole run.
    pub errors: usize,
    /// Origin requests per client request in the fault window.
    pub origin_load: f64,
}

const W: f64 = 380.0;
const H: f64 = 110.0;
const PAD: f64 = 30.0;
const COLORS: [&str; 4] = ["#4e79a7", "#59a14f", "#f28e2b", "#76b7b2"];
const ERROR: &str = "#e15759";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the panels in a grid (scenarios across, proxies down) with a legend of `origins`.
pub fn render(panels: &[Panel], origins: &[String]) -> String {
    let mut scenarios: Vec<(&str, &str)> = Vec::new();
    let mut proxies: Vec<&str> = Vec::new();
    for p in panels {
        if !scenarios.iter().any(|(s, _)| *s == p.scenario) {
            scenarios.push((&p.scenario, &p.fault));
        }
        if !proxies.contains(&p.proxy.as_str()) {
            proxies.push(&p.proxy);
        }
    }
    let peak = panels
        .iter()
        .flat_map(|p| {
            p.buckets
                .iter()
                .map(|b| b.served.iter().sum::<usize>() + b.errors)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // One time scale for all: a shorter run (the baseline) takes a shorter panel.
    let span = panels.iter().map(|p| p.phases.end_ms).fold(1.0, f64::max);
    let width = 120.0 + scenarios.len() as f64 * (W + PAD);
    let height = 60.0 + proxies.len() as f64 * (H + PAD) + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let mut x = 120.0;
    for (i, o) in origins.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="8" width="10" height="10" fill="{}"/><text x="{}" y="17">served by {}</text>"#,
            COLORS[i % COLORS.len()],
            x + 14.0,
            esc(o)
        );
        x += 130.0;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{x}" y="8" width="10" height="10" fill="{ERROR}"/><text x="{}" y="17">client error</text>"#,
        x + 14.0
    );
    for (c, (sc, fault)) in scenarios.iter().enumerate() {
        let label = if sc == fault {
            format!("fault: {sc}")
        } else {
            format!("fault: {sc} ({fault})")
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="42" font-weight="bold">{}</text>"#,
            120.0 + c as f64 * (W + PAD),
            esc(&label)
        );
    }
    for (r, px) in proxies.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="8" y="{}" font-weight="bold">{}</text>"#,
            60.0 + r as f64 * (H + PAD) + H / 2.0,
            esc(px)
        );
    }
    for p in panels {
        let c = scenarios
            .iter()
            .position(|(x, _)| *x == p.scenario)
            .unwrap_or(0) as f64;
        let r = proxies.iter().position(|x| *x == p.proxy).unwrap_or(0) as f64;
        let (x0, y0) = (120.0 + c * (W + PAD), 50.0 + r * (H + PAD));
        let pw = W * (p.phases.end_ms / span).clamp(0.0, 1.0);
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{pw:.1}" height="{H}" fill="#f7f7f7" stroke="#ccc"/>"##
        );
        let n = p.buckets.len().max(1) as f64;
        let bw = pw / n;
        for (i, b) in p.buckets.iter().enumerate() {
            let mut y = y0 + H;
            let bx = x0 + i as f64 * bw;
            let parts = b
                .served
                .iter()
                .enumerate()
                .map(|(k, v)| (COLORS[k % COLORS.len()], *v))
                .chain([(ERROR, b.errors)]);
            for (color, v) in parts {
                if v == 0 {
                    continue;
                }
                let h = v as f64 / peak * (H - 4.0);
                y -= h;
                let _ = writeln!(
                    s,
                    r#"<rect x="{bx:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/>"#,
                    bw.max(0.5)
                );
            }
        }
        let marks: &[(f64, &str)] = if p.fault == "none" {
            &[]
        } else {
            &[
                (p.phases.fault_ms, "fault"),
                (p.phases.recover_ms, "recovery"),
            ]
        };
        for &(t, label) in marks {
            let lx = x0 + t / span * W;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{y0}" x2="{lx:.1}" y2="{}" stroke="black" stroke-dasharray="3,2"/><text x="{:.1}" y="{}" font-size="9">{label}</text>"#,
                y0 + H,
                lx + 2.0,
                y0 + 10.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="10">{} errors · origin load {:.3} · {:.0} s</text>"#,
            x0,
            y0 + H + 12.0,
            p.errors,
            p.origin_load,
            p.phases.end_ms / 1000.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_panel_per_proxy_and_scenario_with_balanced_tags() {
        let phases = Phases {
            fault_ms: 1000.0,
            recover_ms: 2000.0,
            end_ms: 3000.0,
        };
        let bucket = Bucket {
            at_ms: 0.0,
            served: vec![3, 1],
            errors: 2,
        };
        let panels: Vec<Panel> = ["portico", "nginx"]
            .iter()
            .flat_map(|px| {
                let bucket = bucket.clone();
                [("crash", "refuse"), ("none", "none")]
                    .iter()
                    .map(move |(sc, fault)| Panel {
                        scenario: sc.to_string(),
                        fault: fault.to_string(),
                        proxy: px.to_string(),
                        buckets: vec![bucket.clone(); 4],
                        phases,
                        errors: 8,
                        origin_load: 1.25,
                    })
            })
            .collect();
        let svg = render(&panels, &["a".into(), "b<".into()]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r##"fill="#f7f7f7""##).count(), 4, "four panels");
        assert_eq!(
            svg.matches(&format!(r#"fill="{ERROR}""#)).count(),
            4 * 4 + 1,
            "errors in every bucket, and the legend"
        );
        assert!(svg.contains("b&lt;"), "names are escaped");
        assert!(svg.contains("fault: crash (refuse)") && svg.contains("fault: none<"));
        assert_eq!(
            svg.matches(">recovery<").count(),
            2,
            "fault lines only where there is a fault"
        );
        assert_eq!(svg.matches("origin load 1.250").count(), 4);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }
}
